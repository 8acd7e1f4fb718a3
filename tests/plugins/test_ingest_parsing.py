"""Ingest bodies to validated rows, without HTTP or a database: formats, SenML resolution, every
bad input class, limits at their edges, and generated inputs (hypothesis)."""

import json
import math

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugins.ingest.parsing import (
    NDJSON,
    SENML,
    BodyError,
    Limits,
    parse_body,
)

NOW_US = 1_780_000_000_000_000  # 2026-05-28T20:26:40Z
NOW_MS = NOW_US // 1000
LIMITS = Limits()


def parse(document, content_type="application/json", limits=LIMITS):
    raw = document if isinstance(document, bytes) else orjson.dumps(document)
    return parse_body(raw, content_type, limits=limits, received_at=NOW_US)


def only_rejection(event, limits=LIMITS):
    [item] = parse([event], limits=limits).items
    assert not isinstance(item, dict), item
    return item


# --- shapes and formats


def test_a_single_object_an_array_and_an_events_wrapper_are_all_accepted():
    event = {"type": "temp", "value": 21.5}
    assert len(parse(event).rows) == 1
    assert len(parse([event, event]).rows) == 2
    assert len(parse({"events": [event, event, event]}).rows) == 3


def test_a_valid_event_becomes_a_row_with_microsecond_times():
    [row] = parse(
        {
            "type": "temp",
            "value": 21,
            "unit": "Cel",
            "ts": NOW_MS - 1000,
            "eventId": "e-1",
            "data": {"fw": "1.2", "rssi": -40},
        }
    ).rows
    assert row == {
        "event_id": "e-1",
        "type": "temp",
        "value": 21.0,
        "unit": "Cel",
        "ts": (NOW_MS - 1000) * 1000,
        "received_at": NOW_US,
        "data": '{"fw":"1.2","rssi":-40}',
    }


def test_ts_defaults_to_the_receive_time():
    [row] = parse({"type": "temp"}).rows
    assert row["ts"] == row["received_at"] == NOW_US


def test_ndjson_takes_one_event_per_line_and_rejects_bad_lines_alone():
    body = b'{"type":"a"}\r\n\n{"type":"b"}\nnot json\n{"type":"c"}\n'
    items = parse(body, NDJSON).items
    assert [item["type"] if isinstance(item, dict) else item.reason for item in items] == [
        "a",
        "b",
        "malformed_json",
        "c",
    ]
    assert "line 4" in items[2].message and items[2].path == "events[2]"


def test_senml_records_are_resolved_against_their_base_fields():
    pack = [
        {
            "bn": "urn:dev:ow:10e2073a:",
            "bt": NOW_US / 1e6 - 60,
            "bu": "Cel",
            "bver": 10,
            "n": "temp",
            "v": 23.5,
        },
        {"n": "temp", "t": 10, "v": 23.6},
        {"n": "humidity", "u": "%RH", "t": 20, "v": 50},
        {"n": "door", "t": 30, "vb": True},
        {"n": "energy", "u": "J", "s": 1200.5, "t": 40},
    ]
    rows = parse(pack, SENML).rows
    assert [row["type"] for row in rows] == [
        "urn:dev:ow:10e2073a:" + n for n in ("temp", "temp", "humidity", "door", "energy")
    ]
    assert [row["ts"] for row in rows] == [NOW_US - 60_000_000 + k * 10_000_000 for k in range(5)]
    assert [row["unit"] for row in rows] == ["Cel", "Cel", "%RH", "Cel", "J"]
    assert [row["value"] for row in rows] == [23.5, 23.6, 50.0, None, None]
    assert [row["data"] for row in rows] == [None, None, None, '{"vb":true}', '{"s":1200.5}']


def test_senml_base_value_adds_and_small_times_are_relative_to_now():
    rows = parse(
        [{"bn": "meter:", "bv": 100, "n": "a", "v": 1, "t": -5}, {"n": "b", "v": 2.5}], SENML
    ).rows
    assert [row["value"] for row in rows] == [101.0, 102.5]
    assert rows[0]["ts"] == NOW_US - 5_000_000 and rows[1]["ts"] == NOW_US


@pytest.mark.parametrize(
    "records, path, fragment",
    [
        ([{"n": "x/y", "v": 1}], "events[0].n", "'/'"),
        ([{"v": 1}], "events[0].n", "no name"),
        ([{"n": "x"}], "events[0]", "no value"),
        ([{"n": "x", "v": 1, "vs": "on"}], "events[0].vs", "at most one value"),
        ([{"n": "x", "v": "1"}], "events[0].v", "a number"),
        ([{"n": "x", "v": 1, "crit_": 1}], "events[0].crit_", "must-understand"),
        ([{"bver": 11, "n": "x", "v": 1}], "events[0].bver", "newer"),
        ([{"bt": "now", "n": "x", "v": 1}, {"n": "y", "v": 2}], "events[1]", "earlier record"),
        (["not a record"], "events[0]", "JSON object"),
    ],
)
def test_senml_records_that_cannot_be_resolved_are_rejected_with_the_reason(
    records, path, fragment
):
    rejection = parse(records, SENML).rejections[-1]
    assert (rejection.path, rejection.reason) == (path, "invalid_senml")
    assert fragment in rejection.message


def test_senml_ignores_unknown_labels_as_rfc_8428_requires():
    [row] = parse([{"n": "x", "v": 1, "vendor": "acme"}], SENML).rows
    assert row["value"] == 1.0


# --- every bad input class


@pytest.mark.parametrize(
    "body, fragment",
    [
        (b"{", "malformed JSON"),
        (b"", "malformed JSON"),
        (b"\xff\xfe{}", "malformed JSON"),  # not UTF-8
        (b'{"type": "t", "value": NaN}', "malformed JSON"),
        (b'{"type": "t", "value": Infinity}', "malformed JSON"),
        (b'{"type": "t", "value": 1e400}', "malformed JSON"),
        (b'{"type": "t", "value": 123456789012345678901234567890123}', None),
        (b"[" * 5000 + b"]" * 5000, "malformed JSON"),
        (b'"an event"', "event object"),
        (b"[]", "no events"),
        (b'{"events": {"type": "t"}}', "array"),
    ],
)
def test_bodies_that_are_not_events_are_a_400_never_an_exception(body, fragment):
    try:
        parsed = parse(body)
    except BodyError as error:
        assert error.status == 400
        assert fragment is None or fragment in error.detail
    else:  # a 128-bit integer decodes as a (finite) double: stored, not an error
        assert fragment is None and math.isfinite(parsed.rows[0]["value"])


@pytest.mark.parametrize(
    "event, path, reason",
    [
        ("text", "events[0]", "not_an_object"),
        ({"value": 1}, "events[0].type", "missing_field"),
        ({"type": ""}, "events[0].type", "invalid_field"),
        ({"type": "a b"}, "events[0].type", "invalid_field"),
        ({"type": "t" * 65}, "events[0].type", "invalid_field"),
        ({"type": 7}, "events[0].type", "invalid_field"),
        ({"type": "t", "value": "1"}, "events[0].value", "invalid_field"),
        ({"type": "t", "value": True}, "events[0].value", "invalid_field"),
        ({"type": "t", "value": [1]}, "events[0].value", "invalid_field"),
        ({"type": "t", "unit": ""}, "events[0].unit", "invalid_field"),
        ({"type": "t", "unit": "u" * 33}, "events[0].unit", "invalid_field"),
        ({"type": "t", "eventId": 42}, "events[0].eventId", "invalid_field"),
        ({"type": "t", "eventId": "e" * 129}, "events[0].eventId", "invalid_field"),
        ({"type": "t", "eventId": "a\x00b"}, "events[0].eventId", "invalid_field"),
        ({"type": "t", "unit": "C\nel"}, "events[0].unit", "invalid_field"),
        ({"type": "t", "ts": 1.78e12}, "events[0].ts", "invalid_field"),
        ({"type": "t", "ts": "2026-05-28T20:26:40"}, "events[0].ts", "invalid_field"),
        ({"type": "t", "data": [1, 2]}, "events[0].data", "invalid_field"),
        ({"type": "t", "sensorId": "sen_other"}, "events[0].sensorId", "unknown_field"),
        ({"type": "t", "receivedAt": NOW_MS}, "events[0].receivedAt", "unknown_field"),
    ],
)
def test_each_bad_field_is_rejected_with_its_path_and_reason(event, path, reason):
    rejection = only_rejection(event)
    assert (rejection.path, rejection.reason) == (path, reason)
    assert rejection.message


def test_every_bad_item_of_a_batch_is_reported_in_order():
    items = parse([{"type": "ok"}, {"type": "t", "value": "x"}, {"type": "ok"}, {}]).items
    assert [getattr(item, "path", None) for item in items] == [
        None,
        "events[1].value",
        None,
        "events[3].type",
    ]


# --- limits at their edges (at the limit: taken; one past it: refused)


def test_events_per_request_limit():
    limits = Limits(max_events=3)
    assert len(parse([{"type": "t"}] * 3, limits=limits).rows) == 3
    with pytest.raises(BodyError) as refused:
        parse([{"type": "t"}] * 4, limits=limits)
    assert refused.value.status == 413 and "3" in refused.value.detail


def test_data_size_limit_counts_compact_json_bytes():
    data = {"k": "x" * 100}
    size = len(orjson.dumps(data))
    assert parse({"type": "t", "data": data}, limits=Limits(max_data_bytes=size)).rows
    rejection = only_rejection({"type": "t", "data": data}, Limits(max_data_bytes=size - 1))
    assert rejection.reason == "data_too_large" and str(size - 1) in rejection.message


def nested(depth: int) -> dict:
    data: dict = {"leaf": 1}
    for _ in range(depth - 1):
        data = {"k": data}
    return data


def test_data_nesting_depth_limit():
    assert parse({"type": "t", "data": nested(5)}, limits=Limits(max_depth=5)).rows
    rejection = only_rejection({"type": "t", "data": nested(6)}, Limits(max_depth=5))
    assert rejection.reason == "data_too_deep"


def test_timestamp_window_future_and_retention():
    limits = Limits(max_future_seconds=300, retention_seconds=86400)
    assert parse({"type": "t", "ts": NOW_MS + 300_000}, limits=limits).rows
    assert only_rejection({"type": "t", "ts": NOW_MS + 300_001}, limits).reason == "ts_in_future"
    assert parse({"type": "t", "ts": NOW_MS - 86_400_000}, limits=limits).rows
    assert only_rejection({"type": "t", "ts": NOW_MS - 86_400_001}, limits).reason == "ts_too_old"


def test_event_id_and_type_length_limits():
    assert parse({"type": "t" * 64, "eventId": "e" * 128}).rows
    assert only_rejection({"type": "t", "eventId": "e" * 129}).reason == "invalid_field"


def test_unsupported_media_type_is_a_415():
    with pytest.raises(BodyError) as refused:
        parse({"type": "t"}, "text/plain")
    assert refused.value.status == 415


# --- generated inputs

printable = st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"))
event_ids = st.one_of(st.none(), st.text(printable, min_size=1, max_size=128))
valid_events = st.fixed_dictionaries(
    {"type": st.from_regex(r"[A-Za-z0-9_.:-]{1,64}", fullmatch=True)},
    optional={
        "value": st.one_of(
            st.none(),
            st.floats(allow_nan=False, allow_infinity=False),
            st.integers(min_value=-(2**63), max_value=2**63 - 1),
        ),
        "unit": st.text(printable, min_size=1, max_size=32),
        "ts": st.integers(min_value=NOW_MS - 86_400_000, max_value=NOW_MS + 300_000),
        "eventId": event_ids,
        "data": st.dictionaries(
            st.text(max_size=8),
            st.one_of(
                st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=20)
            ),
            max_size=5,
        ),
    },
)


@settings(max_examples=200, deadline=None)
@given(st.lists(valid_events, min_size=1, max_size=50))
def test_generated_valid_batches_are_accepted_whole_and_keep_every_field(events):
    rows = parse(events).rows
    assert len(rows) == len(events)
    for event, row in zip(events, rows, strict=True):
        assert row["type"] == event["type"]
        assert row["event_id"] == event.get("eventId")
        assert row["unit"] == event.get("unit")
        if event.get("value") is not None:
            assert row["value"] == float(event["value"])
        if "ts" in event:
            assert row["ts"] == event["ts"] * 1000
        if event.get("data") is not None:
            assert orjson.loads(row["data"]) == event["data"]


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.sampled_from(
                [
                    "type",
                    "value",
                    "unit",
                    "ts",
                    "eventId",
                    "data",
                    "x",
                    "events",
                    "n",
                    "v",
                    "bn",
                    "bt",
                ]
            ),
            children,
            max_size=4,
        ),
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(json_values, st.sampled_from(["application/json", NDJSON, SENML]))
def test_any_json_is_either_items_or_a_client_error_never_a_crash(document, content_type):
    body = json.dumps(document).encode()  # the stdlib writes NaN/Infinity: orjson refuses them
    try:
        parsed = parse_body(body, content_type, received_at=NOW_US)
    except BodyError as error:
        assert error.status in (400, 413)
        return
    for item in parsed.items:
        if isinstance(item, dict):
            assert item["value"] is None or math.isfinite(item["value"])
        else:
            assert item.path.startswith("events[") and item.message


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash_the_parser(body):
    for content_type in ("application/json", NDJSON, SENML):
        try:
            parse_body(body, content_type, received_at=NOW_US)
        except BodyError as error:
            assert error.status in (400, 413)


def test_every_bad_field_of_every_item_is_reported_with_its_path_and_reason():
    parsed = parse_body(
        b'[{"type": "a b", "value": "x", "zz": 1}, {"type": "ok"}, {"unit": 5}]',
        "application/json",
    )
    first, second, third = parsed.items
    assert type(second) is dict
    assert [(e["path"], e["reason"]) for e in first.errors] == [
        ("events[0].zz", "unknown_field"),
        ("events[0].type", "invalid_field"),
        ("events[0].value", "invalid_field"),
    ]
    assert [(e["path"], e["reason"]) for e in third.errors] == [
        ("events[2].type", "missing_field"),
        ("events[2].unit", "invalid_field"),
    ]
    assert first.errors[2]["message"] == "value must be a number or null, got a string"


def test_an_integer_beyond_64_bits_in_data_is_refused_not_stored_as_a_float():
    [item] = parse_body(
        b'{"type": "t", "data": {"n": 123456789012345678901234567890}}', "application/json"
    ).items
    assert (item.path, item.reason) == ("events[0].data", "invalid_field")
    assert "64 bits" in item.message


@pytest.mark.parametrize(
    "record",
    [
        b'{"n": "t", "v": 1.5e308, "bv": 1.5e308}',  # base value + value: infinity
        b'{"n": "t", "v": 1, "bt": 1.7e308, "t": 1.7e308}',  # base time + time: infinity
    ],
)
def test_a_senml_sum_that_overflows_is_refused_not_stored_as_null(record):
    [item] = parse_body(b"[" + record + b"]", "application/senml+json").items
    assert type(item) is not dict and item.path.startswith("events[0].")
