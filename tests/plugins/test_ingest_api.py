"""The ingest API, read as documentation: a sensor posts events and reads its own back.

Every test here runs inside the test's doomed transaction (rolled back), so requests write
through ``request.dbsession``: the group-commit writer is off in this module (its own
transactions could not see a test's uncommitted sensor). The commit path, the writer and
concurrency are in test_ingest_commit.py.
"""

import gzip
import math
import random
import struct
import time

import orjson
import pytest
import webtest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from plugins.ingest.models import events_table
from tests.conftest import doomed_environ, recording_statements
from tests.plugins.test_ingest_support import ADMIN, AUTH_SETTINGS, new_sensor, post_events

SETTINGS = {**AUTH_SETTINGS, "sensorhub.ingest.group_commit": "false"}


@pytest.fixture(scope="module")
def plugins():
    return ["auth", "ingest"]


@pytest.fixture(scope="module")
def app_settings():
    return SETTINGS


@pytest.fixture
def sensor(testapp):
    return new_sensor(testapp)


@pytest.fixture
def other_app(app_factory, tm, dbsession):
    """A differently configured app sharing the test's rolled-back transaction."""

    def build(**settings):
        app = app_factory(["auth", "ingest"], {**SETTINGS, **settings})
        return webtest.TestApp(app, extra_environ=doomed_environ(tm, dbsession))

    return build


def rows_of(dbsession, sensor_id):
    return dbsession.execute(
        select(events_table)
        .where(events_table.c.sensor_id == sensor_id)
        .order_by(events_table.c.id)
    ).all()


def counters(testapp, headers):
    info = testapp.get("/api/v1/sensor", headers=headers).json
    return {key: info[key] for key in ("eventCount", "duplicateCount", "rejectedCount")}


# --- posting


def test_a_sensor_posts_one_event_and_gets_201_with_its_result(testapp, sensor, dbsession):
    sensor_id, headers = sensor
    answer = post_events(
        testapp,
        headers,
        {
            "type": "temperature",
            "value": 21.5,
            "unit": "Cel",
            "eventId": "t-1",
            "data": {"fw": "1.4"},
        },
    ).json
    assert answer == {
        "accepted": 1,
        "duplicates": 0,
        "conflicts": 0,
        "rejected": 0,
        "results": [{"status": "accepted", "eventId": "t-1"}],
    }
    [row] = rows_of(dbsession, sensor_id)
    assert (row.type, row.value, row.unit, row.event_id, row.data) == (
        "temperature",
        21.5,
        "Cel",
        "t-1",
        '{"fw":"1.4"}',
    )


@pytest.mark.parametrize(
    "body, content_type",
    [
        ([{"type": "a"}, {"type": "b"}], "application/json"),
        ({"events": [{"type": "a"}, {"type": "b"}]}, "application/json"),
        (b'{"type": "a"}\n{"type": "b"}\n', "application/x-ndjson"),
        ([{"bn": "dev:", "n": "a", "v": 1}, {"n": "b", "v": 2}], "application/senml+json"),
    ],
)
def test_batches_come_as_array_wrapper_ndjson_or_senml(
    testapp, sensor, dbsession, body, content_type
):
    sensor_id, headers = sensor
    answer = post_events(testapp, headers, body, content_type=content_type).json
    assert answer["accepted"] == 2
    assert sorted(row.type.removeprefix("dev:") for row in rows_of(dbsession, sensor_id)) == [
        "a",
        "b",
    ]


def test_a_gzipped_body_is_taken(testapp, sensor):
    _, headers = sensor
    answer = post_events(testapp, headers, [{"type": "t"}] * 10, gzipped=True).json
    assert answer["accepted"] == 10


def test_a_resend_of_an_acknowledged_event_is_a_duplicate_not_a_second_row(
    testapp, sensor, dbsession
):
    sensor_id, headers = sensor
    post_events(testapp, headers, {"type": "t", "value": 1, "eventId": "once"})
    answer = post_events(
        testapp,
        headers,
        [{"type": "t", "value": 1, "eventId": "once"}, {"type": "t", "value": 2, "eventId": "new"}],
    ).json
    assert [r["status"] for r in answer["results"]] == ["duplicate", "accepted"]
    assert (answer["accepted"], answer["duplicates"]) == (1, 1)
    assert len(rows_of(dbsession, sensor_id)) == 2


def test_a_repeated_event_id_within_one_batch_is_stored_once(testapp, sensor, dbsession):
    sensor_id, headers = sensor
    answer = post_events(
        testapp,
        headers,
        [{"type": "t", "eventId": "x", "value": 1}, {"type": "t", "eventId": "x", "value": 2}],
    ).json
    assert [r["status"] for r in answer["results"]] == ["accepted", "conflict"]
    [row] = rows_of(dbsession, sensor_id)
    assert row.value == 1  # the first one wins


def test_events_without_event_id_are_stored_as_sent(testapp, sensor, dbsession):
    sensor_id, headers = sensor
    post_events(testapp, headers, [{"type": "t", "value": 1}] * 2)
    post_events(testapp, headers, {"type": "t", "value": 1})
    assert len(rows_of(dbsession, sensor_id)) == 3


def test_two_sensors_may_use_the_same_event_id(testapp, dbsession):
    (first, first_headers), (_, second_headers) = new_sensor(testapp), new_sensor(testapp)
    post_events(testapp, first_headers, {"type": "t", "eventId": "shared"})
    answer = post_events(testapp, second_headers, {"type": "t", "eventId": "shared"}).json
    assert answer["accepted"] == 1
    assert len(rows_of(dbsession, first)) == 1


def test_a_batch_with_invalid_items_is_refused_whole_listing_every_bad_item(
    testapp, sensor, dbsession
):
    sensor_id, headers = sensor
    problem = post_events(
        testapp,
        headers,
        [
            {"type": "ok", "eventId": "good"},
            {"type": "t", "value": "hot"},
            {"type": "ok"},
            {"type": "t", "sensorId": "sen_someone_else"},
        ],
        status=422,
    )
    assert problem.content_type == "application/problem+json"
    assert [(e["path"], e["reason"]) for e in problem.json["errors"]] == [
        ("events[1].value", "invalid_field"),
        ("events[3].sensorId", "unknown_field"),
    ]
    assert "2 of 4" in problem.json["detail"]
    assert rows_of(dbsession, sensor_id) == []
    assert counters(testapp, headers) == {"eventCount": 0, "duplicateCount": 0, "rejectedCount": 2}


def test_partial_mode_stores_the_valid_items_and_reports_each(other_app, dbsession):
    partial = other_app(**{"sensorhub.ingest.partial": "true"})
    sensor_id, headers = new_sensor(partial)
    answer = post_events(
        partial,
        headers,
        [
            {"type": "ok", "eventId": "a"},
            {"type": "t", "value": "hot", "eventId": "b"},
            {"type": "ok"},
        ],
    ).json
    assert answer["accepted"] == 2 and answer["rejected"] == 1
    assert answer["results"][1] == {
        "status": "rejected",
        "path": "events[1].value",
        "reason": "invalid_field",
        "eventId": "b",
        "message": "value must be a number or null, got a string",
    }
    assert len(rows_of(dbsession, sensor_id)) == 2
    assert counters(partial, headers)["rejectedCount"] == 1


def test_partial_mode_still_refuses_a_batch_with_nothing_valid(other_app):
    partial = other_app(**{"sensorhub.ingest.partial": "true"})
    _, headers = new_sensor(partial)
    post_events(partial, headers, [{"type": "t", "value": "x"}], status=422)


def test_future_and_expired_timestamps_are_rejected_with_the_reason(testapp, sensor):
    _, headers = sensor
    now_ms = int(time.time() * 1000)
    problem = post_events(
        testapp,
        headers,
        [
            {"type": "t", "ts": now_ms + 3_600_000},
            {"type": "t", "ts": now_ms - 40 * 86_400_000},
            {"type": "t", "ts": now_ms - 86_400_000},
        ],
        status=422,
    ).json
    assert [e["reason"] for e in problem["errors"]] == ["ts_in_future", "ts_too_old"]


# --- bad input classes and limits, as HTTP


@pytest.mark.parametrize(
    "body, status",
    [
        (b"{not json", 400),
        (b"\xc3\x28", 400),  # invalid UTF-8
        (b'{"type": "t", "value": NaN}', 400),
        (b'{"type": "t", "value": -Infinity}', 400),
        (b'{"type": "t", "value": 1e999}', 400),
        (b"[" * 100_000 + b"]" * 100_000, 400),
        (b"", 400),
        (b"[]", 400),
        (b"42", 400),
    ],
)
def test_bodies_that_are_not_events_are_a_4xx_problem_never_a_500(testapp, sensor, body, status):
    _, headers = sensor
    problem = post_events(testapp, headers, body, status=status)
    assert problem.content_type == "application/problem+json"
    assert problem.json["detail"]


@pytest.mark.parametrize(
    "headers, fragment",
    [
        ({"Content-Type": "text/plain"}, "text/plain"),
        ({"Content-Type": ""}, "no Content-Type"),
        ({"Content-Type": "application/json; charset=latin-1"}, "UTF-8"),
        ({"Content-Encoding": "br"}, "br"),
    ],
)
def test_unsupported_content_type_or_encoding_is_a_415(testapp, sensor, headers, fragment):
    _, auth = sensor
    problem = testapp.post(
        "/api/v1/events",
        b'{"type": "t"}',
        headers={**auth, "Content-Type": "application/json", **headers},
        status=415,
    )
    assert fragment in problem.json["detail"]


def padded(document, size: int) -> bytes:
    """A JSON body of exactly ``size`` bytes (trailing whitespace is valid JSON)."""
    raw = orjson.dumps(document)
    assert len(raw) <= size
    return raw + b" " * (size - len(raw))


def test_body_size_limit_applies_at_its_edge(other_app):
    small = other_app(**{"sensorhub.ingest.max_body_size": "4096"})
    _, headers = new_sensor(small)
    post_events(small, headers, padded({"type": "t"}, 4096))
    problem = post_events(small, headers, padded({"type": "t"}, 4097), status=413)
    assert "4096" in problem.json["detail"]


def test_body_size_limit_applies_after_decompression(other_app):
    small = other_app(**{"sensorhub.ingest.max_body_size": "4096"})
    _, headers = new_sensor(small)
    post_events(small, headers, padded({"type": "t"}, 4096), gzipped=True)
    post_events(small, headers, padded({"type": "t"}, 4097), gzipped=True, status=413)


def test_a_gzip_bomb_is_refused_without_inflating_it(testapp, sensor):
    _, headers = sensor
    bomb = gzip.compress(b"[" + b" " * (64 * 1024 * 1024) + b"]", compresslevel=9)  # 64 KiB
    started = time.perf_counter()
    post_events(testapp, headers, bomb, extra_headers={"Content-Encoding": "gzip"}, status=413)
    assert time.perf_counter() - started < 2


@pytest.mark.parametrize(
    "body",
    [b"not gzip at all", gzip.compress(b'{"type":"t"}', mtime=0)[:-8]],
    ids=["not gzip at all", "truncated gzip"],
)
def test_a_broken_gzip_body_is_a_400(testapp, sensor, body):
    _, headers = sensor
    post_events(testapp, headers, body, extra_headers={"Content-Encoding": "gzip"}, status=400)


def test_events_per_request_limit_applies_at_its_edge(testapp, sensor):
    _, headers = sensor
    assert post_events(testapp, headers, [{"type": "t"}] * 1000).json["accepted"] == 1000
    problem = post_events(testapp, headers, [{"type": "t"}] * 1001, status=413)
    assert "1000" in problem.json["detail"]


def test_data_size_and_depth_limits_apply_at_their_edges(other_app):
    app = other_app(**{"sensorhub.ingest.max_data_size": "100", "sensorhub.ingest.max_depth": "3"})
    _, headers = new_sensor(app)
    fits = {"k": "x" * (100 - len('{"k":""}'))}
    post_events(
        app, headers, [{"type": "t", "data": fits}, {"type": "t", "data": {"a": {"b": {"c": 1}}}}]
    )
    problem = post_events(
        app,
        headers,
        [
            {"type": "t", "data": {**fits, "k": fits["k"] + "x"}},
            {"type": "t", "data": {"a": {"b": {"c": {}}}}},
        ],
        status=422,
    ).json
    assert [e["reason"] for e in problem["errors"]] == ["data_too_large", "data_too_deep"]


def test_text_postgresql_cannot_store_is_refused_per_item_not_a_500(testapp, sensor):
    _, headers = sensor
    problem = post_events(
        testapp,
        headers,
        [
            {"type": "t", "eventId": "nul\u0000"},
            {"type": "t", "unit": "\u0000"},
            {"type": "t", "data": {"k": "nul\u0000"}},
        ],
        status=422,
    ).json
    assert [e["path"] for e in problem["errors"]] == ["events[0].eventId", "events[1].unit"]


def test_posting_needs_a_sensor_token(testapp):
    testapp.post(
        "/api/v1/events", b'{"type": "t"}', headers={"Content-Type": "application/json"}, status=401
    )
    testapp.post(
        "/api/v1/events",
        b'{"type": "t"}',
        headers={**ADMIN, "Content-Type": "application/json"},
        status=403,
    )


# --- reading back


def post_series(testapp, headers, count, types=("a", "b"), start_ms=None):
    start_ms = start_ms or int(time.time() * 1000) - count * 1000
    events = [
        {"type": types[i % len(types)], "value": i, "ts": start_ms + i * 1000, "eventId": f"s-{i}"}
        for i in range(count)
    ]
    post_events(testapp, headers, events)
    return start_ms


def read_all(testapp, headers, **params):
    seen, cursor = [], None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        page = testapp.get("/api/v1/events", query, headers=headers).json
        seen += page["events"]
        cursor = page["nextCursor"]
        if cursor is None:
            return seen


def test_a_sensor_pages_through_its_events_newest_first_with_a_cursor(testapp, sensor):
    _, headers = sensor
    post_series(testapp, headers, 25)
    events = read_all(testapp, headers, limit=10)
    assert [e["value"] for e in events] == [float(v) for v in range(24, -1, -1)]
    first = testapp.get("/api/v1/events", {"limit": 10}, headers=headers).json
    assert len(first["events"]) == 10 and first["nextCursor"]


def test_oldest_first_and_filters(testapp, sensor):
    _, headers = sensor
    start_ms = post_series(testapp, headers, 20)
    events = read_all(
        testapp,
        headers,
        order="oldest",
        limit=3,
        type="a",
        since=start_ms + 4000,
        until=start_ms + 14000,
    )
    assert [e["value"] for e in events] == [4.0, 6.0, 8.0, 10.0, 12.0]
    assert {e["type"] for e in events} == {"a"}
    assert events[0]["eventId"] == "s-4" and events[0]["ts"].endswith("Z")


def test_several_types_filter_a_page_together(testapp, sensor):
    _, headers = sensor
    post_series(testapp, headers, 12, types=("a", "b", "c"))
    events = read_all(testapp, headers, order="oldest", limit=3, type=["a", "c"])
    assert [(e["type"], e["value"]) for e in events] == [
        (("a", "b", "c")[v % 3], float(v)) for v in range(12) if v % 3 != 1
    ]


def test_every_value_reads_back_as_the_exact_number_that_was_sent(testapp, sensor):
    """Doubles from every corner (random bit patterns, the largest, subnormals) and integers come
    back as the same numbers, however the database hands the page over."""
    _, headers = sensor
    bits = random.Random(14)
    sent = [
        value
        for value in (struct.unpack("<d", bits.randbytes(8))[0] for _ in range(600))
        if math.isfinite(value)
    ][:400]
    sent += [0.0, -0.0, 5e-324, -2.2250738585072014e-308, 1.7976931348623157e308, 0.1 + 0.2]
    sent += [21, -(2**53) + 1, 10**18, None]
    ts = int(time.time() * 1000) - len(sent)
    events = [
        {"type": "t", "value": value, "ts": ts + i, "eventId": f"v{i}"}
        for i, value in enumerate(sent)
    ]
    assert post_events(testapp, headers, events).json["accepted"] == len(sent)
    page = testapp.get("/api/v1/events", {"limit": 1000, "order": "oldest"}, headers=headers)
    read = [event["value"] for event in orjson.loads(page.body)["events"]]
    assert read == sent  # -0.0 equals 0.0: SQLite stores a REAL zero without its sign


def test_on_sqlite_a_page_of_events_comes_from_the_database_as_one_value(testapp, sensor, dbengine):
    """The sqlite3 driver gives up the GIL for every row it steps through: a page comes back
    as one JSON value, not one row per event (docs/benchmarks.md)."""
    _, headers = sensor
    post_series(testapp, headers, 30)
    with recording_statements(dbengine) as statements:
        page = testapp.get("/api/v1/events", {"limit": 20}, headers=headers).json
    assert [e["value"] for e in page["events"]] == [float(v) for v in range(29, 9, -1)]
    reads = [s for s in statements if "ingest_events" in s]
    assert len(reads) == 1
    assert ("json_group_array" in reads[0]) == (dbengine.dialect.name == "sqlite")


def test_events_that_share_a_timestamp_are_each_returned_once(testapp, sensor):
    _, headers = sensor
    ts = int(time.time() * 1000)
    post_events(testapp, headers, [{"type": "t", "value": i, "ts": ts} for i in range(7)])
    for order in ("newest", "oldest"):
        events = read_all(testapp, headers, limit=2, order=order)
        assert sorted(e["value"] for e in events) == [float(i) for i in range(7)]


@pytest.mark.parametrize(
    "query, path",
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"order": "random"}, "order"),
        ({"since": "yesterday"}, "since"),
        ({"cursor": "garbage!"}, "cursor"),
        ({"sinse": "1"}, "sinse"),
        ({"type": "a b"}, "type"),
        ({"until": "999999999999999999"}, "until"),
        ({"limit": "\u0663"}, "limit"),  # a digit, but not an ASCII one
        ({"limit": "\u00b2"}, "limit"),  # superscript two: Python's isdigit() says yes
    ],
)
def test_read_parameters_outside_their_documented_shape_are_a_400_naming_them(
    testapp, sensor, query, path
):
    _, headers = sensor
    problem = testapp.get("/api/v1/events", query, headers=headers, status=400).json
    assert [e["path"] for e in problem["errors"]] == [path]


@pytest.mark.parametrize(
    "query, path",
    [
        ({"since": "2026-13-01T00:00:00Z"}, "since"),  # the right shape, no such month
        ({"cursor": "WyJuIiwxODQ0Njc0NDA3MzcwOTU1MTYxNSwxXQ"}, "cursor"),  # ["n", 2**64 - 1, 1]
        ({"cursor": "bm90IG91cnM"}, "cursor"),  # base64 of "not ours"
    ],
)
def test_read_parameters_of_the_right_shape_but_impossible_are_a_422_naming_them(
    testapp, sensor, query, path
):
    _, headers = sensor
    problem = testapp.get("/api/v1/events", query, headers=headers, status=422).json
    assert [e["path"] for e in problem["errors"]] == [path]


def test_a_cursor_only_continues_the_order_it_came_from(testapp, sensor):
    _, headers = sensor
    post_series(testapp, headers, 3)
    cursor = testapp.get("/api/v1/events", {"limit": 1}, headers=headers).json["nextCursor"]
    testapp.get(
        "/api/v1/events", {"cursor": cursor, "order": "oldest"}, headers=headers, status=422
    )


def test_sensor_cannot_read_another_sensors_events(testapp):
    (_, first), (_, second) = new_sensor(testapp), new_sensor(testapp)
    post_events(testapp, first, {"type": "secret", "eventId": "mine"})
    assert testapp.get("/api/v1/events", headers=second).json == {"events": [], "nextCursor": None}
    # not even with a cursor taken from the other sensor's listing
    post_series(testapp, first, 3)
    cursor = testapp.get("/api/v1/events", {"limit": 1}, headers=first).json["nextCursor"]
    assert testapp.get("/api/v1/events", {"cursor": cursor}, headers=second).json["events"] == []


def test_an_admin_reads_any_sensors_events_with_the_same_filters(testapp, sensor):
    sensor_id, headers = sensor
    post_series(testapp, headers, 6)
    page = testapp.get(
        f"/api/v1/sensors/{sensor_id}/events", {"type": "b", "limit": 2}, headers=ADMIN
    ).json
    assert [e["value"] for e in page["events"]] == [5.0, 3.0] and page["nextCursor"]
    testapp.get("/api/v1/sensors/sen_nobody/events", headers=ADMIN, status=404)
    testapp.get(f"/api/v1/sensors/{sensor_id}/events", headers=headers, status=403)


def test_a_remembered_sensor_reads_its_exact_counters_with_its_credential_check(
    testapp, sensor, app
):
    # The counters are columns contributed through the core's sensor_info contract: the one
    # statement that checks a remembered sensor's credentials reads them too.
    _, headers = sensor
    with recording_statements(app.registry["dbengine"]) as looked_up:
        testapp.get("/api/v1/sensor", headers=headers)  # looked up, then remembered
    [counters_read] = [statement for statement in looked_up if "ingest_sensor_stats" in statement]
    assert "sensors.name" in counters_read  # read with the profile, one statement
    post_events(testapp, headers, [{"type": "t"}, {"type": "t"}])
    with recording_statements(app.registry["dbengine"]) as statements:
        info = testapp.get("/api/v1/sensor", headers=headers).json
    assert (info["eventCount"], info["duplicateCount"], info["rejectedCount"]) == (2, 0, 0)
    assert len(statements) == 1 and "ingest_sensor_stats" in statements[0]


def test_the_sensor_sees_exact_counters_on_its_own_description(testapp, sensor, dbsession):
    sensor_id, headers = sensor
    info = testapp.get("/api/v1/sensor", headers=headers).json
    assert (info["eventCount"], info["lastEventAt"]) == (0, None)
    ts = int(time.time() * 1000) - 5000
    post_events(
        testapp,
        headers,
        [
            {"type": "t", "eventId": "a", "ts": ts},
            {"type": "t", "eventId": "a"},
            {"type": "t", "ts": ts - 1},
        ],
    )
    post_events(testapp, headers, {"type": "t", "eventId": "a"})
    post_events(testapp, headers, [{"type": "t", "value": "bad"}], status=422)
    info = testapp.get("/api/v1/sensor", headers=headers).json
    assert (info["eventCount"], info["duplicateCount"], info["rejectedCount"]) == (2, 2, 1)
    assert info["eventCount"] == len(rows_of(dbsession, sensor_id))
    assert (
        info["lastEventAt"]
        == testapp.get("/api/v1/events", {"limit": 1}, headers=headers).json["events"][0]["ts"]
    )


def test_the_api_root_announces_the_ingest_capability(testapp):
    capability = testapp.get("/api/v1/").json["capabilities"]["ingest"]
    assert capability["url"] == "/api/v1/events" and capability["maxEvents"] == 1000


# --- generated batches against the real API and database

batch_items = st.lists(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["t", "u"])},
        optional={
            "eventId": st.sampled_from(["a", "b", "c", "d"]),
            "value": st.one_of(
                st.none(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=2)
            ),
        },
    ),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(batch_items, min_size=1, max_size=4))
def test_generated_batches_store_each_event_id_once_and_keep_counters_exact(
    testapp, dbsession, batches
):
    sensor_id, headers = new_sensor(testapp)
    stored, expected = {}, {"eventCount": 0, "duplicateCount": 0, "rejectedCount": 0}
    for batch in batches:
        invalid = [i for i, e in enumerate(batch) if isinstance(e.get("value"), str)]
        if invalid:
            problem = post_events(testapp, headers, batch, status=422).json
            assert [e["path"] for e in problem["errors"]] == [f"events[{i}].value" for i in invalid]
            expected["rejectedCount"] += len(invalid)
            continue
        results = post_events(testapp, headers, batch).json["results"]
        for event, result in zip(batch, results, strict=True):
            event_id = event.get("eventId")
            payload = (event["type"], event.get("value"))
            fresh = event_id is None or event_id not in stored
            if fresh:
                assert result["status"] == "accepted"
            else:
                same = stored[event_id] == payload
                assert result["status"] == ("duplicate" if same else "conflict")
            expected["eventCount" if fresh else "duplicateCount"] += 1
            if fresh and event_id is not None:
                stored[event_id] = payload
    assert counters(testapp, headers) == expected
    stored = dbsession.execute(
        select(func.count()).select_from(events_table).where(events_table.c.sensor_id == sensor_id)
    ).scalar_one()
    assert stored == expected["eventCount"]


def test_awkward_strings_come_back_exactly_as_sent(testapp):
    """Quotes, backslashes, commas, braces, the word NULL and non-ASCII survive storage: on
    PostgreSQL a batch travels as one array per column, where each of these means something."""
    _, headers = new_sensor(testapp)
    awkward = [
        '"quoted"',
        "back\\slash",
        "a,b",
        "{braces}",
        "NULL",
        "null",
        " spaced ",
        "emoji \U0001f321",
        "ümlaut",
        "'single'",
    ]
    batch = [
        {"type": "t", "eventId": text, "unit": text[:32], "value": None, "data": {"text": text}}
        for text in awkward
    ]
    results = post_events(testapp, headers, batch).json["results"]
    assert [r["status"] for r in results] == ["accepted"] * len(awkward)
    stored = testapp.get("/api/v1/events?order=oldest", headers=headers).json["events"]
    assert [(e["eventId"], e["unit"], e["data"]) for e in stored] == [
        (text, text[:32], {"text": text}) for text in awkward
    ]
    again = post_events(testapp, headers, batch).json["results"]
    assert [r["status"] for r in again] == ["duplicate"] * len(awkward)


def test_resending_an_event_id_with_another_payload_is_reported_as_a_conflict_and_not_stored(
    testapp, sensor, dbsession
):
    sensor_id, headers = sensor
    post_events(testapp, headers, {"type": "t", "value": 1, "eventId": "e-1", "data": {"a": 1}})
    answer = post_events(
        testapp,
        headers,
        [
            {"type": "t", "value": 2, "eventId": "e-1"},  # not what e-1 was
            {"type": "t", "value": 1, "eventId": "e-1", "data": {"a": 1}},  # a faithful resend
            {"type": "t", "value": 3, "eventId": "e-2"},
            {"type": "t", "value": 4, "eventId": "e-2"},  # e-2 again, differently, same batch
        ],
    ).json
    assert [r["status"] for r in answer["results"]] == [
        "conflict",
        "duplicate",
        "accepted",
        "conflict",
    ]
    assert "different payload" in answer["results"][0]["message"]
    assert (answer["accepted"], answer["duplicates"], answer["conflicts"]) == (1, 3, 2)
    assert sorted(row.value for row in rows_of(dbsession, sensor_id)) == [1.0, 3.0]


def test_an_event_sent_without_ts_and_resent_later_is_a_duplicate_not_a_conflict(testapp, sensor):
    _, headers = sensor
    post_events(testapp, headers, {"type": "t", "value": 1, "eventId": "no-ts"})
    time.sleep(0.002)  # arrives later: another received_at, hence another default ts
    again = post_events(testapp, headers, {"type": "t", "value": 1, "eventId": "no-ts"}).json
    assert again["results"] == [{"status": "duplicate", "eventId": "no-ts"}]
