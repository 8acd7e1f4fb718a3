"""The logging plugin: one structlog pipeline for the whole process, events to stdout.

Twelve-factor XI: every line of the process, SensorHub's own (structlog) and the libraries'
(pyramid, waitress, sqlalchemy, alembic, transaction: stdlib ``logging``), is one record of the
same shape on stdout (``pipeline.py``):

- ``sensorhub.logging.format = json`` (production): one JSON object per line with ``timestamp``
  (ISO-8601 UTC), ``level``, ``logger``, ``event``, ``request_id`` during a request, and a
  structured ``exception`` (no local variables) when there is one;
- ``console`` (development): aligned, coloured when stdout is a terminal, control characters
  escaped.

Secrets are censored in every record (``processors.py``). Each request ends with one
``request_finished`` line (``summary.py``).

Settings (env ``SENSORHUB_LOGGING_*``): ``format``, ``level``, ``levels`` (per logger, e.g.
``sqlalchemy.engine=INFO waitress=WARNING``), ``quiet_routes`` and ``quiet_sample_rate``.

Admin processes (``sensorhub-admin``): the command's stdout is its output, so logs go to
stderr, and when stderr is a terminal they use the console format unless
``SENSORHUB_LOGGING_FORMAT`` is set in the environment (an explicit choice beats the ini's
``json``; a cron job or systemd unit, not being a terminal, gets the ini's format).

Including the plugin again (tests build many apps in one process) replaces the previous
configuration; handlers never stack.
"""

from __future__ import annotations

import logging
import sys

from sensorhub.settings import (
    Kind,
    Setting,
    as_choice,
    as_float,
    as_list,
    described,
    settings_table,
)

from . import pipeline

_LEVEL_NAMES = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@described(Kind("level", example="INFO", choices=_LEVEL_NAMES), show=logging.getLevelName)
def as_level(raw: str) -> int:
    name = raw.strip().upper()
    name = "WARNING" if name == "WARN" else name
    if name not in _LEVEL_NAMES:
        raise ValueError("a level: " + ", ".join(_LEVEL_NAMES))
    return logging.getLevelName(name)


def _show_levels(levels: dict[str, int]) -> str:
    return " ".join(f"{name}={logging.getLevelName(level)}" for name, level in levels.items())


@described(Kind("logger levels", example="sqlalchemy.engine=INFO"), show=_show_levels)
def as_logger_levels(raw: str) -> dict[str, int]:
    """``"sqlalchemy.engine=INFO waitress=WARNING"`` -> ``{"sqlalchemy.engine": 20, ...}``."""
    levels = {}
    for item in raw.replace(",", " ").split():
        name, sep, level = item.partition("=")
        if not sep or not name:
            raise ValueError("logger=LEVEL pairs such as 'sqlalchemy.engine=INFO waitress=WARNING'")
        levels[name] = as_level(level)
    return levels


SETTINGS = (
    Setting(
        "sensorhub.logging.format",
        as_choice("json", "console"),
        "json",
        "json: one JSON object per line (production); console: readable, for a terminal",
    ),
    Setting(
        "sensorhub.logging.level",
        as_level,
        logging.INFO,
        "lowest level logged: DEBUG, INFO, WARNING, ERROR or CRITICAL",
    ),
    Setting(
        "sensorhub.logging.levels",
        as_logger_levels,
        {},
        "per-logger levels, e.g. 'sqlalchemy.engine=INFO waitress=WARNING' (SQLAlchemy is "
        "at WARNING unless named here)",
    ),
    Setting(
        "sensorhub.logging.quiet_routes",
        as_list,
        ["healthz", "readyz", "metrics"],
        "route names whose successful requests log no request_finished line (probes, "
        "scrapes); errors are always logged",
    ),
    Setting(
        "sensorhub.logging.quiet_sample_rate",
        as_float(0.0, 1.0),
        0.0,
        "fraction of the quiet routes' successful requests still logged (0: none)",
    ),
)


def includeme(config) -> None:
    config.declare_settings(*SETTINGS)
    settings = config.registry.settings
    output_format, stream_name = settings["sensorhub.logging.format"], "stdout"
    if config.registry.get("sensorhub.process") == "admin":
        stream_name = "stderr"
        if pipeline.is_tty(sys.stderr) and not _from_environment(
            config.registry, "sensorhub.logging.format"
        ):
            output_format = "console"
    pipeline.configure(
        output_format,
        settings["sensorhub.logging.level"],
        settings["sensorhub.logging.levels"],
        stream_name,
    )
    config.include(".summary")


def _from_environment(registry, key: str) -> bool:
    return any(
        resolved.setting.key == key and resolved.source == "env"
        for resolved in settings_table(registry)
    )
