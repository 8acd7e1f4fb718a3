"""The local spool: events on disk from ``send`` until the server has answered for them.

One SQLite file (WAL, ``synchronous=FULL``: a committed insert survives a power cut, so
``send`` returning means the event is on disk). Tables:

- ``outbox``: events not yet acknowledged, oldest first. A row leaves only when the server's
  answer for its ``eventId`` is ``accepted`` or ``duplicate`` (:meth:`Spool.settle`), so a
  crash at any moment keeps it, and the resend it causes is answered ``duplicate``.
- ``rejected``: events the server refused (or that could never be sent), kept for the operator,
  never retried.
- ``sources``: how far an input file has been read, written in the same transaction as the
  events read from it, so a restarted reader neither skips nor re-reads a line.

One process owns a spool at a time (an exclusive ``flock`` on ``<spool>.lock``, released by the
kernel however the process ends); inside it one connection is shared under a lock.
"""

from __future__ import annotations

import io
import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no guard against a second process
    fcntl = None  # type: ignore[assignment]

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    spooled_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS rejected (
    event_id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    reason TEXT NOT NULL,
    path TEXT NOT NULL,
    message TEXT NOT NULL,
    rejected_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sources (
    name TEXT PRIMARY KEY,
    identity TEXT NOT NULL,
    position INTEGER NOT NULL
);
"""
# The JSON array around a batch: {"events":[ ... ]}
BATCH_OVERHEAD = len(b'{"events":[]}')


class SpoolBusy(RuntimeError):
    """Another process is using this spool."""


@dataclass(frozen=True)
class Spooled:
    event_id: str
    body: str  # the event as compact JSON, eventId included


@dataclass(frozen=True)
class Rejected:
    """An event the server refused (``reason``, ``path`` and ``message`` are its words); it is
    kept in the spool's ``rejected`` table and never sent again."""

    event_id: str
    body: str
    reason: str
    path: str
    message: str


@dataclass(frozen=True)
class SourcePosition:
    identity: str  # what the file was (device and inode): another file starts from 0
    position: int  # bytes read and spooled


class Spool:
    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_file = _lock_exclusively(self.path.with_name(self.path.name + ".lock"))
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.executescript(SCHEMA)
        except BaseException:
            self._lock_file.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._lock_file.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def add(
        self, events: Iterable[Spooled], source: tuple[str, SourcePosition] | None = None
    ) -> int:
        """Spool ``events`` (and a source's new position) in one durable transaction; an
        ``eventId`` already waiting is not added twice. Returns how many rows were added."""
        now = time.time()
        rows = [(event.event_id, event.body, now) for event in events]
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            before = self._db.total_changes
            self._db.executemany(
                "INSERT OR IGNORE INTO outbox (event_id, body, spooled_at) VALUES (?, ?, ?)", rows
            )
            added = self._db.total_changes - before
            if source is not None:
                name, at = source
                self._db.execute(
                    "INSERT OR REPLACE INTO sources (name, identity, position) VALUES (?, ?, ?)",
                    (name, at.identity, at.position),
                )
        return added

    def pending(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM outbox").fetchone()[0])

    def oldest_spooled_at(self) -> float | None:
        """When the oldest waiting event was spooled (epoch seconds), or None."""
        with self._lock:
            row = self._db.execute("SELECT spooled_at FROM outbox ORDER BY seq LIMIT 1").fetchone()
        return float(row[0]) if row else None

    def take(self, max_events: int, max_bytes: int) -> list[Spooled]:
        """The oldest waiting events that fit one request: at most ``max_events``, and a body
        of at most ``max_bytes`` (the first event is always taken, whatever its size)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT event_id, body FROM outbox ORDER BY seq LIMIT ?", (max_events,)
            ).fetchall()
        batch: list[Spooled] = []
        size = BATCH_OVERHEAD
        for event_id, body in rows:
            size += len(body.encode()) + 1
            if batch and size > max_bytes:
                break
            batch.append(Spooled(event_id, body))
        return batch

    def settle(self, delivered: Iterable[str], rejected: Iterable[Rejected] = ()) -> None:
        """Remove what the server acknowledged; move what it refused to ``rejected``."""
        refused = [(r.event_id, r.body, r.reason, r.path, r.message, time.time()) for r in rejected]
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "DELETE FROM outbox WHERE event_id = ?", [(event_id,) for event_id in delivered]
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO rejected "
                "(event_id, body, reason, path, message, rejected_at) VALUES (?, ?, ?, ?, ?, ?)",
                refused,
            )
            self._db.executemany(
                "DELETE FROM outbox WHERE event_id = ?", [(row[0],) for row in refused]
            )

    def rejected(self) -> list[Rejected]:
        with self._lock:
            rows = self._db.execute(
                "SELECT event_id, body, reason, path, message FROM rejected ORDER BY rejected_at"
            ).fetchall()
        return [Rejected(*row) for row in rows]

    def source_position(self, name: str) -> SourcePosition | None:
        with self._lock:
            row = self._db.execute(
                "SELECT identity, position FROM sources WHERE name = ?", (name,)
            ).fetchone()
        return SourcePosition(*row) if row else None


def _lock_exclusively(path: Path) -> io.BufferedRandom:
    handle = open(path, "a+b")  # noqa: SIM115 - held open for the spool's lifetime
    if fcntl is not None:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise SpoolBusy(
                f"the spool {path.with_suffix('')} is in use by another process: "
                "give each sender its own --spool"
            ) from None
    return handle
