"""Serving: port binding from the settings table (twelve-factor VII), in one or more processes.

``[server:main] use = egg:sensorhub`` runs waitress on ``sensorhub.host``/``sensorhub.port``
(env ``SENSORHUB_HOST``/``SENSORHUB_PORT``), so several instances run side by side without
editing an ini. Other keys of the ``[server:main]`` section pass through to waitress.

``sensorhub.workers`` above 1 pre-forks: the parent binds the socket, forks that many worker
processes, each serving it with its own waitress and threads, and supervises them. One CPython
process runs Python on one core at a time (the GIL), so this is how a server uses the machine's
other cores. Per-process state stays per process: caches (auth's token lookups), the auth
guard's failure counts, the ingest writer thread (each worker group-commits its own requests;
on SQLite the workers' writers take turns through :func:`sensorhub.db.writer_turns`), and
metrics, which the metrics plugin adds up only in its multi-process mode. A worker that dies is
not replaced: the parent stops the others and exits non-zero, for the service manager to restart
the whole server (systemd ``Restart=on-failure``) rather than run on with fewer workers unseen.
SIGTERM or SIGINT to the parent stops the workers gracefully.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import socket
import sys
from collections.abc import Mapping
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

import structlog

from .settings import Setting, as_int, as_str

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication
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
    Setting("sensorhub.threads", as_int(1, 256), 8, "waitress worker threads"),
    Setting(
        "sensorhub.workers",
        as_int(1, 64),
        1,
        "server processes sharing the port (pre-forked; about one per CPU core); above 1 "
        "the metrics plugin needs PROMETHEUS_MULTIPROC_DIR",
    ),
    Setting(
        "sensorhub.trusted_proxy",
        as_str,
        "",
        "address of a reverse proxy whose X-Forwarded-For is believed (empty: none)",
    ),
)
DISPATCHER_KEY = "sensorhub.server.task_dispatcher"

log = structlog.get_logger(__name__)


def serve(app: Router, global_conf: Mapping[str, str], **server_options: str) -> None:
    """A ``paste.server_runner``: waitress, configured from the app's resolved settings."""
    settings = app.registry.settings
    options: dict[str, Any] = {
        "host": settings["sensorhub.host"],
        "port": settings["sensorhub.port"],
        "threads": settings["sensorhub.threads"],
        "ident": "sensorhub",
    }
    if settings["sensorhub.trusted_proxy"]:
        options.update(
            trusted_proxy=settings["sensorhub.trusted_proxy"],
            trusted_proxy_headers="x-forwarded-for x-forwarded-proto",
            clear_untrusted_proxy_headers=True,
        )
    options.update(server_options)
    workers = settings["sensorhub.workers"]
    if workers == 1:
        server = create_server(app, **options)
        log.info(
            "server_starting",
            host=options["host"],
            port=options["port"],
            threads=options["threads"],
        )
        server.run()
        return
    host, port = options.pop("host"), options.pop("port")
    listener = bind(host, port)
    log.info(
        "server_starting",
        host=host,
        port=listener.getsockname()[1],
        threads=options["threads"],
        workers=workers,
    )
    code = run_workers(app, listener, workers, options)
    if code:
        # pserve reports a SystemExit from its server as "Exiting" with status 0; a service
        # manager must see the failure to restart the server.
        logging.shutdown()
        os._exit(code)


def create_server(app: WSGIApplication, **options: Any) -> Any:  # waitress has no types
    """A waitress server for ``app``, its dispatcher shared so plugins can observe the thread
    pool (busy threads, queued requests)."""
    import waitress

    server = waitress.create_server(app, **options)
    registry = getattr(app, "registry", None)  # None: a bare WSGI app (the bench's baseline)
    if registry is not None:
        registry[DISPATCHER_KEY] = server.task_dispatcher
    return server


def bind(host: str, port: int, backlog: int = 1024) -> socket.socket:
    """The listening socket the workers share (``[::]`` and other IPv6 forms included)."""
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=backlog)


def run_workers(
    app: WSGIApplication, listener: socket.socket, workers: int, options: dict[str, Any]
) -> int:
    """Fork ``workers`` processes serving ``app`` on ``listener``; wait for them. The exit code:
    0 after a requested stop, 1 when a worker died on its own."""
    children = {_fork_worker(app, listener, options) for _ in range(workers)}
    listener.close()  # the workers have it; the parent only supervises
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            _signal(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    code = 0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        children.discard(pid)
        if not stopping:
            log.error(
                "worker_died",
                pid=pid,
                exit_code=os.waitstatus_to_exitcode(status),
                effect="stopping the other workers; restart the server",
            )
            stopping, code = True, 1
            for other in children:
                _signal(other, signal.SIGTERM)
    return code


def _fork_worker(app: WSGIApplication, listener: socket.socket, options: dict[str, Any]) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        code = _serve_in_worker(app, listener, options)
    except BaseException:
        log.exception("worker_failed")
    finally:
        # Never return into the parent's code (pserve's). Exit handlers run first: the ingest
        # writer commits what it has queued, logging flushes.
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _serve_in_worker(app: WSGIApplication, listener: socket.socket, options: dict[str, Any]) -> int:
    # Pooled connections opened before the fork belong to the parent (SQLAlchemy's recipe for
    # os.fork): drop them here without closing the parent's.
    engine = getattr(app, "registry", {}).get("dbengine")
    if engine is not None:
        engine.dispose(close=False)
    server = create_server(app, sockets=[listener], **options)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops us
    log.info("worker_started", pid=os.getpid())
    run_until_terminated(server)
    return 0


def run_until_terminated(server: Any) -> None:
    """Serve until SIGTERM, then close the server's sockets and return."""

    from waitress.wasyncore import ExitNow

    # ExitNow: waitress's event loop re-raises it; any other exception raised while a channel
    # is being handled is logged there as that channel's error and the worker serves on.
    class Terminated(ExitNow):  # type: ignore[misc]
        pass

    def stop(_signum: int, _frame: FrameType | None) -> NoReturn:
        raise Terminated

    signal.signal(signal.SIGTERM, stop)
    try:
        server.run()
    except Terminated:
        server.close()


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def includeme(config: Configurator) -> None:
    config.declare_settings(*SETTINGS)
