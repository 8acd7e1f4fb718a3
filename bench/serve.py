"""One benchmark server: ``python -m bench.serve (hello | <ini>) --threads N --workers W
--ready F``.

Binds waitress to a free port on 127.0.0.1 (port 0, so parallel runs never collide), writes the
port to the ready file once the app is built and the socket listens, then serves until SIGTERM
or SIGINT. The hello app and SensorHub go through this same code (SensorHub's own
``sensorhub.server``, pre-forked when ``--workers`` is above 1), so they get identical waitress
settings and the ratio between them is the app's cost alone.

SensorHub is built the way pserve builds it (``setup_logging`` then ``get_app`` on the ini,
through ``sensorhub.main``), so plugins such as logging configure the process as in production.
"""

from __future__ import annotations

import argparse
import os


def build_app(target: str):
    if target == "hello":
        from .hello import app

        return app
    from pyramid.paster import get_app, setup_logging

    setup_logging(target)
    return get_app(target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.serve")
    parser.add_argument("target", help="'hello' or the path of a SensorHub ini file")
    parser.add_argument("--threads", type=int, required=True, help="waitress worker threads")
    parser.add_argument("--workers", type=int, default=1, help="server processes (pre-fork)")
    parser.add_argument("--ready", required=True, help="file to write the bound port to")
    args = parser.parse_args(argv)

    from sensorhub.server import bind, create_server, run_until_terminated, run_workers

    app = build_app(args.target)
    options = {"threads": args.threads, "ident": "sensorhub-bench"}
    listener = bind("127.0.0.1", 0)
    if args.workers > 1:
        _ready(args.ready, listener)  # the listening socket queues connections until they serve
        return run_workers(app, listener, args.workers, options)
    server = create_server(app, sockets=[listener], **options)
    _ready(args.ready, listener)
    try:
        run_until_terminated(server)
    except KeyboardInterrupt:
        pass
    return 0


def _ready(path: str, listener) -> None:
    # Write then rename: the parent never reads a half-written port number.
    partial = path + ".partial"
    with open(partial, "w") as f:
        f.write(str(listener.getsockname()[1]))
    os.replace(partial, path)


if __name__ == "__main__":
    raise SystemExit(main())
