"""The storage floor: SensorHub's sensor API done by a framework-less WSGI app on the bare
``sqlite3`` driver and orjson, to measure what the same storage work costs with nothing else.

It serves, on a SensorHub database (its ``auth`` and ``ingest`` tables), the paths the bench's
scenarios call, each with the least the work needs:

- every request: the bearer token's SHA-256 looked up with its sensor in one statement (no
  remembered lookups, no generation check, no constant-time compare: fewer driver calls than
  SensorHub's, never more);
- ``GET /api/v1/sensor``: that row with the sensor's counters row, in the same statement (as
  SensorHub's remembered sensors read them with their credential check);
- ``GET /api/v1/events?limit=N``: the newest ``N`` events as one JSON value from SQLite (as
  SensorHub reads them), formatted by the API's own ``events_json`` with its cursor;
- ``POST /api/v1/events`` (one event or an array): the body parsed, nothing validated, one
  multi-row ``INSERT OR IGNORE`` (SQLite's fastest way in: no per-row driver call) and the
  counters' upsert, in a transaction of its own committed with ``synchronous=OFF``: no fsync
  is waited for. A single new keyed event is one autocommitted statement instead, through the
  temporary view whose trigger stores and counts it (as SensorHub's writer stores a group of
  new events, ``plugins.ingest.storage``): with the lookup, two driver calls a request, where
  SensorHub makes one and a share of its group's statement. (The lookup folded into the
  insert, one call, was slower: the token was then read under the write lock.)

``make bench`` adds SensorHub's framework path (``api_root``) to these costs to say how far the
endpoints could go if SensorHub's own work cost nothing above the driver
(:func:`bench.report.floors`). Not an app to deploy: it answers no errors beyond 401 and 404,
and checks nothing.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from urllib.parse import parse_qs

import orjson

from plugins.ingest.storage import _NEW_EVENTS_DDL, _NEW_EVENTS_VIEW, encode_cursor, row_position
from plugins.ingest.views import events_json
from sensorhub.timestamps import format_timestamp, parse_timestamp

_SENSOR_OF_DIGEST = (
    "SELECT s.id, s.name, s.disabled FROM sensor_tokens t JOIN sensors s ON s.id = t.sensor_id "
    "WHERE t.token_hash = ? AND t.revoked_at IS NULL AND NOT s.disabled"
)
_SENSOR_AND_COUNTERS_OF_DIGEST = (
    "SELECT s.id, s.name, s.disabled, c.event_count, c.duplicate_count, c.rejected_count, "
    "c.last_event_at FROM sensor_tokens t JOIN sensors s ON s.id = t.sensor_id "
    "LEFT JOIN ingest_sensor_stats c ON c.sensor_id = s.id "
    "WHERE t.token_hash = ? AND t.revoked_at IS NULL AND NOT s.disabled"
)
# The page as one JSON value, as SensorHub reads it on SQLite (ingest's storage.read_events):
# the driver gives up the GIL for every row it steps through.
_PAGE = (
    "SELECT json_group_array(json_array(id, event_id, type, "
    "json(iif(value IS NULL, 'null', printf('%!.17e', value))), unit, ts, received_at, data)) "
    "FROM (SELECT * FROM ingest_events WHERE sensor_id = ? ORDER BY ts DESC, id DESC LIMIT ?)"
)

_INSERT = (
    "INSERT OR IGNORE INTO ingest_events "
    "(sensor_id, event_id, type, value, unit, ts, received_at, data) VALUES "
)
_COUNT = (
    "INSERT INTO ingest_sensor_stats "
    "(sensor_id, event_count, duplicate_count, rejected_count, last_event_at) "
    "VALUES (?, ?, ?, 0, ?) ON CONFLICT (sensor_id) DO UPDATE SET "
    "event_count = event_count + excluded.event_count, "
    "duplicate_count = duplicate_count + excluded.duplicate_count, "
    "last_event_at = max(coalesce(last_event_at, excluded.last_event_at), "
    "excluded.last_event_at)"
)
# One new event, stored and counted by the temporary view's trigger, autocommitted.
_INSERT_ONE_NEW = (
    f"INSERT INTO {_NEW_EVENTS_VIEW} "  # noqa: S608 (a constant name)
    "(sensor_id, event_id, type, value, unit, ts, received_at, data) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_ROWS_PER_STATEMENT = 500  # 8 placeholders a row, under SQLite's 32,766


def make_app(path: str):
    local = threading.local()
    writing = threading.Lock()  # SQLite takes one writer at a time; queue here, not in busy waits
    statements: dict[int, str] = {}

    def connection() -> sqlite3.Connection:
        db = getattr(local, "db", None)
        if db is None:
            db = local.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA busy_timeout = 10000")
            db.execute("PRAGMA synchronous = OFF")
            for ddl in _NEW_EVENTS_DDL:
                db.execute(ddl)
        return db

    def insert(db: sqlite3.Connection, rows: list[tuple]) -> int:
        stored = 0
        for start in range(0, len(rows), _ROWS_PER_STATEMENT):
            chunk = rows[start : start + _ROWS_PER_STATEMENT]
            sql = statements.get(len(chunk))
            if sql is None:
                sql = statements[len(chunk)] = _INSERT + ",".join(
                    ["(?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk)
                )
            stored += db.execute(sql, [value for row in chunk for value in row]).rowcount
        return stored

    def post_events(db, sensor_id: str, environ) -> tuple[str, object]:
        body = orjson.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
        items = body if isinstance(body, list) else [body]
        now = time.time_ns() // 1000
        rows = [
            (
                sensor_id,
                item.get("eventId"),
                item["type"],
                item.get("value"),
                item.get("unit"),
                parse_timestamp(item["ts"]),
                now,
                orjson.dumps(item["data"]).decode() if item.get("data") is not None else None,
            )
            for item in items
        ]
        with writing:
            if len(rows) == 1 and rows[0][1] is not None:  # one event, with an eventId
                try:
                    db.execute(_INSERT_ONE_NEW, rows[0])
                    return "201 Created", {"accepted": 1, "duplicates": 0}
                except sqlite3.IntegrityError:
                    pass  # its key is stored: the transaction below counts a duplicate
            db.execute("BEGIN IMMEDIATE")
            try:
                stored = insert(db, rows)
                newest = max(row[5] for row in rows)
                db.execute(_COUNT, (sensor_id, stored, len(rows) - stored, newest))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return "201 Created", {"accepted": stored, "duplicates": len(rows) - stored}

    def sensor(sensor_row) -> dict:
        sensor_id, name, disabled, events, duplicates, rejected, last = sensor_row
        return {
            "id": sensor_id,
            "name": name,
            "disabled": bool(disabled),
            "eventCount": events or 0,
            "duplicateCount": duplicates or 0,
            "rejectedCount": rejected or 0,
            "lastEventAt": format_timestamp(last) if last is not None else None,
        }

    def events(db, sensor_id: str, environ) -> dict:
        limit = int(parse_qs(environ.get("QUERY_STRING", "")).get("limit", ["100"])[0])
        rows = orjson.loads(db.execute(_PAGE, (sensor_id, limit + 1)).fetchone()[0])
        rows.sort(key=row_position, reverse=True)
        page = events_json(rows[:limit])  # the API's own formatting of the same columns
        last = rows[limit - 1] if len(rows) > limit else None
        cursor = encode_cursor(True, *row_position(last)) if last else None
        return {"events": page, "nextCursor": cursor}

    def app(environ, start_response):
        path_info, method = environ["PATH_INFO"], environ["REQUEST_METHOD"]
        if path_info == "/":  # the bench's health check
            return _answer(start_response, "200 OK", {"status": "ok"})
        db = connection()
        authorization = environ.get("HTTP_AUTHORIZATION", "")
        digest = hashlib.sha256(authorization.removeprefix("Bearer ").encode()).digest()
        reads_itself = path_info == "/api/v1/sensor" and method == "GET"
        lookup = _SENSOR_AND_COUNTERS_OF_DIGEST if reads_itself else _SENSOR_OF_DIGEST
        sensor_row = db.execute(lookup, (digest,)).fetchone()
        if sensor_row is None:
            return _answer(start_response, "401 Unauthorized", {"title": "no such token"})
        if reads_itself:
            return _answer(start_response, "200 OK", sensor(sensor_row))
        if path_info == "/api/v1/events" and method == "GET":
            return _answer(start_response, "200 OK", events(db, sensor_row[0], environ))
        if path_info == "/api/v1/events" and method == "POST":
            return _answer(start_response, *post_events(db, sensor_row[0], environ))
        return _answer(start_response, "404 Not Found", {"title": f"no {method} {path_info}"})

    return app


def _answer(start_response, status: str, document) -> list[bytes]:
    body = orjson.dumps(document)
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]
