"""Domain metrics, from the core's domain events and the database engine.

``EventsIngested`` is published by the ingestion plugin only after its transaction committed
(``notify_after_commit`` or after the group commit), so a rolled-back request moves no counter
here: the invariant lives in the publisher, and the tests prove both sides. Authentication
failures and rate-limited requests are counted when they happen: they are facts about the
request, whether or not anything was stored.

Transaction duration comes from SQLAlchemy's ``begin``/``commit``/``rollback`` connection
events: how long each transaction stayed open (on SQLite, the wait for the write lock too).
SQLAlchemy has no event after the COMMIT statement itself returns, so the fsync-bound commit
time is what ``sensorhub_ingest_commit_group_duration_seconds`` reports for the write path
(recorded by the ingest writer through the core's metrics contract, see ``recorder.py``).
The engine may be shared by several apps (tests do that): one listener per engine feeds every
live app's histogram, and an app that is gone is forgotten (weak references).
"""

from __future__ import annotations

import threading
import time
import weakref

from sqlalchemy import event as sa_event

from sensorhub.events import (
    AuthenticationFailed,
    EventsIngested,
    RequestRateLimited,
    SensorAuthenticated,
)

from .metrics import AppMetrics, metrics_of

_BEGAN = "sensorhub.metrics.began"
_sinks: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # engine -> WeakSet[AppMetrics]
_sinks_lock = threading.Lock()


def subscribers(metrics: AppMetrics) -> dict:
    def on_events_ingested(event: EventsIngested) -> None:
        metrics.events_ingested.labels("accepted").inc(event.accepted)
        metrics.events_ingested.labels("duplicate").inc(event.duplicates)
        metrics.events_ingested.labels("rejected").inc(event.rejected)
        for reason, count in event.rejected_by_reason.items():
            metrics.events_rejected.labels(reason).inc(count)
        metrics.ingest_batch_size.observe(event.batch_size)

    def on_sensor_authenticated(event: SensorAuthenticated) -> None:
        metrics.auth_successes.inc()

    def on_authentication_failed(event: AuthenticationFailed) -> None:
        metrics.auth_failures.labels(event.reason).inc()

    def on_rate_limited(event: RequestRateLimited) -> None:
        metrics.rate_limited.labels(event.scope).inc()

    return {
        EventsIngested: on_events_ingested,
        SensorAuthenticated: on_sensor_authenticated,
        AuthenticationFailed: on_authentication_failed,
        RequestRateLimited: on_rate_limited,
    }


def time_transactions(engine, metrics: AppMetrics) -> None:
    """Feed ``metrics.db_transaction_duration`` from ``engine``'s transactions."""
    with _sinks_lock:
        sinks = _sinks.get(engine)
        if sinks is None:
            sinks = _sinks[engine] = weakref.WeakSet()
            _listen(engine, sinks)
        sinks.add(metrics)


def _listen(engine, sinks: weakref.WeakSet) -> None:
    def on_begin(connection) -> None:
        connection.info[_BEGAN] = time.perf_counter()

    def finished(connection, outcome: str) -> None:
        began = connection.info.pop(_BEGAN, None)
        if began is None:
            return
        elapsed = time.perf_counter() - began
        for metrics in list(sinks):
            metrics.db_transaction_duration.labels(outcome).observe(elapsed)

    # insert=True: start the clock before the core's SQLite listener waits for the write lock.
    sa_event.listen(engine, "begin", on_begin, insert=True)
    sa_event.listen(engine, "commit", lambda connection: finished(connection, "commit"))
    sa_event.listen(engine, "rollback", lambda connection: finished(connection, "rollback"))


def includeme(config) -> None:
    metrics = metrics_of(config.registry)
    for event_type, handler in subscribers(metrics).items():
        config.add_subscriber(handler, event_type)
    time_transactions(config.registry["dbengine"], metrics)
