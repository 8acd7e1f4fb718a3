"""Bounded fuzzing of the event parser and validator (issue 13; the token parser's is in
test_auth_fuzz.py). Nothing but the declared outcome may escape ``parse_body``: a
:class:`BodyError` (the whole body refused) or, per item, a row or a :class:`Rejection`; and
what is stored is what was sent. Derandomized: CI runs the same inputs every time, and each
finding is pinned below as a named regression test.

The generators write JSON *text*, not Python values, so they reach what a serializer never
writes: integers beyond 64 bits, ``NaN`` and ``1e400``, lone surrogates as ``\\ud800`` escapes,
nesting past every limit.
"""

from __future__ import annotations

import json
import math
import re

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugins.ingest.parsing import (
    NDJSON,
    REASONS,
    SENML,
    BodyError,
    parse_body,
)

NOW_US = 1_780_000_000_000_000  # 2026-05-28T20:26:40Z
JSON = "application/json"
FUZZ = settings(max_examples=400, deadline=None, derandomize=True, database=None)

# --- JSON text that serializers never write

awkward_numbers = st.sampled_from(
    [
        "0",
        "-0",
        "1e308",
        "1.7976931348623157e308",
        "1e400",
        "-1e400",
        "5e-324",
        "NaN",
        "Infinity",
        "-Infinity",
        "9223372036854775807",
        "-9223372036854775808",
        "-9223372036854775809",  # below what orjson keeps as an int
        "18446744073709551615",
        "18446744073709551616",  # above it
        "1" + "0" * 30,
        "1" + "0" * 400,
    ]
)
awkward_strings = st.sampled_from(
    [
        '"\\ud800"',
        '"\\udfff"',
        '"\\ud83d\\ude00"',
        '"a\\u0000b"',
        '"\\u001f"',
        '"12345678901234567890"',
    ]
)
wide_integers = st.one_of(
    st.integers(min_value=2**64, max_value=10**30),
    st.integers(min_value=-(10**30), max_value=-(2**63) - 1),
).map(str)
huge_doubles = st.sampled_from(["1e308", "1.7976931348623157e308", "-1.7976931348623157e308"])
scalars = st.one_of(
    st.sampled_from(["null", "true", "false"]),
    awkward_numbers,
    wide_integers,
    awkward_strings,
    st.integers().map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.text(max_size=12).map(json.dumps),
)
LABELS = "type value unit ts eventId data events x bn bt bu bv bs bver n u t v s ut vs vb vd x_"


def _object(pairs) -> str:
    return "{" + ",".join(f"{json.dumps(key)}:{value}" for key, value in pairs) + "}"


def _array(items) -> str:
    return "[" + ",".join(items) + "]"


json_texts = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4).map(_array),
        st.lists(st.tuples(st.sampled_from(LABELS.split()), children), max_size=5).map(_object),
    ),
    max_leaves=25,
)
deeply_nested = st.integers(1, 1100).map(lambda depth: "[" * depth + "]" * depth)
objects = st.lists(st.tuples(st.sampled_from(LABELS.split()), json_texts), max_size=4).map(_object)
# Shaped like events and SenML records, so generated values get past the first checks.
# Shaped like events and SenML records, mostly valid in all but the fuzzed field, so generated
# values get past the first checks to where they are stored.
event_texts = st.fixed_dictionaries(
    {"type": st.one_of(st.just('"t"'), scalars), "data": st.one_of(objects, json_texts)},
    optional={"value": scalars, "eventId": scalars, "nested": deeply_nested},
).map(lambda fields: _object(fields.items()))
# Numbers only (json_texts sends SenML every other kind of value): sums of huge ones overflow.
senml_numbers = st.one_of(huge_doubles, wide_integers, awkward_numbers, st.integers(-9, 9).map(str))
senml_texts = st.lists(
    st.tuples(st.sampled_from(["bt", "t", "bv", "v", "bs", "s", "ut"]), senml_numbers), max_size=3
).map(lambda pairs: _object([("n", '"a"'), *pairs]))
documents = st.one_of(
    st.tuples(st.one_of(json_texts, deeply_nested), st.sampled_from([JSON, NDJSON, SENML])),
    st.tuples(st.lists(event_texts, min_size=1, max_size=5).map(_array), st.just(JSON)),
    st.tuples(st.lists(event_texts, min_size=1, max_size=5).map("\n".join), st.just(NDJSON)),
    st.tuples(st.lists(senml_texts, min_size=1, max_size=5).map(_array), st.just(SENML)),
)


def exactly_equal(left, right) -> bool:
    """Equal *and* of the same JSON types (``==`` says 2**64 equals its rounded float)."""
    if type(left) is not type(right):
        return False
    if type(left) is dict:
        return left.keys() == right.keys() and all(exactly_equal(left[k], right[k]) for k in left)
    if type(left) is list:
        return len(left) == len(right) and all(map(exactly_equal, left, right))
    return left == right


def parsed_or_body_error(body: bytes, content_type: str):
    """The items of ``body``, or None when it was refused whole with a BodyError: no other
    exception may escape (pytest reports it as the failure)."""
    try:
        parsed = parse_body(body, content_type, received_at=NOW_US)
    except BodyError as error:
        assert error.detail
        assert error.status in ((400, 413) if content_type in (JSON, NDJSON, SENML) else (415,))
        return None
    for item in parsed.items:
        if type(item) is dict:
            assert re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", item["type"])  # schema.EventType
            assert item["value"] is None or math.isfinite(item["value"])
            assert type(item["ts"]) is int
            assert item["data"] is None or type(orjson.loads(item["data"])) is dict
        else:
            assert item.path.startswith("events[") and item.reason in REASONS and item.message
    return parsed.items


@FUZZ
@given(documents)
def test_parsing_generated_json_text_never_escapes_anything_but_a_body_error(document):
    text, content_type = document
    items = parsed_or_body_error(text.encode("utf-8", "surrogatepass"), content_type)
    if items is None:
        return
    if content_type == SENML:
        for item in items:
            # SenML puts a sum or ut into data only when it has one: null would be a lost number.
            data = orjson.loads(item["data"]) if type(item) is dict and item["data"] else {}
            assert None not in data.values(), text
        return
    # What is stored is what was sent: data keeps its numbers exactly, with their JSON types.
    for event, item in zip(sent_events(text, content_type), items, strict=True):
        if type(item) is dict and item["data"] is not None:
            assert exactly_equal(orjson.loads(item["data"]), event["data"]), text


def sent_events(text: str, content_type: str) -> list:
    """The events as the standard library reads them (its integers are exact)."""
    if content_type == NDJSON:
        lines = [line for line in text.split("\n") if line.strip()]
        return [_stdlib_or_none(line) for line in lines]
    sent = json.loads(text)
    if type(sent) is dict and sent.keys() == {"events"}:
        return sent["events"]
    return sent if type(sent) is list else [sent]


def _stdlib_or_none(line: str):
    try:
        return json.loads(line)
    except ValueError:
        return None  # orjson refused it too: a malformed_json rejection


@FUZZ
@given(st.sampled_from([("bt", "t"), ("bv", "v"), ("bs", "s")]), senml_numbers, senml_numbers)
def test_a_senml_base_plus_record_number_is_stored_finite_or_rejected_never_lost(
    labels, base, number
):
    text = _object([("n", '"a"'), (labels[0], base), (labels[1], number)])
    items = parsed_or_body_error(text.join("[]").encode(), SENML)
    if items and type(items[0]) is dict and items[0]["data"] is not None:
        assert None not in orjson.loads(items[0]["data"]).values(), text


@FUZZ
@given(st.binary(max_size=300), st.sampled_from([JSON, NDJSON, SENML, "text/plain"]))
def test_parsing_arbitrary_bytes_never_escapes_anything_but_a_body_error(body, content_type):
    parsed_or_body_error(body, content_type)


# --- regressions the fuzzing found


@pytest.mark.parametrize("big", ["18446744073709551616", "-9223372036854775809", "1" + "0" * 30])
@pytest.mark.parametrize("content_type", [JSON, NDJSON])
def test_an_integer_beyond_64_bits_in_data_is_rejected_not_stored_as_a_rounded_float(
    big, content_type
):
    """orjson reads such an integer as a float: stored, it was silently another number."""
    body = f'{{"type": "t", "eventId": "e", "data": {{"big": {big}}}}}'.encode()
    [item] = parse_body(body, content_type, received_at=NOW_US).items
    assert type(item) is not dict
    assert (item.path, item.reason, item.event_id) == ("events[0].data", "invalid_field", "e")
    assert "beyond 64 bits" in item.message


def test_a_senml_number_is_a_double_so_a_huge_integer_is_its_nearest_double():
    """RFC 8428 numbers are doubles (as an event's value is): 2**64 is kept as 2.0**64, and an
    integer no double can hold is refused."""
    body = b'[{"bn": "a", "vs": "on", "ut": 18446744073709551616}]'
    [item] = parse_body(body, SENML, received_at=NOW_US).items
    assert type(item) is dict and orjson.loads(item["data"])["ut"] == 2.0**64
    body = b'[{"bn": "a", "v": 1' + b"0" * 400 + b"}]"
    [item] = parse_body(body, SENML, received_at=NOW_US).items
    assert type(item) is not dict and item.path == "events[0].v"


def test_integers_within_64_bits_big_floats_and_long_digit_strings_are_kept_exactly():
    """What makes a body be read again ("e+" in data, 19 digits in a row) refuses nothing."""
    body = (
        b'{"type": "t", "eventId": "12345678901234567890123", "data": {"max": '
        b'18446744073709551615, "min": -9223372036854775808, "f": 1e19, '
        b'"s": "e+1234567890123456789"}}'
    )
    [row] = parse_body(body, received_at=NOW_US).items
    assert row["event_id"] == "12345678901234567890123"
    assert exactly_equal(
        orjson.loads(row["data"]),
        {"max": 2**64 - 1, "min": -(2**63), "f": 1e19, "s": "e+1234567890123456789"},
    )


def test_a_value_beyond_64_bits_is_stored_as_the_nearest_double_as_any_value():
    """``value`` is a double by contract: an integer value is never kept exactly."""
    [row] = parse_body(b'{"type": "t", "value": 18446744073709551616}', received_at=NOW_US).items
    assert row["value"] == 2.0**64


def test_a_senml_sum_that_overflows_to_infinity_is_rejected_not_stored_as_null():
    """bs + s of two finite doubles was infinity, which orjson writes as null."""
    body = b'[{"bn": "a", "bs": 1.7e308, "s": 1.7e308}]'
    [item] = parse_body(body, SENML, received_at=NOW_US).items
    assert type(item) is not dict
    assert (item.path, item.reason) == ("events[0].s", "invalid_senml")


@pytest.mark.parametrize(
    "record, path",
    [
        ({"bn": "a", "bt": 1.7e308, "t": 1.7e308, "v": 1}, "events[0].t"),
        ({"bn": "a", "bv": 1.7e308, "v": 1.7e308}, "events[0].value"),
    ],
)
def test_a_senml_time_or_value_that_overflows_to_infinity_is_rejected(record, path):
    [item] = parse_body(orjson.dumps([record]), SENML, received_at=NOW_US).items
    assert type(item) is not dict and item.path == path
