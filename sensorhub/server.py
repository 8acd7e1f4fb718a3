"""Serving settings and the development server.

Port binding comes from the settings table (twelve-factor VII): ``sensorhub.host`` and
``sensorhub.port`` (env ``SENSORHUB_HOST``/``SENSORHUB_PORT``), so instances run side by side
without editing an ini. Two servers read them:

- ``pserve <ini>`` / ``make run``: waitress, one process (``[server:main] use = egg:sensorhub``,
  this module's :func:`serve`). Right for development and small installs.
- ``sensorhub-serve <ini>`` / ``make serve``: the production server, gunicorn's pre-fork master
  with ``sensorhub.workers`` worker processes (:mod:`sensorhub.prefork`), which drains on
  SIGTERM, replaces dead workers and sheds overload.

The remaining keys here configure both, where both have the notion.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import sys
from typing import TYPE_CHECKING, Any

import structlog

from .lifecycle import close_app
from .settings import Setting, as_duration, as_int, as_size, as_str

if TYPE_CHECKING:
    from types import FrameType

    from pyramid.config import Configurator
    from pyramid.router import Router

SETTINGS = (
    Setting(
        "sensorhub.host",
        as_str,
        "127.0.0.1",
        "address to listen on (0.0.0.0 or [::] to accept other hosts)",
    ),
    Setting("sensorhub.port", as_int(0, 65535), 6543, "TCP port to listen on"),
    Setting(
        "sensorhub.threads",
        as_int(1, 256),
        8,
        "requests one process runs at a time (its in-flight limit; beyond it, requests wait up "
        "to sensorhub.queue_timeout, then get 503)",
    ),
    Setting(
        "sensorhub.workers",
        as_int(0, 64),
        0,
        "sensorhub-serve: worker processes (0: one per CPU core); pserve runs one process",
    ),
    Setting(
        "sensorhub.request_timeout",
        as_duration,
        10.0,
        "the deadline of one request: database statement and lock timeouts, SQLite's busy "
        "timeout and the commit wait derive from it, so a stall answers 503 within it",
    ),
    Setting(
        "sensorhub.shutdown_grace",
        as_duration,
        25.0,
        "sensorhub-serve: on SIGTERM, how long requests in flight may finish before workers "
        "are killed (keep the service manager's stop timeout above it)",
    ),
    Setting(
        "sensorhub.keepalive",
        as_duration,
        5.0,
        "how long an idle keep-alive connection stays open",
    ),
    Setting(
        "sensorhub.read_timeout",
        as_duration,
        10.0,
        "sensorhub-serve: how long one read of a request (or write of its answer) waits on a "
        "silent client before its connection is closed",
    ),
    Setting(
        "sensorhub.max_connections",
        as_int(1, 100_000),
        1000,
        "sensorhub-serve: most client connections one worker holds (more wait in the backlog)",
    ),
    Setting(
        "sensorhub.max_request_body_size",
        as_size,
        4 * 2**20,
        "the largest request body the server takes at all: a declared Content-Length above it "
        "is refused with 413 before the body is read (a plugin's own limit must fit in it)",
    ),
    Setting(
        "sensorhub.max_requests",
        as_int(0, 10_000_000),
        0,
        "sensorhub-serve: recycle a worker after this many requests, with 10% jitter (0: never)",
    ),
    Setting(
        "sensorhub.max_worker_memory",
        as_int(0, 1_000_000),
        0,
        "sensorhub-serve: recycle a worker whose resident memory exceeds this many MiB, after "
        "its current requests (0: never)",
    ),
    Setting(
        "sensorhub.trusted_proxy",
        as_str,
        "",
        "address of a reverse proxy whose X-Forwarded-For is believed (empty: none)",
    ),
)

log = structlog.get_logger(__name__)


def serve(app: Router, global_conf: dict[str, str], **server_options: Any) -> None:
    """A ``paste.server_runner`` for ``pserve``: waitress in this one process, configured from
    the app's resolved settings. Other keys of ``[server:main]`` pass through to waitress."""
    import waitress

    settings = app.registry.settings
    options: dict[str, Any] = {
        "host": settings["sensorhub.host"],
        "port": settings["sensorhub.port"],
        "threads": settings["sensorhub.threads"],
        "channel_timeout": settings["sensorhub.keepalive"],
        "max_request_body_size": settings["sensorhub.max_request_body_size"],
        "ident": "sensorhub",
    }
    if settings["sensorhub.trusted_proxy"]:
        options.update(
            trusted_proxy=settings["sensorhub.trusted_proxy"],
            trusted_proxy_headers="x-forwarded-for x-forwarded-proto",
            clear_untrusted_proxy_headers=True,
        )
    options.update(server_options)
    try:
        server = waitress.create_server(app, **options)
    except OSError as error:
        # pserve answers a SystemExit from here with "Exiting ..." on stdout and status 0, so
        # the one line goes to stderr and the process ends with 1 itself (nothing is serving).
        close_app(app.registry)
        sys.stderr.write(f"sensorhub: {cannot_listen(options['host'], options['port'], error)}\n")
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(1)
    log.info(
        "server_starting",
        server="waitress",
        host=options["host"],
        port=server.effective_port,
        threads=options["threads"],
    )
    try:
        run_until_terminated(server)
    finally:
        close_app(app.registry)  # after the last request: plugins' writers commit what is queued


def cannot_listen(host: str, port: int, error: OSError) -> str:
    """One line for an operator whose server cannot listen: the address, why, and the settings
    that choose it."""
    address = f"[{host.strip('[]')}]:{port}" if ":" in host else f"{host}:{port}"
    if error.errno == errno.EADDRINUSE:
        why = "already in use (another server, or a SensorHub still running?)"
    else:
        why = f"cannot listen there ({error.strerror or error})"
    return (
        f"{address} is {why}: stop what holds it, or choose another port with sensorhub.port "
        "in the ini or env SENSORHUB_PORT (the address: sensorhub.host, env SENSORHUB_HOST)"
    )


def check_address(host: str, port: int) -> str | None:
    """:func:`cannot_listen`'s line if ``host:port`` cannot be bound right now, else None.

    For a server that binds later, in a way that retries and logs instead of saying why
    (gunicorn). Port 0 (any free port) always binds. Without SO_REUSEPORT a listening socket
    elsewhere refuses the bind, as it will refuse the server's.
    """
    if port == 0:
        return None
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except OSError as error:
        return cannot_listen(host, port, error)
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind
        try:
            probe.bind(address)
        except OSError as error:
            return cannot_listen(host, port, error)
    return None


def run_until_terminated(server: Any) -> None:
    """Run a waitress server until SIGTERM or SIGINT, then close its sockets and return."""
    from waitress.wasyncore import ExitNow

    # ExitNow: waitress's event loop re-raises it; any other exception raised while a channel
    # is being handled is logged there as that channel's error and the server serves on.
    class Terminated(ExitNow):  # type: ignore[misc]
        pass

    def stop(_signum: int, _frame: FrameType | None) -> None:
        raise Terminated

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.run()
    except Terminated:
        server.close()
        log.info("server_stopped", server="waitress")
        sys.stdout.flush()


def includeme(config: Configurator) -> None:
    config.declare_settings(*SETTINGS)
