"""One benchmark server process: ``python -m bench.serve (hello | <ini>) --threads N --ready F``.

Binds waitress to a free port on 127.0.0.1 (port 0, so parallel runs never collide), writes the
port to the ready file once the app is built and the socket listens, then serves until SIGTERM
or SIGINT. The hello app and SensorHub go through this same code, so they get identical waitress
settings and the ratio between them is the app's cost alone.

SensorHub is built the way pserve builds it (``setup_logging`` then ``get_app`` on the ini,
through ``sensorhub.main``), so plugins such as logging configure the process as in production.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys


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
    parser.add_argument("--ready", required=True, help="file to write the bound port to")
    args = parser.parse_args(argv)

    import waitress

    app = build_app(args.target)
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=args.threads,
                                    ident="sensorhub-bench")
    # Write then rename: the parent never reads a half-written port number.
    partial = args.ready + ".partial"
    with open(partial, "w") as f:
        f.write(str(server.effective_port))
    os.replace(partial, args.ready)

    def stop(_signum, _frame):
        server.close()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
