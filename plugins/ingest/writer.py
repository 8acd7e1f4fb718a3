"""Group commit: one writer thread per process commits the queued jobs of many requests at once.

A request validates its body, hands a :class:`~.storage.WriteJob` to :meth:`GroupCommitWriter.
submit` and waits. The writer thread takes every job queued so far (up to ``max_events`` rows,
optionally waiting ``max_wait`` for more), writes them in one transaction (each job's rows and
counter updates; on SQLite a group of new events is one statement that commits itself, see
:func:`~.storage.insert_all_new`), commits, and only then wakes each waiting request with its
per-row outcomes. While one commit is being made, the next group queues up behind it, so under
load each commit (the expensive, fsync-bound part) is shared by as many requests as arrived
meanwhile, and an idle server adds no delay at all.

Failure handling: if a group's transaction fails, each of its jobs is retried alone, so one bad
job (say, a sensor deleted mid-flight) cannot fail the others; a job that fails alone wakes its
request with the error (the view answers 503 with ``Retry-After``). A full queue refuses new
jobs at once (503) instead of letting latency grow without bound.

Lifecycle: the thread starts on the first job and exits after ``idle_seconds`` without work
(restarted by the next job), so a pre-fork server starts its writer in each worker, after the
fork, and an idle app holds no thread. Closing the app (``config.add_closer``) commits what is
queued and stops it.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

import structlog

from sensorhub.metrics import Metrics, NoMetrics

from .storage import WriteJob, insert_all_new, write_jobs
from .store import StoreUnavailable
from .turns import writer_turns

log = structlog.get_logger(__name__)


class _Pending:
    __slots__ = ("job", "done", "error")

    def __init__(self, job: WriteJob):
        self.job = job
        self.done = threading.Event()
        self.error: BaseException | None = None


_STOP = object()


class GroupCommitWriter:
    """An :class:`~.store.EventStore`: ``write`` returns once the job's group has committed."""

    writes_elsewhere = True

    def __init__(
        self,
        engine,
        *,
        commit_timeout: float = 10.0,
        max_events: int = 10000,
        max_wait: float = 0.0,
        max_queue: int = 10000,
        idle_seconds: float = 2.0,
        metrics: Callable[[], Metrics] | None = None,
    ):
        self.engine = engine
        self._turns = writer_turns(engine)  # several worker processes: one writes at a time
        self.max_events = max_events
        self.max_wait = max_wait
        self.idle_seconds = idle_seconds
        # Read at each flush: a metrics plugin may replace the recorder after this is built.
        self._metrics = metrics or NoMetrics
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.commit_timeout = commit_timeout

    # --- request side

    def write(self, request, job: WriteJob) -> None:
        self.submit(job, self.commit_timeout)

    def submit(self, job: WriteJob, timeout: float) -> WriteJob:
        """Queue ``job``, wait until it is committed (outcomes filled) or raise
        :class:`~.store.StoreUnavailable`."""
        pending = _Pending(job)
        with self._lock:
            if self._closed:
                raise StoreUnavailable("the writer is shutting down")
            try:
                self._queue.put_nowait(pending)
            except queue.Full:
                raise StoreUnavailable("the write queue is full") from None
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="ingest-group-commit", daemon=True
                )
                self._thread.start()
        if not pending.done.wait(timeout):
            # It may still commit later: the client retries and, with an eventId, gets a
            # "duplicate" rather than a second row.
            raise StoreUnavailable(f"the commit did not finish within {timeout:g}s")
        if pending.error is not None:
            raise StoreUnavailable(str(pending.error)) from pending.error
        return job

    def close(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then stop the thread (idempotent)."""
        with self._lock:
            self._closed = True
            thread = self._thread
            if thread is not None:
                self._queue.put(_STOP)
        if thread is not None:
            thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None

    # --- writer thread

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self.idle_seconds)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():  # under the lock: no submit can slip in unseen
                        self._thread = None
                        return
                continue
            if first is _STOP:
                self._finish()
                return
            group, stop = self._collect(first)
            self._flush(group)
            if stop:
                self._finish()
                return

    def _collect(self, first: _Pending) -> tuple[list[_Pending], bool]:
        group, events = [first], len(first.job.rows)
        deadline = time.monotonic() + self.max_wait
        while events < self.max_events:
            try:
                remaining = deadline - time.monotonic()
                item = (
                    self._queue.get(timeout=remaining)
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
            if item is _STOP:
                return group, True
            group.append(item)
            events += len(item.job.rows)
        return group, False

    def _finish(self) -> None:
        leftover = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                leftover.append(item)
        if leftover:
            self._flush(leftover)
        with self._lock:
            self._thread = None

    def _flush(self, group: list[_Pending]) -> None:
        started = time.perf_counter()
        events = sum(len(pending.job.rows) for pending in group)
        try:
            self._write([pending.job for pending in group])
            succeeded = True
        except Exception as error:
            succeeded = False
            log.warning(
                "group_commit_failed",
                requests=len(group),
                events=events,
                error=type(error).__name__,
            )
            if len(group) > 1:
                for pending in group:  # alone, so one bad job cannot fail the others
                    try:
                        self._write([pending.job])
                    except Exception as single_error:
                        pending.error = single_error
            else:
                group[0].error = error
        for pending in group:
            pending.done.set()
        self._record(len(group), events, time.perf_counter() - started, succeeded)

    def _record(self, requests: int, events: int, duration: float, succeeded: bool) -> None:
        """The group's figures, through the core's metrics contract (no-op without a plugin)."""
        metrics = self._metrics()
        metrics.count("ingest_commit_groups", outcome="succeeded" if succeeded else "failed")
        metrics.observe("ingest_commit_group_requests", requests)
        metrics.observe("ingest_commit_group_events", events)
        metrics.observe("ingest_commit_group_duration_seconds", duration)

    def _write(self, jobs: list[WriteJob]) -> None:
        with self._turns:
            if insert_all_new(self.engine, jobs):  # SQLite, new events: one statement
                return
            with self.engine.begin() as connection:
                write_jobs(connection, jobs)
