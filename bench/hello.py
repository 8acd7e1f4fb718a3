"""The transport baseline: the smallest WSGI app a server can serve; and the framework's, the
smallest Pyramid app that answers JSON (:func:`pyramid_app`).

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


def pyramid_app():
    """Pyramid alone: one route, one view, the stock JSON renderer, no tweens or settings. What
    ``api_root`` adds to it is SensorHub's stack (its tweens, plugins and renderer)."""
    from pyramid.config import Configurator

    with Configurator() as config:
        config.add_route("root", "/")
        config.add_view(lambda request: {"hello": "world"}, route_name="root", renderer="json")
        return config.make_wsgi_app()
