"""One benchmark server: ``python -m bench.serve (hello | pyramid | bare:<db> | <ini>) --server S
--threads N --workers W --ready F``.

Serves the app on 127.0.0.1 with one of the servers SensorHub may run in production, writes the
port to the ready file once the app is built and the port accepts connections, then serves until
SIGTERM or SIGINT. The hello app and SensorHub go through this same code with the same server
settings, so the ratio between them is the app's cost alone on that server:

- ``waitress``: one process, ``waitress.create_server`` on port 0 with ``--threads`` threads
  (``--workers`` above 1 is refused: waitress does not pre-fork).
- ``gunicorn``: gunicorn's arbiter in this process (``gunicorn.app.base.BaseApplication``), the
  ``gthread`` worker with ``--threads`` threads in each of ``--workers`` processes, the app
  built once before the fork (``preload_app``); each worker drops the database pool's
  connections it inherited (SQLAlchemy's recipe for ``os.fork``).
- ``granian``: ``granian --interface wsgi`` as a child of this process (the same session, so a
  signal to the process group reaches all of it), ``--blocking-threads`` = ``--threads`` per
  worker; each worker imports ``bench.wsgi_app``, which builds the app named by
  ``$BENCH_APP``. SIGTERM or SIGINT here is passed on to granian, and this process exits with
  its status.

gunicorn and granian bind a port picked here (see :func:`free_port`). Nothing here comes from
``sensorhub.server``: the bench measures the servers themselves, not SensorHub's launcher.

SensorHub is built the way pserve builds it (``setup_logging`` then ``get_app`` on the ini,
through ``sensorhub.main``), so plugins such as logging configure the process as in production.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import subprocess
import sys
import time

SERVERS = ("waitress", "gunicorn", "granian")
HOST = "127.0.0.1"
APP_ENV = "BENCH_APP"  # what bench.wsgi_app builds: 'hello', 'pyramid', 'bare:<db>' or an ini
BARE_DRIVER = "bare:"  # then the path of a SensorHub SQLite database (bench/bare_driver.py)
START_TIMEOUT = 60.0  # seconds for granian to accept connections
STOP_TIMEOUT = 10  # seconds gunicorn/granian give their workers to finish on SIGTERM


def build_app(target: str):
    if target == "hello":
        from .hello import app

        return app
    if target == "pyramid":
        from .hello import pyramid_app

        return pyramid_app()
    if target.startswith(BARE_DRIVER):
        from .bare_driver import make_app

        return make_app(target.removeprefix(BARE_DRIVER))
    from pyramid.paster import get_app, setup_logging

    setup_logging(target)
    return get_app(target)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.serve")
    parser.add_argument(
        "target",
        help="'hello', 'pyramid' (bench/hello.py), 'bare:<SQLite file>' (bench/bare_driver.py) "
        "or the path of a SensorHub ini file",
    )
    parser.add_argument(
        "--server", choices=SERVERS, default="waitress", help="the HTTP server (waitress)"
    )
    parser.add_argument(
        "--threads", type=int, required=True, help="request threads per server process"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="server processes (pre-fork; not waitress)"
    )
    parser.add_argument("--ready", required=True, help="file to write the bound port to")
    args = parser.parse_args(argv)
    if args.threads < 1 or args.workers < 1:
        parser.error("--threads and --workers must be >= 1")
    if args.server == "waitress" and args.workers > 1:
        parser.error("waitress serves in one process: --workers above 1 needs gunicorn or granian")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.server == "waitress":
        return serve_waitress(args)
    if args.server == "gunicorn":
        return serve_gunicorn(args)
    return serve_granian(args)


# -- waitress


def serve_waitress(args: argparse.Namespace) -> int:
    import waitress
    from waitress.wasyncore import ExitNow

    # ExitNow: waitress's event loop re-raises it; any other exception raised while a channel
    # is being handled is logged there as that channel's error and the loop serves on.
    class Terminated(ExitNow):
        pass

    def stop(_signum, _frame):
        raise Terminated

    app = build_app(args.target)
    server = waitress.create_server(
        app, host=HOST, port=0, threads=args.threads, ident="sensorhub-bench"
    )
    try:
        signal.signal(signal.SIGTERM, stop)
        write_ready(args.ready, server.effective_port)
        server.run()
    except (Terminated, KeyboardInterrupt):
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        server.close()
    return 0


# -- gunicorn


def serve_gunicorn(args: argparse.Namespace) -> int:
    from gunicorn.app.base import BaseApplication

    port = free_port()

    def when_ready(_arbiter) -> None:
        # In the arbiter, its listener bound, before the workers fork: a connection is queued
        # until a worker accepts it, and the bench's health request waits for one.
        wait_until_accepting(port, timeout=START_TIMEOUT)
        write_ready(args.ready, port)

    def post_fork(_arbiter, _worker) -> None:
        # Pooled connections opened before the fork belong to the arbiter: drop them here
        # without closing them (SQLAlchemy's recipe for os.fork).
        registry = getattr(application.callable, "registry", None)  # None: the hello app
        if registry is not None and registry.get("dbengine") is not None:
            registry["dbengine"].dispose(close=False)

    options = {
        "bind": [f"{HOST}:{port}"],
        "worker_class": "gthread",
        "workers": args.workers,
        "threads": args.threads,
        "preload_app": True,
        "post_fork": post_fork,
        "when_ready": when_ready,
        "graceful_timeout": STOP_TIMEOUT,
        "proc_name": "sensorhub-bench",
        # gunicorn >= 25.1 opens a control socket at one path per user ($XDG_RUNTIME_DIR or
        # ~/.gunicorn): the bench runs several arbiters at once and needs none.
        "control_socket_disable": True,
        "loglevel": "info",
    }

    class BenchApplication(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self):
            return build_app(args.target)

    application = BenchApplication()
    # Runs the arbiter until SIGTERM (graceful stop) or SIGINT, then exits (SystemExit); in a
    # worker, the same SystemExit ends the process once the worker stops.
    application.run()
    return 0


# -- granian


def serve_granian(args: argparse.Namespace) -> int:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "granian",
        "--interface",
        "wsgi",
        "--workers",
        str(args.workers),
        "--blocking-threads",
        str(args.threads),
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers-kill-timeout",
        str(STOP_TIMEOUT),
        "--log-level",
        "info",
        "bench.wsgi_app:app",
    ]
    environ = {**os.environ, APP_ENV: args.target}
    stopping = False
    child = subprocess.Popen(command, env=environ, stdin=subprocess.DEVNULL)

    def stop(_signum, _frame) -> None:
        nonlocal stopping
        stopping = True
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not stopping and child.poll() is None:
            if accepts(port):
                write_ready(args.ready, port)
                break
            if time.monotonic() > deadline:
                print(f"bench.serve: granian did not listen on :{port}", file=sys.stderr)
                stop(signal.SIGTERM, None)
                break
            time.sleep(0.05)
        kill_at = None
        while True:
            try:
                code = child.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if stopping and kill_at is None:
                    kill_at = time.monotonic() + STOP_TIMEOUT + 5
                elif kill_at is not None and time.monotonic() > kill_at:
                    child.kill()
    except BaseException:
        if child.poll() is None:
            child.kill()
            child.wait()
        raise
    if stopping:
        return 0 if code in (0, -signal.SIGTERM) else code
    print(f"bench.serve: granian exited on its own with status {code}", file=sys.stderr)
    return code or 1


# -- helpers


def free_port() -> int:
    """A port for a server that binds by number (gunicorn, granian).

    Picked below the kernel's ephemeral range, which outgoing connections (wrk's, the bench's
    HTTP requests, other tests') take their local ports from, so none of them can take it in
    the moment between this check and the server's bind."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    candidates = list(range(10000, max(low, 10001)))
    random.shuffle(candidates)
    for port in candidates[:200]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((HOST, port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))  # fall back on the kernel's choice
        return probe.getsockname()[1]


def accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1.0):
            return True
    except OSError:
        return False


def wait_until_accepting(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not accepts(port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing accepts connections on {HOST}:{port}")
        time.sleep(0.05)


def write_ready(path: str, port: int) -> None:
    # Write then rename: the parent never reads a half-written port number.
    partial = path + ".partial"
    with open(partial, "w") as f:
        f.write(str(port))
    os.replace(partial, path)


if __name__ == "__main__":
    raise SystemExit(main())
