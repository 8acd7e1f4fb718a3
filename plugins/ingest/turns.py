"""Writer turns: the SQLite writers of several server processes take turns through a file lock.

Several server processes (``sensorhub.workers``) each have a busy writer (the group commit).
SQLite's busy handler waits for a lock by sleeping 1, 2, 5, 10 … ms between tries, so two
processes' writers alternating through it spend most of their time asleep; such a writer writes
inside :func:`writer_turns`, an advisory file lock next to the database that the kernel hands to
the next process the moment it is released.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import threading
from typing import Self, cast

from sqlalchemy.engine import Engine


class _FileTurns:
    """An exclusive ``flock`` on a file, taken in turn by the processes that open it."""

    def __init__(self, path: str):
        self._path = path
        self._threads = threading.Lock()  # flock excludes open files, not threads
        self._fd: int | None = None
        os.register_at_fork(after_in_child=self._forget)  # kept for the process's lifetime

    def _forget(self) -> None:
        # In a forked child: the parent's thread lock may have been held at the fork, and its
        # descriptor would share the parent's file lock, excluding nobody. Start afresh.
        self._threads = threading.Lock()
        self._fd = None

    def __enter__(self) -> Self:
        self._threads.acquire()
        try:
            if self._fd is None:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        try:
            fcntl.flock(cast(int, self._fd), fcntl.LOCK_UN)  # opened by __enter__
        finally:
            self._threads.release()


def writer_turns(engine: Engine) -> contextlib.AbstractContextManager[object]:
    """A reusable context manager for a process's busy writer: on a SQLite file, writers of
    several processes take turns through it (see the module docstring); elsewhere it does
    nothing (PostgreSQL's row locks queue writers without sleeping)."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or database in (None, "", ":memory:"):
        return contextlib.nullcontext()
    return _turns_for(os.path.abspath(database) + ".writer-turns")


@functools.cache
def _turns_for(path: str) -> _FileTurns:
    return _FileTurns(path)  # one per file and process: one descriptor, one fork hook
