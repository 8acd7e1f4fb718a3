"""``Client``: spool events durably, deliver them in the background, exactly once.

``send``/``send_many`` give each event a time-ordered ``eventId`` (UUIDv7) unless it has one,
write it to the :class:`~sensorhub_client.spool.Spool` and return once it is on disk. A sender
thread posts the oldest waiting events as ``{"events": [...]}`` batches of up to the server's
``maxEvents`` and ``maxBodyBytes`` (read from ``GET /api/v1/``), when enough are waiting
(``batch_size``), when the oldest has waited ``max_age`` seconds, or when asked to flush.

What each answer does to the events of a batch:

========================================  ==================================================
the server answers                        the client
========================================  ==================================================
201, item ``accepted`` / ``duplicate``    removes it from the spool
201 item or 422 error ``rejected``        moves it to the spool's ``rejected`` table, calls
                                          ``on_rejected``; never sends it again
413 (too large), 400                      splits the batch; a lone event is rejected
429, 503 with ``Retry-After``             keeps them; waits that long (at most
                                          ``retry_after_cap``), then resends
no answer, 5xx, 429/503 without one       keeps them; waits with jittered exponential
                                          backoff (at most ``max_backoff``), then resends
401                                       stops: :class:`TokenRefused` says why (revoked,
                                          expired, unknown…); the events stay spooled
3xx, 403, 404, 405, 415                   stops: :class:`ServerRefused`
========================================  ==================================================

A resend carries the same ``eventId``, so an event whose answer was lost (a crash, a timeout,
the server killed after its commit) comes back ``duplicate`` and is stored once.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .ids import new_event_id
from .spool import Rejected, SourcePosition, Spool, Spooled
from .transport import Answer, ConnectionFailed, Transport

log = logging.getLogger("sensorhub_client")

EVENTS_PATH = "/api/v1/events"
API_ROOT_PATH = "/api/v1/"
# What a server that does not say (or an old one) takes: the ingest plugin's defaults.
DEFAULT_MAX_EVENTS = 1000
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
FATAL_STATUSES = frozenset({403, 404, 405, 415})
_ITEM_INDEX = re.compile(r"events\[(\d+)\]")
_ERROR_DESCRIPTION = re.compile(r'error_description="([^"]*)"')


class ClientError(Exception):
    """The server will not take events from this client as it is configured: sending stops."""


class TokenRefused(ClientError):
    """401: the server refused the token; the message says why (from ``WWW-Authenticate``)."""


class ServerRefused(ClientError):
    """A 4xx that no resend can fix (wrong URL, no ingest on that server, …)."""


@dataclass
class Stats:
    """What the client has done since it started (a snapshot from :meth:`Client.stats`)."""

    spooled: int = 0
    accepted: int = 0
    duplicates: int = 0  # answered ``duplicate``: resends of events whose answer was lost
    rejected: int = 0
    requests: int = 0  # to the server, GET /api/v1/ included
    connection_failures: int = 0
    statuses: Counter[int] = field(default_factory=Counter)  # answers by HTTP status
    waits: list[float] = field(default_factory=list)  # each pause before a resend, seconds


class Client:
    """Store-and-forward sender of events to one SensorHub. Thread-safe; use as a context
    manager, or call :meth:`close`, to flush before the process ends (whatever is not
    delivered stays in the spool and goes out with the next ``Client`` on the same spool)."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        spool: str | Spool = "sensorhub-spool.sqlite",
        batch_size: int | None = None,
        max_age: float = 1.0,
        gzip_above: int = 4096,
        timeout: float = 30.0,
        max_backoff: float = 30.0,
        retry_after_cap: float = 300.0,
        on_rejected: Callable[[Rejected], object] | None = None,
    ):
        self.transport = Transport(base_url, token, timeout=timeout, gzip_above=gzip_above)
        self.spool = spool if isinstance(spool, Spool) else Spool(spool)
        self.batch_size = batch_size
        self.max_age = max_age
        self.max_backoff = max_backoff
        self.retry_after_cap = retry_after_cap
        self.on_rejected = on_rejected
        self._cond = threading.Condition()
        self._stats = Stats()
        self._pending = self.spool.pending()
        self._oldest = self.spool.oldest_spooled_at()
        self._flushing = 0  # callers waiting in flush()/close()
        self._stopping = False
        self._fatal: ClientError | None = None
        self._not_before = 0.0  # monotonic: no request before this (backoff)
        self._failures = 0  # consecutive failed requests
        self._limits: tuple[int, int] | None = None  # the server's (maxEvents, maxBodyBytes)
        self._split_cap: int | None = None  # most events per request after a 413
        self._thread = threading.Thread(target=self._run, name="sensorhub-sender", daemon=True)
        self._thread.start()

    # --- the caller's side

    def send(self, event: Mapping[str, Any]) -> str:
        """Spool one event (durably) for delivery; returns its ``eventId``."""
        return self.send_many([event])[0]

    def send_many(
        self,
        events: Iterable[Mapping[str, Any]],
        *,
        source: tuple[str, SourcePosition] | None = None,
    ) -> list[str]:
        """Spool events in one durable transaction; returns their ``eventId`` s in order.

        An event without ``eventId`` gets a new UUIDv7, one without ``ts`` the current time
        (epoch milliseconds: the time it happened, not the time it is delivered). ``source``
        (a reader's name and position) is saved in the same transaction (the CLI's file
        position). Raises ``TypeError``/``ValueError`` for what cannot be sent as JSON, before
        anything is spooled, and the client's :class:`ClientError` once it has stopped."""
        self._raise_if_stopped()
        prepared = [prepare(event) for event in events]
        added = self.spool.add(prepared, source)
        with self._cond:
            self._stats.spooled += added
            self._pending += added
            if self._oldest is None and self._pending:
                self._oldest = time.time()
            self._cond.notify_all()
        return [event.event_id for event in prepared]

    def flush(self, timeout: float | None = None) -> bool:
        """Send what is spooled now and wait until the server has answered for all of it (or
        ``timeout`` seconds); True when nothing is left waiting."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._flushing += 1
            self._cond.notify_all()
            try:
                while self._pending and self._fatal is None and self._thread.is_alive():
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        break
                    self._cond.wait(remaining)
            finally:
                self._flushing -= 1
        self._raise_if_stopped()
        return self._pending == 0

    def close(self, timeout: float = 10.0) -> None:
        """Flush for at most ``timeout`` seconds, then stop the sender. Undelivered events stay
        in the spool. Raises the :class:`ClientError` that stopped sending, if one did."""
        try:
            self.flush(timeout)
        except ClientError:
            pass
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(self.transport.timeout + 1)
        self.transport.close()
        if not self._thread.is_alive():
            self.spool.close()
        self._raise_if_stopped(closing=True)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def pending(self) -> int:
        """Events spooled and not yet answered for."""
        return self._pending

    def stats(self) -> Stats:
        with self._cond:
            return replace(
                self._stats, statuses=Counter(self._stats.statuses), waits=list(self._stats.waits)
            )

    def rejected(self) -> list[Rejected]:
        """Every event the server refused, from the spool (they are never resent)."""
        return self.spool.rejected()

    def _raise_if_stopped(self, closing: bool = False) -> None:
        if self._fatal is not None:
            raise self._fatal
        if not closing and self._stopping:
            raise RuntimeError("this client is closed")

    # --- the sender thread

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._due():
                    if self._stopping or self._fatal is not None:
                        return
                    self._cond.wait(self._wait_time())
                if self._stopping and not self._flushing:
                    return
            try:
                self._deliver_one_batch()
            except ClientError as error:
                log.error("sensorhub_client_stopped: %s", error)
                with self._cond:
                    self._fatal = error
                    self._cond.notify_all()
                return
            except Exception as error:  # a bug or a full disk: keep the events, try later
                log.exception("sensorhub_client_error")
                self._retry_later(None, f"{type(error).__name__}: {error}")

    def _due(self) -> bool:
        if not self._pending or self._fatal is not None or time.monotonic() < self._not_before:
            return False
        if self._flushing or self._limits is None:  # the limits are read before anything else
            return True
        if self._stopping:
            return False
        if self._pending >= self._batch_count():
            return True
        return self._age_left() <= 0

    def _age_left(self) -> float:
        """Seconds until the oldest waiting event is due by age. Spool times are wall-clock (they
        outlive the process); a clock set back (a sensor's first NTP sync) makes them due now
        rather than hours from now."""
        if self._oldest is None:
            return self.max_age
        age = time.time() - self._oldest
        return 0.0 if age < 0 else self.max_age - age

    def _wait_time(self) -> float | None:
        waits = []
        backoff = self._not_before - time.monotonic()
        if backoff > 0:
            waits.append(backoff)
        elif self._pending:  # (during a backoff, age does not matter)
            waits.append(self._age_left())
        return max(0.01, min(waits)) if waits else None

    def _batch_count(self) -> int:
        count = self._limits[0] if self._limits else DEFAULT_MAX_EVENTS
        if self.batch_size is not None:
            count = min(count, self.batch_size)
        if self._split_cap is not None:
            count = min(count, self._split_cap)
        return max(1, count)

    def _deliver_one_batch(self) -> None:
        if self._limits is None:
            self._limits = self._read_limits()
            return  # now that the batch size is known, is a batch due?
        batch = self.spool.take(self._batch_count(), self._limits[1])
        if not batch:
            return
        body = ('{"events":[' + ",".join(event.body for event in batch) + "]}").encode()
        try:
            answer = self.transport.post_json(EVENTS_PATH, body)
        except ConnectionFailed as error:
            self._count(None)
            self._retry_later(None, str(error))
            return
        self._count(answer)
        self._handle(answer, batch)

    def _count(self, answer: Answer | None) -> None:
        with self._cond:
            self._stats.requests += 1
            if answer is None:
                self._stats.connection_failures += 1
            else:
                self._stats.statuses[answer.status] += 1

    def _read_limits(self) -> tuple[int, int] | None:
        try:
            answer = self.transport.get(API_ROOT_PATH)
        except ConnectionFailed as error:
            self._count(None)
            self._retry_later(None, f"reading {API_ROOT_PATH}: {error}")
            return None
        self._count(answer)
        if answer.status != 200:
            self._check_fatal(answer)
            self._retry_later(answer, f"reading {API_ROOT_PATH}: HTTP {answer.status}")
            return None
        document = answer.json()
        ingest: dict[str, Any] = {}
        if isinstance(document, dict) and isinstance(document.get("capabilities"), dict):
            ingest = document["capabilities"].get("ingest") or {}
        if not ingest:
            raise ServerRefused(
                f"{self.transport.base_url} does not take events (no ingest capability at "
                f"{API_ROOT_PATH}): check the URL, or load the ingest plugin on the server"
            )
        return (
            int(ingest.get("maxEvents", DEFAULT_MAX_EVENTS)),
            int(ingest.get("maxBodyBytes", DEFAULT_MAX_BODY_BYTES)),
        )

    def _handle(self, answer: Answer, batch: list[Spooled]) -> None:
        status = answer.status
        if status in (200, 201):
            self._settle_results(answer, batch)
        elif status == 422:
            self._settle_refused_items(answer, batch)
        elif status in (400, 413):
            self._split(answer, batch)
        elif status in (429, 503) or status >= 500:
            self._retry_later(answer, f"HTTP {status}: {_detail(answer)}")
        else:
            self._check_fatal(answer)
            self._retry_later(answer, f"HTTP {status}: {_detail(answer)}")

    def _check_fatal(self, answer: Answer) -> None:
        if answer.status == 401:
            why = _ERROR_DESCRIPTION.search(answer.headers.get("www-authenticate", ""))
            raise TokenRefused(
                f"the server refused the token (401): {why[1] if why else _detail(answer)}; "
                f"nothing more is sent, and {self._pending} events stay in the spool "
                f"{self.spool.path} until a client with a valid token sends them"
            )
        if 300 <= answer.status < 400:
            raise ServerRefused(
                f"the server redirects ({answer.status}) to "
                f"{answer.headers.get('location', 'another address')}: give the client that URL; "
                f"{self._pending} events stay in the spool {self.spool.path}"
            )
        if answer.status in FATAL_STATUSES:
            raise ServerRefused(
                f"the server refused the events ({answer.status}): {_detail(answer)}; "
                f"{self._pending} events stay in the spool {self.spool.path}"
            )

    def _settle_results(self, answer: Answer, batch: list[Spooled]) -> None:
        document = answer.json()
        results = document.get("results") if isinstance(document, dict) else None
        if not isinstance(results, list):
            self._retry_later(answer, "a 2xx without per-item results")
            return
        by_id = {event.event_id: event for event in batch}
        delivered: list[str] = []
        refused: list[Rejected] = []
        duplicates = 0
        for result in results:
            event = by_id.get(str(result.get("eventId"))) if isinstance(result, dict) else None
            if event is None:
                continue  # no answer for it: it stays spooled and is sent again
            if result.get("status") in ("accepted", "duplicate"):
                delivered.append(event.event_id)
                duplicates += result["status"] == "duplicate"
            elif result.get("status") in ("rejected", "conflict"):
                # A conflict: this eventId is stored with another payload. Resending cannot
                # change that, so it is final like a rejection (reason "conflict").
                refused.append(_rejection(event, result))
        self._settle(delivered, refused, duplicates)

    def _settle_refused_items(self, answer: Answer, batch: list[Spooled]) -> None:
        """422 (the server's default all-or-nothing mode): nothing was stored; the errors name
        the bad items by index. Those are rejected; the others are resent on their own."""
        document = answer.json()
        errors = document.get("errors") if isinstance(document, dict) else None
        refused: dict[int, Rejected] = {}
        for error in errors if isinstance(errors, list) else []:
            match = (
                _ITEM_INDEX.match(str(error.get("path", ""))) if isinstance(error, dict) else None
            )
            if match and int(match[1]) < len(batch) and int(match[1]) not in refused:
                refused[int(match[1])] = _rejection(batch[int(match[1])], error)
        if not refused:
            self._split(answer, batch)
            return
        self._settle([], list(refused.values()), 0)

    def _split(self, answer: Answer, batch: list[Spooled]) -> None:
        """A batch the server will not take whole: send halves (and re-read the limits, which
        may have changed); a lone event it will not take is rejected."""
        if len(batch) > 1:
            self._split_cap = max(1, len(batch) // 2)
            self._limits = None
            return
        reason = "too_large" if answer.status == 413 else f"http_{answer.status}"
        message = _detail(answer)
        self._settle(
            [], [Rejected(batch[0].event_id, batch[0].body, reason, "events[0]", message)], 0
        )

    def _settle(self, delivered: list[str], refused: list[Rejected], duplicates: int) -> None:
        self.spool.settle(delivered, refused)
        # Reported before the counts change, so a flush() that returns has reported them all.
        for rejection in refused:
            log.warning(
                "sensorhub_event_rejected: %s %s: %s",
                rejection.event_id,
                rejection.reason,
                rejection.message,
            )
            if self.on_rejected is not None:
                try:
                    self.on_rejected(rejection)
                except Exception:
                    log.exception("sensorhub_client_on_rejected_failed")
        oldest = self.spool.oldest_spooled_at()
        with self._cond:
            self._pending -= len(delivered) + len(refused)
            self._oldest = oldest
            self._failures = 0
            self._not_before = 0.0
            self._stats.accepted += len(delivered) - duplicates
            self._stats.duplicates += duplicates
            self._stats.rejected += len(refused)
            self._cond.notify_all()

    def _retry_later(self, answer: Answer | None, why: str) -> None:
        """Keep the batch spooled; pause as the server asks, or back off with jitter."""
        asked = answer.retry_after() if answer is not None else None
        with self._cond:
            self._failures += 1
            if asked is not None:
                delay = min(asked, self.retry_after_cap) * random.uniform(1.0, 1.1)  # noqa: S311
            else:
                ceiling = min(self.max_backoff, 0.25 * 2 ** min(self._failures, 16))
                delay = random.uniform(ceiling / 2, ceiling)  # noqa: S311
            self._not_before = time.monotonic() + delay
            self._stats.waits.append(delay)
        log.warning("sensorhub_send_retry: %s; next try in %.1f s", why, delay)


def prepare(event: Mapping[str, Any]) -> Spooled:
    """The event as it is spooled and sent: with an ``eventId`` and a ``ts``, compact JSON."""
    if not isinstance(event, Mapping):
        raise TypeError(f"an event is a mapping (a dict), not {type(event).__name__}")
    event = dict(event)
    event_id = event.setdefault("eventId", new_event_id())
    if not isinstance(event_id, str):
        raise TypeError(f"eventId must be a string, not {type(event_id).__name__}")
    event.setdefault("ts", time.time_ns() // 1_000_000)
    body = json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return Spooled(event_id, body)


def _rejection(event: Spooled, result: Mapping[str, Any]) -> Rejected:
    return Rejected(
        event.event_id,
        event.body,
        str(result.get("reason", result.get("status", "rejected"))),
        str(result.get("path", "")),
        str(result.get("message", "")),
    )


def _detail(answer: Answer) -> str:
    document = answer.json()
    if isinstance(document, dict) and document.get("detail"):
        return str(document["detail"])
    return answer.body[:200].decode(errors="replace") or f"HTTP {answer.status}"
