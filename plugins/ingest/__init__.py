"""Ingestion: sensors post events (single, batch, NDJSON, SenML); each is stored exactly once.

API (sensor bearer token, permission ``sensor``)
- ``POST /api/v1/events``: one event object, an array of them, ``{"events": [...]}``,
  ``application/x-ndjson`` or ``application/senml+json`` (RFC 8428, resolved per record);
  ``Content-Encoding: gzip`` taken. ``201`` only after commit, with counts and one result per
  input item in order (``accepted`` / ``duplicate`` / ``rejected`` with reason and field path).
  A batch with invalid items is refused whole with ``422`` listing every bad item unless
  ``sensorhub.ingest.partial`` is on; nothing is ever half-written.
- ``GET /api/v1/events``: the caller's own events; ``type``, ``since``, ``until``, ``limit``,
  ``order=newest|oldest``, keyset ``cursor``; ``Accept: application/x-ndjson`` streams them all.
- ``GET /api/v1/sensors/{id}/events`` (permission ``admin``): the same for any sensor.
- ``GET /api/v1/sensor`` (auth plugin) gains ``eventCount``, ``duplicateCount``,
  ``rejectedCount`` and ``lastEventAt`` through the core's ``add_sensor_info`` contract.
- ``sensorhub-admin prune <ini> [--older-than 30d]``: retention, in bounded chunks.

Counters: ``eventCount`` = rows stored; ``duplicateCount`` = items answered ``duplicate``;
``rejectedCount`` = items refused by validation, in a ``201`` (partial mode) or in a ``422``
(the counter update is the only write a ``422`` makes, and the ``422`` is answered after it
committed, so the count stays exact); a body that cannot be split into items (``400``, ``413``,
``415``) counts nothing. ``lastEventAt`` = the newest stored ``ts``. All change in the same
transaction as the events they count (prune included).

Dedup: ``(sensor_id, event_id)`` is unique; inserts use ``ON CONFLICT DO NOTHING RETURNING`` on
SQLite and PostgreSQL, so a resend, concurrent or years later, is a ``duplicate``, not a row.

Durability: an event is acknowledged (``201``) only after the transaction holding it committed.
- PostgreSQL, ``synchronous_commit=on`` (its default): survives a process crash and a power
  loss (WAL flushed at commit). With ``synchronous_commit=off`` on the server, the last few
  hundred milliseconds of acknowledged events can be lost on a power loss or an OS crash.
- SQLite, ``sensorhub.database.sqlite_synchronous=full`` (default; WAL journal): survives a
  process crash and a power loss (the WAL is fsynced at each commit).
- SQLite, ``normal``: survives a process crash (the WAL is in the OS page cache), but a power
  loss or an OS crash can lose the most recent acknowledged transactions (never corrupts).
A request that times out waiting for its commit gets ``503`` and may still have been stored;
a resend with the same ``eventId`` is then answered ``duplicate`` (send ``eventId``s).

Storage: views hand a request's validated events to the app's ``EventStore`` (``store.py``):
with group commit (``sensorhub.ingest.group_commit``, default on) a writer thread per process
commits the queued events of many requests in one transaction and only then answers each
(``writer.py``); off, each request's events commit with its own transaction (pyramid_tm).
"""

from __future__ import annotations

from sensorhub.api import API_PREFIX
from sensorhub.identity import ADMIN, SENSOR
from sensorhub.metrics import metrics_of
from sensorhub.settings import (
    Setting,
    SettingError,
    as_bool,
    as_duration,
    as_int,
    as_size,
    env_name_for,
)

from . import schema, storage
from .body import GZIP_OVERHEAD
from .parsing import JSON, NDJSON, SENML, Limits, parse_body
from .store import EventStore, RequestTransactionStore
from .views import IngestConfig, get_own_events, get_sensor_events, post_events, sensor_counters
from .writer import GroupCommitWriter

__all__ = ["includeme", "parse_body"]

SETTINGS = (
    Setting(
        "sensorhub.ingest.partial",
        as_bool,
        False,
        "store the valid events of a batch with invalid ones (201 with per-item results) "
        "instead of refusing the whole batch with 422",
    ),
    Setting(
        "sensorhub.ingest.max_body_size",
        as_size,
        1024 * 1024,
        "largest request body, after decompression (413 above it)",
    ),
    Setting(
        "sensorhub.ingest.max_events",
        as_int(1, 100_000),
        1000,
        "most events in one request (413 above it)",
    ),
    Setting(
        "sensorhub.ingest.max_depth",
        as_int(1, 512),
        16,
        "deepest nesting allowed inside an event's data object",
    ),
    Setting(
        "sensorhub.ingest.max_data_size",
        as_size,
        8192,
        "largest data object per event, as compact JSON bytes",
    ),
    Setting(
        "sensorhub.ingest.max_future",
        as_duration,
        300.0,
        "how far ahead of the server clock an event's ts may be",
    ),
    Setting(
        "sensorhub.ingest.retention",
        as_duration,
        30 * 86400.0,
        "events older than this are refused on input, and are what prune deletes",
    ),
    Setting(
        "sensorhub.ingest.group_commit",
        as_bool,
        True,
        "share commits between concurrent requests through a writer thread",
    ),
    Setting(
        "sensorhub.ingest.group_commit_max_events",
        as_int(1, 1_000_000),
        10_000,
        "most events the writer commits in one transaction",
    ),
    Setting(
        "sensorhub.ingest.group_commit_max_wait",
        as_duration,
        0.0,
        "how long the writer waits for more requests before committing (0: none; the "
        "time one commit takes already gathers the next group)",
    ),
    Setting(
        "sensorhub.ingest.group_commit_queue",
        as_int(1, 1_000_000),
        10_000,
        "most requests waiting for the writer; more are refused with 503",
    ),
)


def includeme(config) -> None:
    config.declare_settings(*SETTINGS)
    settings = config.registry.settings
    if settings["sensorhub.ingest.retention"] <= 0:
        raise SettingError(
            "invalid setting sensorhub.ingest.retention (env "
            f"{env_name_for('sensorhub.ingest.retention')}): must be more than "
            "0 (events older than it are refused on input and pruned)"
        )
    server_limit = settings["sensorhub.max_request_body_size"]
    if settings["sensorhub.ingest.max_body_size"] + GZIP_OVERHEAD > server_limit:
        raise SettingError(
            "invalid setting sensorhub.ingest.max_body_size (env "
            f"{env_name_for('sensorhub.ingest.max_body_size')}): "
            f"{settings['sensorhub.ingest.max_body_size']} bytes (plus {GZIP_OVERHEAD} of gzip "
            f"overhead) do not fit in the server's sensorhub.max_request_body_size of "
            f"{server_limit}: raise that too, or lower this"
        )
    limits = Limits(
        max_body_bytes=settings["sensorhub.ingest.max_body_size"],
        max_events=settings["sensorhub.ingest.max_events"],
        max_depth=settings["sensorhub.ingest.max_depth"],
        max_data_bytes=settings["sensorhub.ingest.max_data_size"],
        max_future_seconds=settings["sensorhub.ingest.max_future"],
        retention_seconds=settings["sensorhub.ingest.retention"],
    )
    store: EventStore = RequestTransactionStore()
    if settings["sensorhub.ingest.group_commit"]:
        store = GroupCommitWriter(
            config.registry["dbengine"],
            commit_timeout=settings["sensorhub.request_timeout"],  # the core's request deadline
            max_events=settings["sensorhub.ingest.group_commit_max_events"],
            max_wait=settings["sensorhub.ingest.group_commit_max_wait"],
            max_queue=settings["sensorhub.ingest.group_commit_queue"],
            metrics=lambda: metrics_of(config.registry),
        )
    config.add_closer(store.close)  # a writer commits what is queued when the app closes
    config.registry["ingest.config"] = IngestConfig(
        limits=limits, partial=settings["sensorhub.ingest.partial"], store=store
    )

    config.add_route("ingest.events", f"{API_PREFIX}/events")
    if store.writes_elsewhere:
        # The request's transaction only authenticates: the core ends it before the view runs.
        config.add_reader_route("ingest.events")
    config.add_route("ingest.sensor_events", f"{API_PREFIX}/sensors/{{sensor_id}}/events")
    config.add_view(
        post_events,
        route_name="ingest.events",
        request_method="POST",
        permission=SENSOR,
        renderer="json",
        openapi=schema.post_events_operation(limits.max_events),
    )
    config.add_view(
        get_own_events,
        route_name="ingest.events",
        request_method=("GET", "HEAD"),
        permission=SENSOR,
        renderer="json",
        openapi=schema.READ_EVENTS,
    )
    config.add_view(
        get_sensor_events,
        route_name="ingest.sensor_events",
        request_method=("GET", "HEAD"),
        permission=ADMIN,
        renderer="json",
        openapi=schema.READ_SENSOR_EVENTS,
    )
    config.add_sensor_info(storage.SENSOR_INFO_COLUMNS, sensor_counters)
    config.add_api_capability(
        "ingest",
        description="post events (single, batch, NDJSON, SenML) and read them back",
        url=f"{API_PREFIX}/events",
        formats=[JSON, NDJSON, SENML],
        maxEvents=limits.max_events,
        maxBodyBytes=limits.max_body_bytes,
        partial=settings["sensorhub.ingest.partial"],
        gzip=True,
    )
    config.include(".models")  # its tables' migrations
