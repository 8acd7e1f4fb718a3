"""Domain events: what happened, published by the plugin that did it, heard by whoever cares.

Publish with ``request.registry.notify(Event(...))``; subscribe with
``config.add_subscriber(handler, Event)``. Publishers and subscribers only share this module,
never each other's code (the ingestion plugin publishes, metrics and logging listen).

Invariant: events that report stored data (``EventsIngested``) are published only after the
transaction committed (``transaction`` after-commit hook, or after the group commit), so a
rolled-back request moves no counter. Use :func:`notify_after_commit` for that.
Fields are plain values with bounded sets where a metric label may use them (outcomes, reasons).
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
class CommitGroupFlushed:
    """A group commit wrote the queued events of several requests in one transaction."""

    requests: int
    events: int
    duration_seconds: float
    succeeded: bool


@dataclass(frozen=True)
class SensorAuthenticated:
    request: Any
    sensor_id: str


@dataclass(frozen=True)
class AuthenticationFailed:
    """A credential was presented and refused. ``reason`` is a bounded code: missing, malformed,
    bad_checksum, unknown, expired, revoked, disabled, wrong_scheme, token_in_query."""

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
