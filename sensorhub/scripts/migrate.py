"""``sensorhub-admin migrate <ini>``: bring the database schema up to date (Alembic heads).

The app is built from the ini, so its plugins decide what is migrated: the core's revisions and
the branch of every listed plugin that registered one (``config.add_migrations``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import structlog

from .. import migrations
from ..text import printable
from .admin import CommandError

log = structlog.get_logger(__name__)


class MigrateCommand:
    help = "create or upgrade the database schema (safe to run repeatedly)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        pass  # only the ini, which the runner adds

    def run(self, args: argparse.Namespace, env: dict[str, Any]) -> None:
        registry = env["registry"]
        engine = registry["dbengine"]
        locations = migrations.migration_locations(registry)
        if unknown := migrations.unknown_revisions(engine, locations):
            raise CommandError(
                f"the database has revision(s) {', '.join(sorted(unknown))} that neither the "
                "core nor a listed plugin provides: add the plugin that owns each (a revision id "
                "starts with its plugin's name) to sensorhub.plugins (env SENSORHUB_PLUGINS), "
                "then migrate again"
            )
        before = migrations.current_heads(engine)
        migrations.upgrade(engine, locations)
        after = migrations.current_heads(engine)
        log.info("database_migrated", before=sorted(before), after=sorted(after))
        # Revision ids are read from the database's alembic_version table: stored data.
        sys.stdout.write(f"database at {printable(', '.join(sorted(after)))}\n")


command = MigrateCommand()
