"""HTTP: POST and GET /api/v1/events (the calling sensor's own), and the admin's read of any
sensor's events."""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass

import orjson
import structlog
from pyramid.response import Response

from sensorhub.errors import DATABASE_RETRY_AFTER_SECONDS, problem, problem_response
from sensorhub.events import EventsIngested, notify_after_commit
from sensorhub.identity import sensor_id_of
from sensorhub.models import Sensor
from sensorhub.timestamps import timestamp_formatter
from sensorhub.validation import query_of

from .body import media_type, read_body
from .parsing import (
    NDJSON,
    BodyError,
    Limits,
    format_timestamp,
    parse_body,
    parse_timestamp,
)
from .schema import EventsQuery
from .storage import (
    EventQuery,
    WriteJob,
    decode_cursor,
    encode_cursor,
    read_events,
    read_page,
    row_position,
)
from .store import EventStore, StoreUnavailable

log = structlog.get_logger(__name__)

EXPORT_PAGE = 1000


@dataclass(frozen=True)
class IngestConfig:
    limits: Limits
    partial: bool
    store: EventStore


def ingest_config(request) -> IngestConfig:
    return request.registry["ingest.config"]


def _own_sensor_id(request) -> str:
    """The calling sensor's id. ``permission=SENSOR`` should admit only sensors, but that is
    the security policy's promise: refuse anyone else instead of using a ``None`` sensor id."""
    sensor_id = sensor_id_of(request)
    if sensor_id is None:
        raise problem(403, "only a sensor may do this: authenticate with a sensor token")
    return sensor_id


# --- POST /api/v1/events


def post_events(request):
    config = ingest_config(request)
    media = media_type(request)
    body = read_body(request, config.limits.max_body_bytes)
    try:
        parsed = parse_body(body, media, limits=config.limits)
    except BodyError as error:
        raise problem(error.status, error.detail)
    rejections = parsed.rejections
    # All or nothing by default; in partial mode a batch with no valid item is refused too.
    refuse = bool(rejections) and (not config.partial or len(rejections) == len(parsed.items))
    job = WriteJob(_own_sensor_id(request), [] if refuse else parsed.rows, len(rejections))
    try:
        config.store.write(request, job)
    except StoreUnavailable as error:
        log.warning("events_not_committed", error=str(error), events=len(job.rows))
        raise problem(
            503,
            "the events could not be committed; nothing was acknowledged: retry later",
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )
    notify_after_commit(
        request,
        EventsIngested(
            request=request,
            sensor_id=job.sensor_id,
            batch_size=len(parsed.items),
            accepted=job.accepted,
            duplicates=job.duplicates,
            rejected=len(rejections),
            rejected_by_reason=dict(Counter(rejection.reason for rejection in rejections)),
        ),
    )
    if refuse:
        # Returned, not raised: the rejected counter was written and must commit.
        return problem_response(
            request,
            422,
            f"{len(rejections)} of {len(parsed.items)} events are invalid; "
            "nothing was stored: fix them and resend the batch",
            errors=[error for rejection in rejections for error in rejection.errors],
        )
    request.response.status = 201
    return {
        "accepted": job.accepted,
        "duplicates": job.duplicates,  # conflicts included: neither was stored
        "conflicts": len(job.conflicts),
        "rejected": len(rejections),
        "results": _results(parsed.items, job),
    }


CONFLICT_MESSAGE = (
    "this eventId is already stored with a different payload; the stored event is kept: "
    "give a new reading a new eventId"
)


def _results(items: list, job: WriteJob) -> list[dict]:
    rows = iter(range(len(job.rows)))
    results = []
    for item in items:
        if type(item) is dict:
            position = next(rows)
            if job.accepted_flags[position]:
                entry = {"status": "accepted"}
            elif position in job.conflicts:
                entry = {"status": "conflict", "message": CONFLICT_MESSAGE}
            else:
                entry = {"status": "duplicate"}
            if item["event_id"] is not None:
                entry["eventId"] = item["event_id"]
        else:
            entry = {"status": "rejected", **item.as_error()}
            if len(item.errors) > 1:
                entry["errors"] = item.errors
            if item.event_id is not None:
                entry["eventId"] = item.event_id
        results.append(entry)
    return results


# --- GET /api/v1/events, GET /api/v1/sensors/{sensor_id}/events


def get_own_events(request):
    return _events_response(request, _own_sensor_id(request))


def get_sensor_events(request):
    sensor_id = request.matchdict["sensor_id"]
    if request.dbsession.get(Sensor, sensor_id) is None:
        raise problem(404, f"no sensor {sensor_id!r}")
    return _events_response(request, sensor_id)


def _events_response(request, sensor_id: str):
    query, limit = _parse_query(request, sensor_id)
    offers = request.accept.acceptable_offers(["application/json", NDJSON])
    if offers and offers[0][0] == NDJSON:
        explicit_limit = limit if "limit" in request.GET else None
        return Response(
            app_iter=_export(request.registry["dbengine"], query, explicit_limit),
            content_type=NDJSON,
            charset=None,
        )
    rows = read_page(request, query, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(query.newest_first, *row_position(rows[-1])) if more else None
    return {"events": events_json(rows), "nextCursor": next_cursor}


def events_json(rows) -> list[dict]:
    """The API's form of ``read_events``' rows (unpacked by position: a page has hundreds)."""
    timestamp = timestamp_formatter()
    return [
        {
            "eventId": event_id,
            "type": type_,
            "value": value,
            "unit": unit,
            "ts": timestamp(ts),
            "receivedAt": timestamp(received_at),
            "data": orjson.Fragment(data) if data is not None else None,
        }
        for _id, event_id, type_, value, unit, ts, received_at, data in rows
    ]


def _export(engine, query: EventQuery, limit: int | None):
    """NDJSON, page by page, each page its own short read (no transaction held while the client
    reads, and a stable order under concurrent inserts thanks to the (ts, id) keyset)."""
    sent = 0
    while limit is None or sent < limit:
        size = EXPORT_PAGE if limit is None else min(EXPORT_PAGE, limit - sent)
        with engine.connect().execution_options(sqlite_begin="DEFERRED") as connection:
            rows = read_events(connection, query, size)
        if rows:
            yield b"".join(orjson.dumps(event) + b"\n" for event in events_json(rows))
            sent += len(rows)
            query = dataclasses.replace(query, after=row_position(rows[-1]))
        if len(rows) < size:
            return


def _parse_query(request, sensor_id: str) -> tuple[EventQuery, int]:
    params = query_of(request, EventsQuery)  # the documented shape: types, ranges, names
    # What the shape cannot say: a bound must be a real moment, a cursor one we issued.
    errors = []
    bounds = {}
    for name in ("since", "until"):
        raw = getattr(params, name)
        if raw is None:
            continue
        bounds[name] = parse_timestamp(int(raw) if raw.lstrip("-").isdigit() else raw)
        if bounds[name] is None:
            errors.append(
                {
                    "path": name,
                    "reason": "invalid_field",
                    "message": "not a moment: RFC 3339 with an offset or integer epoch "
                    "milliseconds within ±285,000 years",
                }
            )
    newest_first = params.order == "newest"
    after = None
    if params.cursor is not None:
        try:
            after = decode_cursor(params.cursor, newest_first)
        except ValueError as error:
            errors.append({"path": "cursor", "reason": "invalid_field", "message": str(error)})
    if errors:
        raise problem(
            422,
            "invalid query: " + "; ".join(f"{e['path']}: {e['message']}" for e in errors),
            errors=errors,
        )
    types = tuple(params.type or ())
    query = EventQuery(
        sensor_id, types, bounds.get("since"), bounds.get("until"), newest_first, after
    )
    return query, params.limit


# --- GET /api/v1/sensor contribution


def sensor_counters(event_count, duplicate_count, rejected_count, last_event_at) -> dict:
    """The fields of ``storage.SENSOR_INFO_COLUMNS``' values: no row yet is no event yet."""
    return {
        "eventCount": event_count or 0,
        "duplicateCount": duplicate_count or 0,
        "rejectedCount": rejected_count or 0,
        "lastEventAt": format_timestamp(last_event_at) if last_event_at is not None else None,
    }
