"""``sensorhub-admin``: one-off admin processes (twelve-factor XII), same settings as the app.

Sub-commands come from the ``sensorhub.commands`` entry-point group, so plugins add their own
(``sensor``, ``prune``) without the core knowing them. A command is an object with:

- ``help``: one line for ``sensorhub-admin --help``;
- ``add_arguments(parser)``: its arguments, including the ``config_uri`` positional (use
  :func:`add_config_uri`);
- ``run(args, env) -> int | None``: does the work; ``env`` is ``pyramid.paster.bootstrap``'s
  dict (``env["request"]``, ``env["registry"]``); returns the number of rows it changed, if any.

The runner bootstraps the app from the ini (so plugins and settings are exactly the app's),
times the command and publishes :class:`sensorhub.events.AdminCommandFinished`, which the metrics
plugin pushes to a Pushgateway. Output meant for the operator goes to stdout; logs go through
the logging plugin's pipeline.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import Any, Protocol

import structlog
from pyramid.paster import bootstrap, setup_logging

from ..events import AdminCommandFinished
from ..lifecycle import close_app

ENTRY_POINT_GROUP = "sensorhub.commands"
log = structlog.get_logger(__name__)


class Command(Protocol):
    """What a ``sensorhub.commands`` entry point names (see the module docstring)."""

    help: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace, env: dict[str, Any]) -> int | None: ...


class CommandError(Exception):
    """An operator mistake (unknown sensor, bad argument): one line on stderr, exit 1, no
    traceback. Anything else is a bug and is logged with its traceback."""


def add_config_uri(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config_uri", help="the ini file, e.g. development.ini")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sensorhub-admin", description="SensorHub one-off admin commands."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for entry_point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name):
        command: Command = entry_point.load()
        sub = commands.add_parser(entry_point.name, help=command.help, description=command.help)
        command.add_arguments(sub)
        sub.set_defaults(_command=command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.config_uri)
    env = bootstrap(args.config_uri, options={"sensorhub.process": "admin"})
    started = time.perf_counter()
    succeeded, rows = False, None
    try:
        rows = args._command.run(args, env)
        succeeded = True
        return 0
    except SystemExit:
        raise
    except CommandError as error:
        sys.stderr.write(f"sensorhub-admin {args.command}: {error}\n")
        return 1
    except Exception as error:  # the operator sees one line; the log has the traceback
        log.error("admin_command_failed", command=args.command, exc_info=error)
        sys.stderr.write(f"sensorhub-admin {args.command}: {error}\n")
        return 1
    finally:
        env["registry"].notify(
            AdminCommandFinished(
                env["registry"], args.command, time.perf_counter() - started, succeeded, rows
            )
        )
        env["closer"]()
        close_app(env["registry"])
        env["registry"]["dbengine"].dispose()  # a one-off process leaves no connection behind
