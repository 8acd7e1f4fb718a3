"""One pipeline for every logger in the process: structlog's and the standard library's.

Records from ``structlog.get_logger`` and from stdlib loggers (pyramid, waitress, sqlalchemy,
alembic, transaction, …) meet in one handler on the root logger whose
``structlog.stdlib.ProcessorFormatter`` renders both alike:

    structlog call ─ filter_by_level, shared ─┐
                                              ├─ exception → redact → [escape] → render
    stdlib record ── shared (foreign_pre_chain)┘

``shared`` = contextvars (request ID, sensor), level, logger name, ISO-8601 UTC timestamp.
Exceptions become data *before* redaction (JSON: structlog's structured traceback; console: the
plain text one), never with local variables: structlog's rich tracebacks show locals by default,
and a local may hold a token.

The structlog side of the chain does not depend on the settings; everything that does lives in
the handler's formatter, which :func:`configure` replaces when another app (tests build many)
includes the plugin again.

Test hook: the handler looks up ``sys.stdout`` / ``sys.stderr`` at each write, so pytest's
``capsys``/``capfd`` capture real output without any special wiring.
"""

from __future__ import annotations

import logging
import sys

import structlog
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import Processor

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
    """

    def __init__(self, stream_name: str = "stdout"):
        self.stream_name = stream_name
        self.levelled: set[str] = set()  # loggers whose level the configuration set
        super().__init__()

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


def build_formatter(output_format: str, colors: bool = False) -> logging.Formatter:
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
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared_processors(), structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            render_exception,
            redact_secrets,
            *tail,
        ],
    )


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
    handler = StandardStreamHandler(stream_name)
    handler.setFormatter(build_formatter(output_format, colors))

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
            structlog.stdlib.filter_by_level,
            *shared_processors(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
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
