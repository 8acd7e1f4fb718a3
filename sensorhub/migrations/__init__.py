"""Alembic history for the core and the built-in plugins' tables.

Each built-in plugin's tables are a branch of their own (``branch_labels = ("<plugin>",)``,
``down_revision`` the core revision they need), so plugins evolve their schema independently;
``upgrade("heads")`` brings every branch up to date. A third-party plugin adds its own
versions folder with ``config.add_migrations("mypackage:migrations")``.

Used by ``sensorhub-admin migrate <ini>`` and by the test suite, which builds its schema by
running these migrations (so they are tested on SQLite and PostgreSQL).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

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


def add_migrations(config: Configurator, location: str) -> None:
    """Config directive for third-party plugins: ``config.add_migrations("pkg:migrations")``."""
    config.registry.setdefault(_REGISTRY_KEY, []).append(location)


def migration_locations(registry: Registry) -> list[str]:
    return list(registry.get(_REGISTRY_KEY, []))


def includeme(config: Configurator) -> None:
    config.registry[_REGISTRY_KEY] = []
    config.add_directive("add_migrations", add_migrations)
