"""The request ID: one identifier per request, in every log line, error body and response.

``request_id_tween_factory`` is the outermost tween (``under=INGRESS``). It accepts an inbound
``X-Request-ID`` only when it matches ``[A-Za-z0-9._-]{1,64}`` (anything else, a newline
included, could forge log lines or blow up label sets) and otherwise makes a UUID4. The ID is
kept in the WSGI environ, which pyramid_retry reuses for every attempt, so retries share it.
The request runs in its own copy of the context, with the ID bound into structlog's
contextvars; everything bound during the request (by any plugin) is gone when it ends, so a
waitress thread never carries one request's ID or sensor into the next.

Contract for plugins: read ``request.request_id``; never parse the header yourself.
"""

from __future__ import annotations

import contextvars
import random
import re
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

import structlog
from pyramid.tweens import INGRESS

if TYPE_CHECKING:
    from pyramid.config import Configurator
    from pyramid.registry import Registry
    from pyramid.request import Request
    from pyramid.response import Response

    Handler: TypeAlias = Callable[[Request], Response]

HEADER = "X-Request-ID"
ENVIRON_KEY = "sensorhub.request_id"
_VALID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def valid_request_id(value: str | None) -> bool:
    return value is not None and _VALID.fullmatch(value) is not None


def new_request_id() -> str:
    """A random version-4 UUID, drawn from :mod:`random` rather than ``os.urandom``.

    A request ID names a request; it guards nothing, so it needs no cryptographic source. And
    ``uuid.uuid4()`` reads ``os.urandom``, whose ``getrandom`` call gives up the GIL: under load
    one more hand-off between the server's threads for every request (docs/benchmarks.md). The
    ``random`` module seeds itself from the OS at start-up and again in every forked child, so
    worker processes forked from one loaded app do not repeat each other's IDs."""
    return str(uuid.UUID(int=random.getrandbits(128), version=4))  # noqa: S311 (not a secret)


def request_id(request: Request) -> str:
    """``request.request_id``: the ID chosen by the tween, or a new one outside the tween
    (scripts, ``bootstrap``)."""
    rid: str | None = request.environ.get(ENVIRON_KEY)
    if rid is None:
        inbound = request.environ.get("HTTP_X_REQUEST_ID")
        rid = inbound if valid_request_id(inbound) else new_request_id()
        request.environ[ENVIRON_KEY] = rid
    return rid


def request_id_tween_factory(handler: Handler, registry: Registry) -> Handler:
    def handle_in_request_context(request: Request) -> Response:
        structlog.contextvars.bind_contextvars(request_id=request.request_id)
        return handler(request)

    def request_id_tween(request: Request) -> Response:
        # A fresh copy of the context per request: whatever this request binds (request ID,
        # sensor id, …) disappears with it instead of bleeding into the thread's next request.
        response = contextvars.copy_context().run(handle_in_request_context, request)
        response.headers[HEADER] = request.request_id
        return response

    return request_id_tween


def includeme(config: Configurator) -> None:
    config.add_request_method(request_id, "request_id", reify=True)
    # Outermost, so every response (errors from any tween below included) carries the ID.
    config.add_tween("sensorhub.request_id.request_id_tween_factory", under=INGRESS)
