"""The transport baseline: the smallest WSGI app a server can serve.

Every SensorHub scenario is reported as a ratio to this app's req/s measured in the same run on
the same server and settings (waitress, gunicorn or granian; threads, workers), so the figures
say what SensorHub costs above HTTP parsing and the socket round trip, whatever the machine.
"""

from __future__ import annotations

_BODY = b"Hello, World!\n"
_HEADERS = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(_BODY)))]


def app(environ, start_response):
    start_response("200 OK", _HEADERS)
    return [_BODY]
