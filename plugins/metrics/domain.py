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
Each app attaches its own listeners to its engine and removes them when it is closed; apps
sharing one engine (tests do that) each time the transactions with a clock of their own.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import event as sa_event

from sensorhub.events import (
    AuthenticationFailed,
    EventsIngested,
    RequestRateLimited,
    SensorAuthenticated,
)

from .metrics import AppMetrics, metrics_of


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


def time_transactions(engine, metrics: AppMetrics) -> Callable[[], None]:
    """Feed ``metrics.db_transaction_duration`` from ``engine``'s transactions; returns what
    stops it."""
    began = object()  # this app's key in connection.info: apps sharing the engine don't collide

    def on_begin(connection) -> None:
        connection.info[began] = time.perf_counter()

    def finished(connection, outcome: str) -> None:
        started = connection.info.pop(began, None)
        if started is not None:
            metrics.db_transaction_duration.labels(outcome).observe(time.perf_counter() - started)

    def on_commit(connection) -> None:
        finished(connection, "commit")

    def on_rollback(connection) -> None:
        finished(connection, "rollback")

    listeners = (("begin", on_begin), ("commit", on_commit), ("rollback", on_rollback))
    for name, listener in listeners:
        # insert=True: start the clock before the core's SQLite listener waits for the write lock.
        sa_event.listen(engine, name, listener, insert=name == "begin")

    def stop() -> None:
        for name, listener in listeners:
            sa_event.remove(engine, name, listener)

    return stop


def includeme(config) -> None:
    metrics = metrics_of(config.registry)
    for event_type, handler in subscribers(metrics).items():
        config.add_event_subscriber(handler, event_type)
    config.add_closer(time_transactions(config.registry["dbengine"], metrics))
