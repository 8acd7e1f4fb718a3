"""Alembic history: the core's own revisions, and the directive plugins register theirs with.

``versions/`` holds only the core's tables (revision ``0001_core``, branch ``core``). Every
plugin with tables, the built-in ones included, keeps its revisions in a folder of its own as
a branch on top of the core (``branch_labels = ("<plugin>",)``, ``down_revision`` the core
revision it needs) and registers that folder from its ``includeme`` with
``config.add_migrations("<package>:migrations")``, exactly as a third-party plugin does (see
the plugin template's ``models.py``). ``upgrade(engine, locations)`` runs ``upgrade heads``
over the core's folder and the given ones.

Callers pass the locations the loaded plugins registered:

- ``sensorhub-admin migrate <ini>`` builds the app from the ini and passes
  ``migration_locations(registry)``: the ini's plugins decide which branches are applied.
  Once a plugin's revision ran on a database, keep the plugin listed whenever you migrate it:
  Alembic must find every revision the database recorded (``unknown_revisions`` names those
  it would not, and the command refuses with the fix).
- Code that holds an engine but no app (the test suite, the bench) asks
  ``plugin_locations(names)``, which builds a throwaway app with those plugins.

The test suite builds its schema by running these migrations, so they are tested on SQLite
and PostgreSQL.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pyramid.path import AssetResolver
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from alembic.config import Config
    from pyramid.config import Configurator
    from pyramid.registry import Registry

# Alembic is imported inside the functions: serving requests never needs it, and importing it
# costs start-up time and log noise.

_REGISTRY_KEY = "sensorhub.migration_locations"


def alembic_config(extra_locations: Iterable[str] = ()) -> Config:
    from alembic.config import Config

    resolve = AssetResolver().resolve
    cfg = Config()
    cfg.set_main_option("script_location", resolve("sensorhub:migrations").abspath())
    locations = [resolve("sensorhub:migrations/versions").abspath()]
    locations += [resolve(location).abspath() for location in extra_locations]
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", os.pathsep.join(locations))
    return cfg


def upgrade(engine: Engine, extra_locations: Iterable[str] = (), revision: str = "heads") -> None:
    from alembic import command

    cfg = alembic_config(extra_locations)
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def current_heads(engine: Engine, extra_locations: Iterable[str] = ()) -> set[str]:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return set(MigrationContext.configure(connection).get_current_heads())


def unknown_revisions(engine: Engine, extra_locations: Iterable[str] = ()) -> set[str]:
    """Revisions the database records that none of the folders provides: a plugin whose branch
    ran on this database is not loaded (``upgrade`` would fail on them)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(extra_locations))
    known = {revision.revision for revision in script.walk_revisions()}
    return current_heads(engine) - known


def is_current(engine: Engine, extra_locations: Iterable[str] = ()) -> bool:
    """Whether the database is at every head of these folders (``upgrade`` would do nothing):
    a command that fails on a missing table can then say to migrate, not show SQL."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(extra_locations))
    return current_heads(engine) == set(script.get_heads())


def add_migrations(config: Configurator, location: str) -> None:
    """Config directive for every plugin with tables: ``config.add_migrations("pkg:migrations")``
    (an asset spec: the package and the folder holding its Alembic revisions)."""
    config.registry.setdefault(_REGISTRY_KEY, []).append(location)


def migration_locations(registry: Registry) -> list[str]:
    """The folders the app's plugins registered, in plugin order (the core's is implied)."""
    return list(registry.get(_REGISTRY_KEY, []))


def plugin_locations(
    plugins: Iterable[str], settings: Mapping[str, Any] | None = None
) -> list[str]:
    """The folders the named plugins register, for code that has an engine but no app.

    Builds a throwaway app with only those plugins (as an admin process, on an in-memory SQLite
    that is never opened, with an empty environment) and reads what their ``includeme``
    registered; ``settings`` supplies any a plugin requires. Every ``includeme`` runs, so name
    only plugins whose loading changes nothing outside the app (not one that sets up the
    process's logging); a plugin without tables registers no folder and can be left out.
    """
    from sensorhub import make_app  # here: sensorhub imports this package

    raw = {
        **(settings or {}),
        "sensorhub.database.url": "sqlite://",
        "sensorhub.plugins": " ".join(plugins),
    }
    app = make_app(raw, environ={}, process="admin")
    try:
        return migration_locations(app.registry)
    finally:
        app.registry["dbengine"].dispose()


def includeme(config: Configurator) -> None:
    config.registry[_REGISTRY_KEY] = []
    config.add_directive("add_migrations", add_migrations)
