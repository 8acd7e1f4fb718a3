"""``sensorhub-admin``: one-off admin processes (twelve-factor XII), same settings as the app.

Every command takes the ini right after its command path, then its own arguments::

    sensorhub-admin migrate development.ini
    sensorhub-admin sensor show development.ini sen_123
    sensorhub-admin prune development.ini --older-than 30d

Sub-commands come from the ``sensorhub.commands`` entry-point group, so plugins add their own
(``sensor``, ``prune``) without the core knowing them. A command is an object with:

- ``help``: one line for ``sensorhub-admin --help``;
- ``add_arguments(parser)``: its own arguments. The runner gives every parser that runs a
  command (each leaf of nested sub-parsers) the ini as its first positional through
  :func:`add_config_uri`, whatever order the command adds its positionals in;
- ``run(args, env) -> int | None``: does the work; ``args.config_uri`` is the ini; ``env`` is
  ``pyramid.paster.bootstrap``'s dict (``env["request"]``, ``env["registry"]``); returns the
  number of rows it changed, if any; raises :class:`CommandError` for a mistake the operator
  can fix. Duration options take :func:`duration_option` as their ``type``. Text that came
  from stored data is printed through :mod:`sensorhub.text` (escaped).

Exit status: 0 done; 1 the command ran and failed (:class:`CommandError`, a database that is
not migrated, a bug); 2 nothing ran because the command line, the ini or its settings are wrong.
Every failure is one line on stderr saying what to do (a bug's traceback goes to the log).

The runner bootstraps the app from the ini (so plugins and settings are exactly the app's),
times the command and publishes :class:`sensorhub.events.AdminCommandFinished`, which the metrics
plugin pushes to a Pushgateway. Output meant for the operator goes to stdout; logs go through
the logging plugin's pipeline.
"""

from __future__ import annotations

import argparse
import configparser
import os
import sys
import time
from collections.abc import Iterator, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, NoReturn, Protocol

import structlog
from pyramid.paster import bootstrap, setup_logging
from sqlalchemy.exc import DBAPIError

from .. import migrations
from ..errors import first_line
from ..events import AdminCommandFinished, publish
from ..lifecycle import close_app
from ..settings import as_duration
from ..text import printable

ENTRY_POINT_GROUP = "sensorhub.commands"
EXIT_FAILED = 1  # the command ran and failed
EXIT_USAGE = 2  # nothing ran: the command line, the ini or its settings are wrong
log = structlog.get_logger(__name__)


class Command(Protocol):
    """What a ``sensorhub.commands`` entry point names (see the module docstring)."""

    help: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace, env: dict[str, Any]) -> int | None: ...


class CommandError(Exception):
    """An operator mistake (unknown sensor, bad argument): one line on stderr, exit 1, no
    traceback. Anything else is a bug and is logged with its traceback."""


class AdminParser(argparse.ArgumentParser):
    """argparse, with a usage mistake answered in one line that says where help is (argparse
    prints its whole usage block first, which buries the mistake). Nested sub-parsers are of
    this class too (``add_subparsers`` makes them of their parent's class)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {printable(message)}; see: {self.prog} --help\n")


def add_config_uri(parser: argparse.ArgumentParser) -> None:
    """Make the ini ``parser``'s first positional (``args.config_uri``).

    The runner calls it for every command's parser, so a command need not; calling it again,
    before or after adding other positionals, keeps one ini argument, first. argparse fills
    positionals in the order of its action list, hence the move to the front of it.
    """
    action = next((a for a in parser._actions if a.dest == "config_uri"), None)
    if action is None:
        action = parser.add_argument(
            "config_uri", metavar="INI", help="the ini file, e.g. development.ini"
        )
    for actions in (parser._actions, parser._positionals._group_actions):
        if action in actions:
            actions.remove(action)
            first = next((i for i, a in enumerate(actions) if not a.option_strings), len(actions))
            actions.insert(first, action)


def duration_option(raw: str) -> float:
    """``type=`` of a duration option (``--older-than 30d``): seconds, read as the settings read
    a duration (a unit is required), and more than 0: an option given as 0 would read as an
    option not given."""
    try:
        seconds = as_duration(raw)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected {error}") from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    parser = AdminParser(
        prog="sensorhub-admin",
        usage="sensorhub-admin [-h] COMMAND INI [arguments]",
        description="SensorHub one-off admin commands, with the app's settings and plugins. "
        "The ini comes right after the command: sensorhub-admin sensor show development.ini "
        "sen_123. Exit status: 1 the command failed, 2 nothing ran (a mistake in the command "
        "line, the ini or a setting).",
    )
    # prog given: argparse would otherwise build the commands' prog from the usage line above.
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, prog="sensorhub-admin"
    )
    for entry_point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name):
        command: Command = entry_point.load()
        sub = commands.add_parser(entry_point.name, help=command.help, description=command.help)
        command.add_arguments(sub)
        for leaf in _leaves(sub):
            add_config_uri(leaf)
            positionals = [a.dest for a in leaf._actions if not a.option_strings]
            leaf.set_defaults(_command=command, _prog=leaf.prog, _positionals=positionals)
    return parser


def _leaves(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """The parsers that run a command: ``parser`` itself, or the leaves of its sub-parsers."""
    nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not nested:
        yield parser
    for action in nested:
        for sub in {id(p): p for p in action.choices.values()}.values():
            yield from _leaves(sub)


def _is_ini(value: object) -> bool:
    return isinstance(value, str) and value.partition("#")[0].endswith(".ini")


def _accept_ini_last(args: argparse.Namespace) -> None:
    """The order before 1.1 (``sensor show sen_1 development.ini``), kept for one release.

    Unambiguous only where the last positional names an ini and the first does not: then the
    values are rotated back into place and a line on stderr shows the order to use.
    """
    names: list[str] = args._positionals
    values = [getattr(args, name) for name in names]
    if len(values) < 2 or _is_ini(values[0]) or not _is_ini(values[-1]):
        return
    if not all(isinstance(value, str) for value in values):
        return
    values = [values[-1], *values[:-1]]
    for name, value in zip(names, values, strict=True):
        setattr(args, name, value)
    sys.stderr.write(
        f"{args._prog}: deprecated: the ini goes first, as in "
        f"'{printable(' '.join([args._prog, *values]))}'; the ini-last order stops working "
        "in the next release\n"
    )


def _ini_problem(config_uri: str) -> str | None:
    """What is wrong with the ini file named, before paste answers it with a traceback."""
    path = Path(config_uri.partition("#")[0])
    if "://" in config_uri:  # a plaster URI (pastedeploy+ini://...): paste reads it
        return None
    if not path.is_file():
        return f"{config_uri}: no such ini file; give the path of one, e.g. development.ini"
    if not os.access(path, os.R_OK):
        return f"{config_uri}: cannot read it (permission denied); run as a user who can"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _accept_ini_last(args)
    prog: str = args._prog

    def fail(message: str, status: int) -> int:
        sys.stderr.write(f"{prog}: {printable(message)}\n")
        return status

    if problem := _ini_problem(args.config_uri):
        return fail(problem, EXIT_USAGE)
    try:
        setup_logging(args.config_uri)
        env = bootstrap(args.config_uri, options={"sensorhub.process": "admin"})
    except SystemExit as error:  # sensorhub.main's one line: a setting to fix
        return fail(str(error.code), EXIT_USAGE)
    except (LookupError, configparser.Error) as error:
        return fail(
            f"{args.config_uri} is not a SensorHub ini ({first_line(error)}); it needs an "
            "[app:main] section with use = egg:sensorhub, as development.ini has",
            EXIT_USAGE,
        )
    started = time.perf_counter()
    succeeded, rows = False, None
    try:
        rows = args._command.run(args, env)
        succeeded = True
        return 0
    except SystemExit:
        raise
    except CommandError as error:
        return fail(str(error), EXIT_FAILED)
    except DBAPIError as error:
        if args.command != "migrate" and not _schema_is_current(env["registry"]):
            return fail(
                "the database is not migrated to this version (missing tables or columns): "
                f"run sensorhub-admin migrate {args.config_uri}",
                EXIT_FAILED,
            )
        log.error("admin_command_failed", command=args.command, exc_info=error)
        return fail(first_line(error), EXIT_FAILED)
    except Exception as error:  # the operator sees one line; the log has the traceback
        log.error("admin_command_failed", command=args.command, exc_info=error)
        return fail(first_line(error), EXIT_FAILED)
    finally:
        publish(
            env["registry"],
            AdminCommandFinished(
                env["registry"], args.command, time.perf_counter() - started, succeeded, rows
            ),
        )
        env["closer"]()
        close_app(env["registry"])
        env["registry"]["dbengine"].dispose()  # a one-off process leaves no connection behind


def _schema_is_current(registry: Any) -> bool:
    """Whether the database is at the heads of the app's migrations (False if unreadable)."""
    try:
        return migrations.is_current(registry["dbengine"], migrations.migration_locations(registry))
    except Exception:  # the database is down too: the original error is the one to report
        return True
