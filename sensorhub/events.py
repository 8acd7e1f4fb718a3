"""Domain events: what happened, published by the plugin that did it, heard by whoever cares.

Publish with :func:`publish` (``publish(request.registry, Event(...))``); subscribe with
``config.add_event_subscriber(handler, Event)``. Publishers and subscribers only share this
module, never each other's code (the ingestion plugin publishes, metrics and logging listen).

Not Pyramid's ``config.add_subscriber`` / ``registry.notify``: once any Pyramid subscriber is
registered, Pyramid notifies its own lifecycle events (NewRequest, ContextFound, BeforeRender,
NewResponse, …) on every request, ~11 µs a request (issue 14). ``publish`` also notifies Pyramid's
subscribers, so a plugin written against 0.1.0 (``config.add_subscriber(handler, Event)``) still
hears every event, at that cost.

Invariant: events that report stored data (``EventsIngested``) are published only after the
transaction committed (``transaction`` after-commit hook, or after the group commit), so a
rolled-back request moves no counter. Use :func:`notify_after_commit` for that.
Fields are plain values with bounded sets where a metric label may use them (outcomes, reasons).
Only what crosses plugins is an event: a plugin's internal figures (how many requests a group
commit served) go through the metrics contract, :mod:`sensorhub.metrics`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyramid.config import Configurator
    from pyramid.registry import Registry
    from pyramid.request import Request


@dataclass(frozen=True)
class EventsIngested:
    """A request's events were stored (published after commit)."""

    request: Any
    sensor_id: str
    batch_size: int  # items in the request
    accepted: int
    duplicates: int
    rejected: int
    rejected_by_reason: Mapping[str, int] = field(default_factory=dict)  # bounded reason codes


@dataclass(frozen=True)
class SensorAuthenticated:
    request: Any
    sensor_id: str


# Why a credential was refused: the only values AuthenticationFailed.reason takes, so a metric
# may use them as a label (and create each one's series at start, in this order).
AUTH_FAILURE_REASONS: tuple[str, ...] = (
    "missing",  # no Authorization header on a protected view
    "malformed",  # not a credential's shape (too long, not printable ASCII, a bad sensor token)
    "bad_checksum",  # a sensor token whose checksum does not match: mistyped or truncated
    "unknown",  # well-formed, but no such credential
    "expired",
    "revoked",
    "disabled",  # the token's sensor is disabled
    "wrong_scheme",  # an Authorization scheme other than Bearer
    "token_in_query",  # a credential in the URL's query string
)


@dataclass(frozen=True)
class AuthenticationFailed:
    """A credential was presented and refused; ``reason`` is one of :data:`AUTH_FAILURE_REASONS`
    (publishers must not invent others: metrics label by it)."""

    request: Any
    reason: str


@dataclass(frozen=True)
class RequestRateLimited:
    request: Any
    scope: str  # bounded: e.g. "auth_failures"


@dataclass(frozen=True)
class AdminCommandFinished:
    """A ``sensorhub-admin`` command ended (published by the core's command runner)."""

    registry: Any
    command: str
    duration_seconds: float
    succeeded: bool
    rows: int | None = None


_SUBSCRIBERS = "sensorhub.events.subscribers"  # registry key: {event type: [handler, ...]}


def add_event_subscriber(config: Configurator, subscriber: Any, event_type: type) -> None:
    """``config.add_event_subscriber(handler, EventsIngested)``: ``handler(event)`` is called
    for every event of exactly that type published in this app, in the order of subscription."""
    config.registry[_SUBSCRIBERS].setdefault(event_type, []).append(config.maybe_dotted(subscriber))


def publish(registry: Registry, event: object) -> None:
    """Call ``event``'s subscribers now, in this thread; their exceptions propagate."""
    for subscriber in registry.get(_SUBSCRIBERS, {}).get(type(event), ()):
        subscriber(event)
    registry.notify(event)  # Pyramid's subscribers (0.1.0's way): nothing when there are none


def notify_after_commit(request: Request, event: object) -> None:
    """Publish ``event`` once ``request.tm``'s transaction has committed; never if it aborts."""
    registry = request.registry

    def _hook(committed: bool) -> None:
        if committed:
            publish(registry, event)

    request.tm.get().addAfterCommitHook(_hook)


def includeme(config: Configurator) -> None:
    config.registry[_SUBSCRIBERS] = {}
    config.add_directive("add_event_subscriber", add_event_subscriber)
