"""Domain events: what happened, published by the plugin that did it, heard by whoever cares.

Publish with ``request.registry.notify(Event(...))``; subscribe with
``config.add_subscriber(handler, Event)``. Publishers and subscribers only share this module,
never each other's code (the ingestion plugin publishes, metrics and logging listen).

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


def notify_after_commit(request: Request, event: object) -> None:
    """Publish ``event`` once ``request.tm``'s transaction has committed; never if it aborts."""
    registry = request.registry

    def _hook(committed: bool) -> None:
        if committed:
            registry.notify(event)

    request.tm.get().addAfterCommitHook(_hook)
