"""Helpers shared by the ingest plugin's test modules (this module holds no tests)."""

from __future__ import annotations

import contextlib
import gzip

import orjson
from sqlalchemy import func, select

from plugins.ingest.models import events_table
from sensorhub.metrics import METRICS_KEY

ADMIN_TOKEN = "admin-token-for-tests-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
AUTH_SETTINGS = {"sensorhub.auth.admin_token": ADMIN_TOKEN}
SEEKABLE_BODY = {"webob.is_body_seekable": True}


def new_sensor(testapp, name: str = "probe") -> tuple[str, dict]:
    """Enrol a sensor through the admin API: its id and its Authorization header."""
    created = testapp.post_json("/api/v1/sensors", {"name": name}, headers=ADMIN, status=201).json
    return created["sensorId"], {"Authorization": f"Bearer {created['token']}"}


def post_events(
    testapp,
    headers,
    body,
    *,
    status=201,
    content_type="application/json",
    gzipped=False,
    extra_headers=None,
):
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    headers = {**headers, "Content-Type": content_type, **(extra_headers or {})}
    if gzipped:
        raw = gzip.compress(raw)
        headers["Content-Encoding"] = "gzip"
    # WebTest's body is already seekable; saying so stops pyramid_retry from copying bodies over
    # 10 KiB into a TemporaryFile that WebOb never closes (a ResourceWarning, an error here).
    return testapp.post(
        "/api/v1/events", raw, headers=headers, status=status, extra_environ=SEEKABLE_BODY
    )


def stored_events(engine, sensor_id: str) -> int:
    """Committed rows, read outside any test transaction."""
    with engine.connect().execution_options(sqlite_begin="DEFERRED") as connection:
        return connection.execute(
            select(func.count())
            .select_from(events_table)
            .where(events_table.c.sensor_id == sensor_id)
        ).scalar_one()


@contextlib.contextmanager
def recording_events(registry, *event_types):
    seen: list = []

    def handler(published):
        seen.append(published)

    for event_type in event_types:
        registry.registerHandler(handler, (event_type,))
    try:
        yield seen
    finally:
        for event_type in event_types:
            registry.unregisterHandler(handler, (event_type,))


class RecordingMetrics:
    """A :class:`sensorhub.metrics.Metrics` that keeps what is recorded, to assert on."""

    def __init__(self):
        self.records: list[tuple[str, str, float, dict]] = []

    def count(self, name, value=1, **labels):
        self.records.append(("count", name, value, labels))

    def observe(self, name, value, **labels):
        self.records.append(("observe", name, value, labels))

    def counted(self, name, **labels) -> float:
        return sum(
            v for kind, n, v, tags in self.records if (kind, n, tags) == ("count", name, labels)
        )

    def observed(self, name) -> list[float]:
        return [v for kind, n, v, _ in self.records if (kind, n) == ("observe", name)]


@contextlib.contextmanager
def recording_figures(registry):
    """Swap the app's metrics recorder for a :class:`RecordingMetrics` (the contract's hook)."""
    recorder, previous = RecordingMetrics(), registry[METRICS_KEY]
    registry[METRICS_KEY] = recorder
    try:
        yield recorder
    finally:
        registry[METRICS_KEY] = previous
