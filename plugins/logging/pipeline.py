"""One pipeline for every logger in the process: structlog's and the standard library's.

Records from ``structlog.get_logger`` and from stdlib loggers (pyramid, waitress, sqlalchemy,
alembic, transaction, …) meet in one handler on the root logger, which renders both alike with
one chain of processors and writes them to one stream:

    structlog call ─ filter_by_level, shared ────────┐
                                                      ├─ exception → redact → [escape] → render
    stdlib record ── shared (ProcessorFormatter's     │
                     foreign_pre_chain) ──────────────┘

``shared`` = contextvars (request ID, sensor), level, logger name, ISO-8601 UTC timestamp.
Levels are the stdlib loggers' (``filter_by_level`` asks the structlog call's stdlib logger), so
``sensorhub.logging.levels`` applies to both kinds.

A structlog call does not become a stdlib ``LogRecord``: its last processor,
:func:`write_with_handler`, gives the event to the handler, which runs the same chain its
``ProcessorFormatter`` runs on stdlib records and writes the line (two record constructions, a
caller lookup and the formatter's bookkeeping per line saved: issue 14). So other handlers on the
root logger (a file, a test's capture) receive stdlib records only; when the plugin's handler is
no longer on the root logger, structlog calls fall back to stdlib records.

Exceptions become data *before* redaction (JSON: structlog's structured traceback; console: the
plain text one), never with local variables: structlog's rich tracebacks show locals by default,
and a local may hold a token.

The structlog side of the chain does not depend on the settings; everything that does lives in
the handler (its chain and formatter), which :func:`configure` replaces when another app (tests
build many) includes the plugin again: :func:`write_with_handler` finds the handler at each call.

Test hook: the handler looks up ``sys.stdout`` / ``sys.stderr`` at each write, so pytest's
``capsys``/``capfd`` capture real output without any special wiring.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

import structlog
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, Processor

from .processors import (
    dumps_one_line,
    escape_control_characters,
    put_essentials_first,
    redact_secrets,
)

# Library loggers quieter than the process level unless `sensorhub.logging.levels` says
# otherwise: at INFO SQLAlchemy logs every statement, and Alembic each of its plugins.
BASELINE_LEVELS = {"sqlalchemy": logging.WARNING, "alembic.runtime.plugins": logging.WARNING}


class StandardStreamHandler(logging.StreamHandler):
    """Writes to ``sys.stdout`` (or ``sys.stderr``) as it is at the moment of writing.

    A handler that kept the stream object from configuration time would keep writing into a
    stream that a test runner (or a daemoniser) has since replaced or closed.

    ``chain`` renders an event dict into the line; the formatter runs it on stdlib records
    (after its ``foreign_pre_chain``), :meth:`write_event` on structlog's events.
    """

    def __init__(self, stream_name: str = "stdout", chain: Sequence[Processor] = ()):
        self.stream_name = stream_name
        self.chain = tuple(chain)
        self.levelled: set[str] = set()  # loggers whose level the configuration set
        super().__init__()

    def write_event(self, logger: logging.Logger, method_name: str, event_dict: EventDict) -> None:
        """Render a structlog event with ``chain`` and write it as ``emit`` writes a record:
        one line, under the handler's lock (lines never interleave), flushed."""
        try:
            line: Any = event_dict
            for processor in self.chain:
                line = processor(logger, method_name, line)
            with self.lock:  # type: ignore[union-attr]  # createLock() made it
                stream = self.stream
                stream.write(line + self.terminator)
                stream.flush()
        except RecursionError:  # as StreamHandler.emit
            raise
        except Exception:
            self.handleError(logging.makeLogRecord({"msg": event_dict.get("event")}))

    @property
    def stream(self):
        return getattr(sys, self.stream_name)

    @stream.setter
    def stream(self, _value) -> None:
        pass  # StreamHandler.__init__ assigns one; the property always answers the live stream


def shared_processors() -> list:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def render_chain(output_format: str, colors: bool = False) -> list[Processor]:
    """Event dict (shared processors applied) -> the line: exception, redaction, rendering."""
    if output_format == "json":
        render_exception: Processor = structlog.processors.ExceptionRenderer(
            ExceptionDictTransformer(show_locals=False)
        )
        tail: list[Processor] = [
            put_essentials_first,
            structlog.processors.JSONRenderer(serializer=dumps_one_line),
        ]
    else:
        render_exception = structlog.processors.format_exc_info  # text, without locals
        tail = [
            escape_control_characters,
            structlog.dev.ConsoleRenderer(
                colors=colors, exception_formatter=structlog.dev.plain_traceback
            ),
        ]
    return [render_exception, redact_secrets, *tail]


def build_formatter(chain: Sequence[Processor]) -> logging.Formatter:
    """The handler's formatter for stdlib records: ``shared``, then ``chain``."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared_processors(), structlog.stdlib.ExtraAdder()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *chain],
    )


def write_with_handler(logger: Any, method_name: str, event_dict: EventDict) -> Any:
    """structlog's last processor: the plugin's handler renders and writes the event.

    Then the event is dropped (``DropEvent`` is how a processor ends an event in structlog):
    it has been written, and no stdlib record is made. Without the plugin's handler on the root
    logger (removed by a test, say), the event goes on to the stdlib logger as a record.
    """
    for handler in logging.root.handlers:
        if type(handler) is StandardStreamHandler:
            handler.write_event(logger, method_name, event_dict)
            raise structlog.DropEvent
    return structlog.stdlib.ProcessorFormatter.wrap_for_formatter(logger, method_name, event_dict)


def configure(
    output_format: str = "json",
    level: int = logging.INFO,
    levels: dict[str, int] | None = None,
    stream_name: str = "stdout",
) -> logging.Handler:
    """(Re)configure logging for the whole process; safe to call any number of times.

    Replaces the root logger's console handlers (this plugin's earlier one, and any plain
    ``StreamHandler`` such as pserve's ``[handler_console]``) with one handler writing to
    ``stream_name``; leaves other handlers (files, syslog, test capture) alone. Resets the
    levels an earlier call set, then applies :data:`BASELINE_LEVELS` and ``levels``.
    """
    stream = getattr(sys, stream_name)
    colors = output_format == "console" and is_tty(stream)
    chain = render_chain(output_format, colors)
    handler = StandardStreamHandler(stream_name, chain)
    handler.setFormatter(build_formatter(chain))

    root = logging.getLogger()
    for existing in list(root.handlers):
        if _is_console_handler(existing):
            root.removeHandler(existing)
            for name in getattr(existing, "levelled", ()):
                logging.getLogger(name).setLevel(logging.NOTSET)
    root.addHandler(handler)
    root.setLevel(level)

    for name, logger_level in {**BASELINE_LEVELS, **(levels or {})}.items():
        logging.getLogger(name).setLevel(logger_level)
        handler.levelled.add(name)

    # pserve's fileConfig disables every logger that existed before it ran and is not named in
    # the ini; the plugin, not the ini, decides what is logged.
    for logger in list(logging.root.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            logger.disabled = False
    logging.captureWarnings(True)

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,  # the stdlib logger's level: per-logger levels
            *shared_processors(),
            structlog.processors.StackInfoRenderer(),
            write_with_handler,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        # structlog's fast wrapper rather than structlog.stdlib's, whose stdlib-mimicking layer
        # was a tenth of a request line's cost (docs/benchmarks.md). It formats positional
        # arguments itself; a call below every level configured here ends at once, and
        # filter_by_level decides the others by their logger's level.
        wrapper_class=structlog.make_filtering_bound_logger(min([level, *(levels or {}).values()])),
        # Not cached: a module-level logger must follow a reconfiguration (another app in the
        # same process, a test restoring the defaults); the cost is a few microseconds a line.
        cache_logger_on_first_use=False,
    )
    return handler


def _is_console_handler(handler: logging.Handler) -> bool:
    # Exactly StreamHandler (not FileHandler & co.): what an ini's `class = StreamHandler` or
    # basicConfig installs. Its lines would repeat ours in another shape.
    return isinstance(handler, StandardStreamHandler) or type(handler) is logging.StreamHandler


def is_tty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
