"""The production server: ``sensorhub-serve <ini>`` runs gunicorn's pre-fork master and
``sensorhub.workers`` gthread workers, configured from the settings table (env > ini > default).

Granian measured faster (docs/benchmarks.md); gunicorn was chosen because every behaviour below
needs a hook it offers and granian does not (its worker class is ours to extend; its master has
fork and exit hooks). Gunicorn owns the process lifecycle; SensorHub only adds what it cannot
know:

- the app is built once in the master (a configuration mistake stops start-up with one line) and
  forked; each worker drops the pooled database connections it inherited (SQLAlchemy's fork
  recipe);
- ``PROMETHEUS_MULTIPROC_DIR`` is set before anything imports prometheus-client, emptied at start,
  and a dead worker's files are marked dead, so one scrape shows the whole server;
- each worker runs ``sensorhub.threads`` requests at a time plus as many spare threads, so health
  checks and fast 503s never queue behind application work (:mod:`sensorhub.admission`); the
  worker stamps when it queued each request, for the queueing budget;
- SIGTERM: the master stops accepting, each worker starts draining (``/readyz`` 503), finishes
  what it had, answers late arrivals 503 + ``Connection: close`` and exits within
  ``sensorhub.shutdown_grace``; the ingest writer commits what is queued before the exit;
- a worker that dies is replaced, logged and counted (``sensorhub_server_worker_restarts_total``);
  if the master dies, workers notice within a second and exit;
- ``sensorhub.max_requests`` and ``sensorhub.max_worker_memory`` recycle a worker gracefully;
- ``sensorhub.trusted_proxy``: ``REMOTE_ADDR`` becomes the client address that proxy saw
  (waitress does the same under ``pserve``), so per-client limits see clients, not the proxy.

Signals to the master: TERM/INT graceful stop, QUIT fast stop, HUP reload workers, TTIN/TTOU one
worker more/less.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import functools
import logging
import math
import os
import select
import selectors
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger as _GunicornLogger
from gunicorn.workers.gthread import TConn, ThreadWorker

from .lifecycle import close_app

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from pyramid.router import Router

    StartResponse = Callable[..., Any]
    WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

PR_SET_PDEATHSIG = 1  # linux/prctl.h
_request = threading.local()  # what the worker knows of the request its thread runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="sensorhub-serve",
        description="Serve SensorHub in production: gunicorn's pre-fork master and workers, "
        "configured by the ini's sensorhub.* settings (each overridable from SENSORHUB_*).",
    )
    parser.add_argument("config_uri", help="the ini file, e.g. production.ini")
    args = parser.parse_args(argv)
    if not Path(args.config_uri).is_file():
        sys.stderr.write(
            f"sensorhub-serve: {args.config_uri}: no such ini file; give the path of one, "
            "e.g. sensorhub-serve production.ini\n"
        )
        return 2
    metrics_dir = _prepare_metrics_directory()
    master = os.getpid()
    try:
        from pyramid.paster import get_app, setup_logging

        setup_logging(args.config_uri)
        try:
            app = get_app(args.config_uri)
        except SystemExit as error:  # sensorhub.main's one-line start-up error
            sys.stderr.write(f"{error}\n")
            return 2
        from .server import check_address

        settings = app.registry.settings
        # Gunicorn would retry the bind five times, logging each, then exit without saying
        # which setting to change.
        if problem := check_address(settings["sensorhub.host"], settings["sensorhub.port"]):
            close_app(app.registry)
            sys.stderr.write(f"sensorhub-serve: {problem}\n")
            return 1
        return Server(app).run()
    finally:
        # A worker leaves through here too (gunicorn ends it with SystemExit): only the master
        # removes the directory, once everything is over.
        if metrics_dir is not None and os.getpid() == master:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _prepare_metrics_directory() -> str | None:
    """Set ``PROMETHEUS_MULTIPROC_DIR`` before prometheus-client is imported: the operator's
    (emptied of a previous run's files) or a temporary one, removed at exit (returned)."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        os.makedirs(directory, exist_ok=True)
        for stale in Path(directory).glob("*.db"):
            stale.unlink()
        return None
    directory = tempfile.mkdtemp(prefix="sensorhub-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    return directory


def gunicorn_options(settings: dict[str, Any]) -> dict[str, Any]:
    """Gunicorn's configuration from SensorHub's resolved settings."""
    host = settings["sensorhub.host"]
    bind = f"[{host.strip('[]')}]" if ":" in host else host
    max_requests = settings["sensorhub.max_requests"]
    return {
        "bind": [f"{bind}:{settings['sensorhub.port']}"],
        "workers": settings["sensorhub.workers"] or os.cpu_count() or 1,
        "worker_class": f"{__name__}.Worker",
        # The in-flight limit plus as many spare threads: health checks and 503s for requests
        # beyond the limit are answered by the spares instead of queueing behind the work.
        "threads": 2 * settings["sensorhub.threads"],
        "worker_connections": settings["sensorhub.max_connections"],
        # Gunicorn takes whole seconds for these.
        "keepalive": max(1, math.ceil(settings["sensorhub.keepalive"])),
        "graceful_timeout": max(1, math.ceil(settings["sensorhub.shutdown_grace"])),
        # The heartbeat of a worker's event loop (a request is bounded by its own deadline).
        "timeout": max(30, int(settings["sensorhub.request_timeout"] * 3)),
        "max_requests": max_requests,
        "max_requests_jitter": max_requests // 10,
        "proc_name": "sensorhub",
        # No control socket: its default path ($HOME/.gunicorn) is shared by every instance.
        "control_socket_disable": True,
        "logger_class": f"{__name__}.Logger",
        "accesslog": None,  # the logging plugin writes one line per request
        "errorlog": "-",
        "loglevel": "info",
        "forwarded_allow_ips": settings["sensorhub.trusted_proxy"] or "127.0.0.1,::1",
        "pre_fork": _pre_fork,
        "post_fork": _post_fork,
        "worker_exit": _worker_exit,
        "child_exit": _child_exit,
    }


class Server(BaseApplication):  # type: ignore[misc]  # gunicorn ships no types
    """Gunicorn, given an app that is already built (so every worker forks the same one)."""

    def __init__(self, app: Router):
        self.application = app
        self.options = gunicorn_options(app.registry.settings)
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Router:
        return self.application

    def run(self) -> int:
        try:
            super().run()
        except SystemExit as error:
            return int(error.code or 0)
        return 0


class Logger(_GunicornLogger):  # type: ignore[misc]
    """Gunicorn's own records go to the process's logging (the logging plugin's pipeline, JSON
    in production) instead of handlers and a format of gunicorn's."""

    def setup(self, cfg: Any) -> None:
        self.error_log.setLevel(logging.INFO)
        self.error_log.propagate = True
        self.access_log.propagate = True
        self.error_log.addFilter(_one_line_for_read_timeouts)


def _one_line_for_read_timeouts(record: logging.LogRecord) -> bool:
    # A silent client closed after sensorhub.read_timeout is expected, not a traceback's worth.
    if record.exc_info and isinstance(record.exc_info[1], TimeoutError):
        record.msg, record.args, record.exc_info = "Closed a silent client (read timeout)", (), None
        record.levelno, record.levelname = logging.INFO, "INFO"
    return True


class _Connection(TConn):  # type: ignore[misc]
    """A client connection whose every read and write, once a thread serves it, waits at most
    ``read_timeout``: a client that stops sending in the middle of a request frees its thread."""

    read_timeout: float | None = None

    def init(self) -> None:
        super().init()  # runs before each request the connection carries
        self.sock.settimeout(self.read_timeout)


class Worker(ThreadWorker):  # type: ignore[misc]
    """Gunicorn's gthread worker, plus what SensorHub's admission and drain need."""

    wsgi: WSGIApp
    alive: bool
    nr_conns: int
    _memory_limit: int = 0

    def accept(self, listener: socket.socket) -> None:
        # A new connection waits on the event loop, not on a thread, until its first bytes
        # arrive (gunicorn would hold a thread for up to 5 s first): idle connections, a
        # slow-loris attack among them, hold no thread; one that sends nothing is closed after
        # sensorhub.keepalive.
        try:
            client, address = listener.accept()
        except OSError as error:
            if error.errno in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                return
            raise
        self.nr_conns += 1
        conn = _Connection(self.cfg, client, address, listener.getsockname())  # non-blocking
        conn.read_timeout = self.app.application.registry.settings["sensorhub.read_timeout"]
        conn.timeout = time.monotonic() + self.cfg.keepalive
        self.pending_conns.append(conn)  # in timeout order: every entry adds keepalive to now
        self.poller.register(
            client, selectors.EVENT_READ, functools.partial(self.on_pending_socket_readable, conn)
        )

    def enqueue_req(self, conn: Any) -> None:
        conn.sensorhub_queued_at = time.monotonic()
        super().enqueue_req(conn)

    def handle_request(self, req: Any, conn: Any) -> Any:
        _request.queued_at = getattr(conn, "sensorhub_queued_at", None)
        _request.sock = conn.sock
        try:
            return super().handle_request(req, conn)
        finally:
            self._recycle_if_too_big()

    def load_wsgi(self) -> None:
        super().load_wsgi()
        settings = self.app.application.registry.settings
        self._memory_limit = settings["sensorhub.max_worker_memory"]
        self.wsgi = _server_environ(self.wsgi, settings)

    def handle_exit(self, sig: int, frame: Any) -> None:
        from .admission import begin_drain

        begin_drain(self.app.application.registry)
        super().handle_exit(sig, frame)

    def _recycle_if_too_big(self) -> None:
        limit = self._memory_limit
        if limit and self.alive and _resident_mib() > limit:
            self.log.info("Recycling worker %s: resident memory above %s MiB", self.pid, limit)
            self.alive = False


def _server_environ(app: WSGIApp, settings: dict[str, Any]) -> WSGIApp:
    """Add to each request's environ what only the server knows."""
    from .admission import CLIENT_GONE_ENVIRON_KEY, QUEUED_AT_ENVIRON_KEY

    trusted_proxy = settings["sensorhub.trusted_proxy"]

    def with_server_environ(environ: dict[str, Any], start_response: StartResponse) -> Any:
        environ[QUEUED_AT_ENVIRON_KEY] = getattr(_request, "queued_at", None)
        sock = getattr(_request, "sock", None)
        if sock is not None:
            environ[CLIENT_GONE_ENVIRON_KEY] = functools.partial(_client_gone, sock)
        if trusted_proxy and environ.get("REMOTE_ADDR") == trusted_proxy:
            forwarded = environ.get("HTTP_X_FORWARDED_FOR", "")
            if forwarded:  # the proxy appends the address it saw last
                environ["REMOTE_ADDR"] = forwarded.rsplit(",", 1)[-1].strip()
        return app(environ, start_response)

    return with_server_environ


def _client_gone(sock: socket.socket) -> bool:
    """The client closed its end: nothing left to read and end-of-file (it gave up waiting)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True  # reset


def _resident_mib() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


# --- hooks (gunicorn calls them with the arbiter, i.e. the master, and the worker)


def _pre_fork(server: Any, worker: Any) -> None:
    # In the master, before each fork: beyond the first set, a worker replaces one.
    spawned = getattr(server, "_sensorhub_spawned", 0) + 1
    server._sensorhub_spawned = spawned
    if spawned > server.num_workers:
        _worker_restarts().inc()
        server.log.warning(
            "Replacing a worker (%s replaced since start)", spawned - server.num_workers
        )


def _post_fork(server: Any, worker: Any) -> None:
    # The kernel sends this worker SIGTERM (drain, then exit) the moment the master dies, even
    # by SIGKILL; gunicorn's own check of the parent only runs once a second.
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) == 0 and os.getppid() != server.pid:
        os.kill(os.getpid(), signal.SIGTERM)  # the master died during the fork
    engine = worker.app.application.registry.get("dbengine")
    if engine is not None:
        # Pooled connections opened before the fork are the master's: drop them here without
        # closing them under the master (SQLAlchemy's recipe for os.fork).
        engine.dispose(close=False)


def _worker_exit(server: Any, worker: Any) -> None:
    # In the worker, after its last request: the app's machinery (a writer) finishes here.
    close_app(worker.app.application.registry)


def _child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


_RESTARTS: Any = None


def _worker_restarts() -> Any:
    global _RESTARTS
    if _RESTARTS is None:
        from prometheus_client import Counter

        # Written by the master into the multi-process directory, so /metrics shows it.
        _RESTARTS = Counter(
            "sensorhub_server_worker_restarts",
            "Worker processes the server replaced (died, killed, recycled)",
        )
    return _RESTARTS


if __name__ == "__main__":
    sys.exit(main())
