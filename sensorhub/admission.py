"""Admission: which requests this process takes on, so overload and shutdown are answered, not
queued.

A process admits at most ``sensorhub.threads`` requests into the app at a time (the in-flight
limit). A request that finds every slot taken waits for one only as long as its queueing budget
(``sensorhub.queue_timeout``, counted from when the server queued it, if the server says so) and
is otherwise answered at once with 503 + ``Retry-After``: at twice the capacity, admitted requests
keep their latency and the rest learn to come back, instead of everyone waiting in an unbounded
queue and timing out at the client after the work was done anyway.

Draining (:func:`begin_drain`, called by the production server on SIGTERM): ``/readyz`` answers
503 at once so a load balancer stops sending; requests the server had already queued finish with
their real answers; a request queued after that is answered 503 + ``Retry-After`` +
``Connection: close``.

Health checks are never shed or refused: an orchestrator must see a busy process as alive.

A request whose client hung up while it waited for a slot is not started (a client that timed
out would otherwise have its work done anyway, and retry it).

The server may put ``QUEUED_AT_ENVIRON_KEY`` (``time.monotonic()`` when the request was queued)
and ``CLIENT_GONE_ENVIRON_KEY`` in the environ; without them (waitress, tests) the wait counts
from when the tween saw the request and the client is assumed to be there.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from .errors import problem_response
from .settings import Setting, as_duration

if TYPE_CHECKING:
    from collections.abc import Callable

    from pyramid.config import Configurator
    from pyramid.registry import Registry
    from pyramid.request import Request
    from pyramid.response import Response

    Handler = Callable[[Request], Response]

QUEUED_AT_ENVIRON_KEY = "sensorhub.queued_at"
CLIENT_GONE_ENVIRON_KEY = "sensorhub.client_gone"  # a callable: has the client hung up?
_STATE_KEY = "sensorhub.admission"
HEALTH_PATHS = frozenset({"/healthz", "/readyz"})
RETRY_AFTER_SECONDS = "1"
# A request that started within this long of being queued: its client cannot have given up yet,
# so the hot path skips asking the socket.
CLIENT_CHECK_AFTER = 0.05

SETTINGS = (
    Setting(
        "sensorhub.queue_timeout",
        as_duration,
        0.5,
        "longest a request waits for a free slot (from when the server queued it) before it is "
        "answered 503 + Retry-After (load shedding)",
    ),
)


class Admission:
    """This process's in-flight slots and drain state (one per app, in the registry)."""

    def __init__(self, limit: int, queue_timeout: float):
        self.limit = limit
        self.queue_timeout = queue_timeout
        self._slots = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self.in_flight = 0
        self.shed = 0  # requests answered 503 for want of a slot, since start
        self.abandoned = 0  # requests not started because their client had hung up
        self.draining_since: float | None = None

    def enter(self, queued_at: float) -> bool:
        """Take a slot, waiting at most what is left of the queueing budget."""
        budget = self.queue_timeout - (time.monotonic() - queued_at)
        if not self._slots.acquire(timeout=max(0.0, budget)):
            with self._lock:
                self.shed += 1
            return False
        with self._lock:
            self.in_flight += 1
        return True

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1
        self._slots.release()

    def refuses(self, queued_at: float) -> bool:
        """Draining: a request queued after the drain began is refused."""
        since = self.draining_since
        return since is not None and queued_at >= since


def admission_of(registry: Registry) -> Admission:
    admission: Admission = registry[_STATE_KEY]
    return admission


def begin_drain(registry: Registry) -> None:
    """Stop taking new work (idempotent); safe to call from a signal handler."""
    admission = admission_of(registry)
    if admission.draining_since is None:
        admission.draining_since = time.monotonic()


def is_draining(registry: Registry) -> bool:
    return admission_of(registry).draining_since is not None


def admission_tween_factory(handler: Handler, registry: Registry) -> Handler:
    admission = admission_of(registry)

    max_body = registry.settings["sensorhub.max_request_body_size"]

    def admission_tween(request: Request) -> Response:
        if request.environ.get("PATH_INFO") in HEALTH_PATHS:  # raw: it may not be UTF-8
            return handler(request)
        if (request.content_length or 0) > max_body:
            return problem_response(
                request,
                413,
                f"the body is larger than the server's limit of {max_body} bytes "
                "(sensorhub.max_request_body_size): send less per request",
                headers={"Connection": "close"},  # its body is not read
            )
        queued_at = request.environ.get(QUEUED_AT_ENVIRON_KEY) or time.monotonic()
        if admission.refuses(queued_at):
            return problem_response(
                request,
                503,
                "the server is shutting down: retry, another instance will answer",
                headers={"Retry-After": RETRY_AFTER_SECONDS, "Connection": "close"},
            )
        if not admission.enter(queued_at):
            return problem_response(
                request,
                503,
                f"the server is at capacity ({admission.limit} in flight): retry "
                "after the delay in Retry-After",
                headers={"Retry-After": RETRY_AFTER_SECONDS},
            )
        try:
            client_gone = request.environ.get(CLIENT_GONE_ENVIRON_KEY)
            waited = time.monotonic() - queued_at > CLIENT_CHECK_AFTER
            if waited and client_gone is not None and client_gone():
                admission.abandoned += 1
                return problem_response(
                    request,
                    499,
                    "the client closed the connection before the request started",
                    title="Client Closed Request",
                )
            return handler(request)
        finally:
            admission.leave()

    return admission_tween


def includeme(config: Configurator) -> None:
    config.declare_settings(*SETTINGS)
    settings = config.get_settings()
    config.registry[_STATE_KEY] = Admission(
        settings["sensorhub.threads"], settings["sensorhub.queue_timeout"]
    )
    # Inside the request ID tween (a refusal carries the ID) and outside the transaction (a
    # refused request never opens one).
    config.add_tween(
        "sensorhub.admission.admission_tween_factory",
        under="sensorhub.request_id.request_id_tween_factory",
        over="pyramid_tm.tm_tween_factory",
    )
