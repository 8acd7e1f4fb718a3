"""Request bodies to validated event rows: the ingest hot path, pure (no Pyramid, no database).

:func:`parse_body` takes the (already decompressed) body bytes and a media type and returns a
:class:`ParsedBody`: one item per input event, in order, each either a row ready for a Core
insert (a plain dict, never an ORM object) or a :class:`Rejection` naming the field path, a
bounded reason code and a message that says how to fix it. Problems with the body as a whole
(malformed JSON, wrong shape, too many events) raise :class:`BodyError` with an HTTP status.

Decoding is orjson, the fastest decoder ``make bench`` compares (docs/benchmarks.md); it refuses
NaN and Infinity literals, numbers that overflow a double, invalid UTF-8, lone surrogates and
nesting deeper than 1024 levels, all as a decode error we answer with 400. An integer beyond 64
bits it would round to a float: a body holding one is read again exactly
(:func:`_loads_exactly`), so ``data`` refuses it rather than store another number. Validation
is a hand-written pass per item that reports *every* bad field of *every* item, which schema
libraries that stop at the first error don't.

Timestamps are integer epoch microseconds (UTC) from here to the database: exact, cheap to
compare and index, the same on SQLite and PostgreSQL. The API renders them as RFC 3339.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

import orjson

from sensorhub.errors import first_line
from sensorhub.timestamps import format_timestamp, now_us, parse_timestamp

from .rejection import REASONS, Rejection
from .senml import resolve_senml

__all__ = [
    "REASONS",
    "BodyError",
    "Limits",
    "ParsedBody",
    "Rejection",
    "format_timestamp",  # the core's, here too for the plugin's views
    "parse_body",
    "parse_timestamp",
]

JSON = "application/json"
NDJSON = "application/x-ndjson"
SENML = "application/senml+json"
MEDIA_TYPES = {JSON: JSON, NDJSON: NDJSON, "application/ndjson": NDJSON, SENML: SENML}

EVENT_FIELDS = frozenset({"type", "value", "unit", "ts", "eventId", "data"})
TYPE_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
MAX_UNIT_CHARS = 32
MAX_EVENT_ID_CHARS = 128


@dataclass(frozen=True)
class Limits:
    """What one request may carry. Defaults match the plugin's settings' defaults."""

    max_body_bytes: int = 1024 * 1024
    max_events: int = 1000
    max_depth: int = 16  # nesting levels inside ``data``
    max_data_bytes: int = 8192  # ``data`` as compact JSON
    max_future_seconds: float = 300.0
    retention_seconds: float = 30 * 86400.0


DEFAULT_LIMITS = Limits()


class BodyError(Exception):
    """The body as a whole cannot be taken; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass
class ParsedBody:
    """One entry per input item, in order: a row dict (stored unless a duplicate) or a
    :class:`Rejection`."""

    items: list = field(default_factory=list)
    received_at: int = 0  # epoch microseconds

    @property
    def rows(self) -> list[dict]:
        return [item for item in self.items if type(item) is dict]

    @property
    def rejections(self) -> list[Rejection]:
        return [item for item in self.items if type(item) is Rejection]


def parse_body(
    body: bytes,
    content_type: str = JSON,
    *,
    limits: Limits = DEFAULT_LIMITS,
    received_at: int | None = None,
    loads=orjson.loads,
) -> ParsedBody:
    """Decode and validate a POST /api/v1/events body (see the module docstring).

    ``content_type`` is the bare media type; ``received_at`` (epoch µs) defaults to now and is
    both the stored ``received_at`` and the default ``ts``; ``loads`` lets a benchmark compare
    decoders.
    """
    media = MEDIA_TYPES.get(content_type)
    if media is None:
        raise BodyError(
            415, f"unsupported Content-Type {content_type!r}: send {JSON}, {NDJSON} or {SENML}"
        )
    received = now_us() if received_at is None else received_at
    validator = EventValidator(limits, received)
    items = _items(body, media, limits, validator, loads)
    if loads is orjson.loads and any(_may_hold_rounded_integer(item) for item in items):
        items = _items(body, media, limits, validator, _loads_exactly)
    return ParsedBody(items, received)


def _items(body: bytes, media: str, limits: Limits, validator: EventValidator, loads) -> list:
    if media == NDJSON:
        return _ndjson_items(body, limits, validator, loads)
    document = _decode(body, loads)
    if media == SENML:
        records = _senml_records(document, limits)
        return [
            item if type(item) is Rejection else validator.validate(*item, index=index)
            for index, item in enumerate(resolve_senml(records, validator.received_at))
        ]
    events = _json_events(document, limits)
    return [validator.validate(event, index=index) for index, event in enumerate(events)]


# orjson reads an integer beyond 64 bits (below -2**63 or above 2**64 - 1) as a float, silently
# rounded: 18446744073709551616 would be stored in ``data`` as 1.8446744073709552e+19. Such a
# float is at least 2**63, which orjson writes with an exponent ("e+"): only a body whose stored
# ``data`` holds one (rare, and a cheap test per row) is read again, by :func:`_loads_exactly`,
# so that the validator refuses the integer it cannot keep exactly, as it says it does.
def _may_hold_rounded_integer(item) -> bool:
    return type(item) is dict and item["data"] is not None and "e+" in item["data"]


_STRING_OR_INTEGER = re.compile(
    rb'"[^"\\]*(?:\\.[^"\\]*)*"|(?<![\d.eE+-])-?\d+(?![\d.eE])', re.DOTALL
)
_EXACT_INTEGERS = range(-(2**63), 2**64)


def _loads_exactly(text: bytes):
    """orjson's reading of ``text``, or the standard library's (exact integers) when it holds
    an integer orjson rounds. Only after orjson took it: its refusals stand."""
    document = orjson.loads(text)
    # ``text`` is valid JSON, so outside strings a run of digits is a number.
    for token in _STRING_OR_INTEGER.finditer(text):
        literal = token.group()
        if literal[:1] != b'"' and int(literal) not in _EXACT_INTEGERS:
            return json.loads(text)
    return document


def _decode(body: bytes, loads):
    try:
        return loads(body)
    except (ValueError, RecursionError) as error:  # orjson.JSONDecodeError is a ValueError
        raise BodyError(
            400, f"malformed JSON: {first_line(error) or type(error).__name__}"
        ) from None


def _check_count(count: int, limits: Limits) -> None:
    if count == 0:
        raise BodyError(
            400,
            "the body holds no events: send one event object, an array of "
            f'1 to {limits.max_events} events, or {{"events": [...]}}',
        )
    if count > limits.max_events:
        raise BodyError(
            413,
            f"{count} events in one request; the limit is "
            f"{limits.max_events} (sensorhub.ingest.max_events): split the "
            "batch",
        )


def _json_events(document, limits: Limits) -> list:
    if type(document) is list:
        events = document
    elif type(document) is dict:
        if document.keys() == {"events"}:
            events = document["events"]
            if type(events) is not list:
                raise BodyError(400, '"events" must be an array of event objects')
        else:
            events = [document]
    else:
        raise BodyError(
            400, 'the body must be an event object, an array of events or {"events": [...]}'
        )
    _check_count(len(events), limits)
    return events


def _senml_records(document, limits: Limits) -> list:
    if type(document) is not list:
        raise BodyError(
            400, "a SenML pack (application/senml+json) is a JSON array of records (RFC 8428)"
        )
    _check_count(len(document), limits)
    return document


def _ndjson_items(body: bytes, limits: Limits, validator: EventValidator, loads) -> list:
    lines = [
        (number, line) for number, line in enumerate(body.split(b"\n"), start=1) if line.strip()
    ]
    _check_count(len(lines), limits)
    items = []
    for index, (number, line) in enumerate(lines):
        try:
            event = loads(line)
        except (ValueError, RecursionError) as error:
            items.append(
                Rejection(
                    f"events[{index}]",
                    "malformed_json",
                    f"line {number} is not JSON: {first_line(error) or type(error).__name__}",
                )
            )
            continue
        items.append(validator.validate(event, index=index))
    return items


# Sensors send few distinct types: remembering the valid ones skips the regex on the hot path.
# Bounded, so a client sending endless distinct types cannot grow it.
_KNOWN_TYPES: set[str] = set()
_KNOWN_TYPES_MAX = 4096


def _valid_new_type(kind: str) -> bool:
    if TYPE_PATTERN.fullmatch(kind) is None:
        return False
    if len(_KNOWN_TYPES) < _KNOWN_TYPES_MAX:
        _KNOWN_TYPES.add(kind)
    return True


class EventValidator:
    """Validates one decoded event object into a row, or a :class:`Rejection`."""

    def __init__(self, limits: Limits, received_at: int):
        self.limits = limits
        self.received_at = received_at
        self.latest = received_at + int(limits.max_future_seconds * 1_000_000)
        self.earliest = max(0, received_at - int(limits.retention_seconds * 1_000_000))

    def validate(self, event, ts_us: int | None = None, *, index: int):
        """``ts_us``: a timestamp already resolved (SenML); otherwise ``event["ts"]``."""
        if type(event) is not dict:
            return Rejection(
                f"events[{index}]",
                "not_an_object",
                f"an event must be a JSON object, got {_json_type(event)}",
            )
        event_id = event.get("eventId")
        if not event.keys() <= EVENT_FIELDS:
            unknown = sorted(key for key in event if key not in EVENT_FIELDS)
            return Rejection(
                f"events[{index}].{unknown[0]}",
                "unknown_field",
                f"unknown field(s) {', '.join(map(repr, unknown))}; an event has "
                "only type, value, unit, ts, eventId and data",
                _str_or_none(event_id),
            )
        kind = event.get("type")
        if kind is None:
            return Rejection(
                f"events[{index}].type",
                "missing_field",
                "type is required: 1-64 characters from A-Z a-z 0-9 _ . : -",
                _str_or_none(event_id),
            )
        if type(kind) is not str or (kind not in _KNOWN_TYPES and not _valid_new_type(kind)):
            return self._invalid(
                index, "type", "must be 1-64 characters from A-Z a-z 0-9 _ . : -", event_id
            )
        value = event.get("value")
        if value is not None:
            value_type = type(value)
            if value_type is int:
                try:
                    value = float(value)
                except OverflowError:
                    return self._invalid(index, "value", "is too large for a double", event_id)
            elif value_type is not float:
                return self._invalid(
                    index, "value", "must be a number or null, got " + _json_type(value), event_id
                )
            if not math.isfinite(value):
                return self._invalid(
                    index, "value", "must be finite (no NaN or Infinity)", event_id
                )
        unit = event.get("unit")
        if unit is not None and (
            type(unit) is not str or not 0 < len(unit) <= MAX_UNIT_CHARS or not unit.isprintable()
        ):
            return self._invalid(
                index, "unit", f"must be 1-{MAX_UNIT_CHARS} printable characters", event_id
            )
        # Printable only: control characters (NUL above all, which PostgreSQL text refuses)
        # have no business in an identifier or a unit.
        if event_id is not None and (
            type(event_id) is not str
            or not 0 < len(event_id) <= MAX_EVENT_ID_CHARS
            or not event_id.isprintable()
        ):
            return Rejection(
                f"events[{index}].eventId",
                "invalid_field",
                f"eventId must be 1-{MAX_EVENT_ID_CHARS} printable characters",
            )
        ts = event.get("ts") if ts_us is None else ts_us
        if ts is None:
            ts = self.received_at
        else:
            if ts_us is None:
                # parse_timestamp, with integers inlined for the hot path; one beyond its bounds
                # is refused below, as too far ahead or too old.
                ts = ts * 1000 if type(ts) is int else parse_timestamp(ts)
                if ts is None:
                    return self._invalid(
                        index,
                        "ts",
                        "must be RFC 3339 with an offset "
                        "(2026-01-31T12:00:00Z) or integer epoch "
                        "milliseconds",
                        event_id,
                    )
            if ts > self.latest:
                return Rejection(
                    f"events[{index}].ts",
                    "ts_in_future",
                    f"ts is more than {self.limits.max_future_seconds:g}s ahead "
                    "of the server's clock; check the sensor's clock",
                    event_id,
                )
            if ts < self.earliest:
                return Rejection(
                    f"events[{index}].ts",
                    "ts_too_old",
                    "ts is older than the retention of "
                    f"{self.limits.retention_seconds / 86400:g} days",
                    event_id,
                )
        data = event.get("data")
        if data is not None:
            if type(data) is not dict:
                return self._invalid(
                    index, "data", "must be a JSON object, got " + _json_type(data), event_id
                )
            try:
                encoded = orjson.dumps(data)
            except (TypeError, orjson.JSONEncodeError):
                return self._invalid(
                    index,
                    "data",
                    "holds a number JSON cannot carry exactly (an integer beyond 64 bits)",
                    event_id,
                )
            if len(encoded) > self.limits.max_data_bytes:
                return Rejection(
                    f"events[{index}].data",
                    "data_too_large",
                    f"data is {len(encoded)} bytes as JSON; the limit is "
                    f"{self.limits.max_data_bytes}",
                    event_id,
                )
            # Cheap bound first: depth cannot exceed the number of opening brackets.
            if (
                encoded.count(b"{") + encoded.count(b"[") > self.limits.max_depth
                and _depth(data) > self.limits.max_depth
            ):
                return Rejection(
                    f"events[{index}].data",
                    "data_too_deep",
                    f"data nests deeper than {self.limits.max_depth} levels",
                    event_id,
                )
            data = encoded.decode()
        return {
            "event_id": event_id,
            "type": kind,
            "value": value,
            "unit": unit,
            "ts": ts,
            "received_at": self.received_at,
            "data": data,
        }

    @staticmethod
    def _invalid(index: int, name: str, message: str, event_id) -> Rejection:
        return Rejection(
            f"events[{index}].{name}", "invalid_field", f"{name} {message}", _str_or_none(event_id)
        )


def _str_or_none(value) -> str | None:
    return value if type(value) is str else None


def _json_type(value) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        str: "a string",
        int: "a number",
        float: "a number",
        list: "an array",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def _depth(value) -> int:
    """Nesting depth: 1 for an object of scalars. Iterative (no recursion limit to hit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        current, level = stack.pop()
        deepest = max(deepest, level)
        children = current.values() if type(current) is dict else current
        stack.extend((child, level + 1) for child in children if type(child) in (dict, list))
    return deepest
