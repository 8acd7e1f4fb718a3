"""Request bodies to validated event rows: the ingest hot path, pure (no Pyramid, no database).

:func:`parse_body` takes the (already decompressed) body bytes and a media type and returns a
:class:`ParsedBody`: one item per input event, in order, each either a row ready for a Core
insert (a plain dict, never an ORM object) or a :class:`Rejection` naming the field path, a
bounded reason code and a message that says how to fix it. Problems with the body as a whole
(malformed JSON, wrong shape, too many events) raise :class:`BodyError` with an HTTP status.

Decoding is msgspec: it refuses NaN and Infinity literals, numbers that overflow a double,
invalid UTF-8 and lone surrogates as a decode error we answer with 400, and keeps an integer
beyond 64 bits exact (orjson would turn it into a float), so ``data`` holding one is refused
instead of stored altered. Each item is checked against ``schema.Event`` (the shape the OpenAPI
document publishes) in one msgspec call; an item that fails it is checked field by field so
that *every* bad field of *every* item is reported. What a schema cannot say (the time window,
sizes and depth of ``data``, printable text) is checked here.

Timestamps are integer epoch microseconds (UTC) from here to the database: exact, cheap to
compare and index, the same on SQLite and PostgreSQL. The API renders them as RFC 3339.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import msgspec
import orjson

from sensorhub.errors import first_line
from sensorhub.timestamps import format_timestamp, now_us, parse_timestamp
from sensorhub.validation import check_fields

from .rejection import REASONS, Rejection
from .schema import NDJSON, SENML, Event
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
MEDIA_TYPES = {JSON: JSON, NDJSON: NDJSON, "application/ndjson": NDJSON, SENML: SENML}

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
    loads=msgspec.json.decode,
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
    if media == JSON and loads is msgspec.json.decode:
        # The common case, an array of valid events, decoded straight into the shape: no
        # dict per event. Anything else (one object, an envelope, a bad item) takes the path
        # below, which finds and reports every problem.
        try:
            shaped = _EVENT_ARRAY.decode(body)
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
            pass
        else:
            _check_count(len(shaped), limits)
            return ParsedBody(
                [validator.checked(event, index=index) for index, event in enumerate(shaped)],
                received,
            )
    if media == NDJSON:
        items = _ndjson_items(body, limits, validator, loads)
    else:
        document = _decode(body, loads)
        if media == SENML:
            records = _senml_records(document, limits)
            items = [
                item if type(item) is Rejection else validator.validate(*item, index=index)
                for index, item in enumerate(resolve_senml(records, received))
            ]
        else:
            events = _json_events(document, limits)
            items = [validator.validate(event, index=index) for index, event in enumerate(events)]
    return ParsedBody(items, received)


_EVENT_ARRAY = msgspec.json.Decoder(list[Event])


def _decode(body: bytes, loads):
    try:
        return loads(body)
    except (ValueError, RecursionError) as error:  # msgspec.DecodeError is a ValueError
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


class EventValidator:
    """Validates one decoded event object into a row, or a :class:`Rejection`."""

    def __init__(self, limits: Limits, received_at: int):
        self.limits = limits
        self.received_at = received_at
        self.latest = received_at + int(limits.max_future_seconds * 1_000_000)
        self.earliest = max(0, received_at - int(limits.retention_seconds * 1_000_000))

    def validate(self, event, ts_us: int | None = None, *, index: int):
        """``ts_us``: a timestamp already resolved (SenML); otherwise ``event["ts"]``.

        The shape (``schema.Event``, the one the OpenAPI document publishes) is checked by
        msgspec in one call; only when it fails is each field checked on its own, so that every
        bad field is reported. What no schema can say is checked here after it."""
        if type(event) is not dict:
            return Rejection(
                f"events[{index}]",
                "not_an_object",
                f"an event must be a JSON object, got {_json_type(event)}",
            )
        try:
            shaped = msgspec.convert(event, Event, strict=True)
        except msgspec.ValidationError:
            _, errors = check_fields(event, Event, strict=True, at=f"events[{index}]")
            return Rejection.of(errors, _str_or_none(event.get("eventId")))
        return self.checked(shaped, ts_us, index=index)

    def checked(self, shaped: Event, ts_us: int | None = None, *, index: int):
        """An event of the right shape as a row, or what no schema can say is wrong with it."""
        event_id = shaped.eventId
        at = f"events[{index}]."
        problems: list[Rejection] = []
        value = shaped.value
        if value is not None and not math.isfinite(value):
            problems.append(
                Rejection(at + "value", "invalid_field", "value must be a finite number", event_id)
            )
        if shaped.unit is not None and not (shaped.unit and shaped.unit.isprintable()):
            problems.append(
                Rejection(
                    at + "unit",
                    "invalid_field",
                    f"unit must be 1-{MAX_UNIT_CHARS} printable characters",
                    event_id,
                )
            )
        # Printable only: control characters (NUL above all, which PostgreSQL text refuses)
        # have no business in an identifier or a unit.
        if shaped.eventId is not None and not shaped.eventId.isprintable():
            problems.append(
                Rejection(
                    at + "eventId",
                    "invalid_field",
                    f"eventId must be 1-{MAX_EVENT_ID_CHARS} printable characters",
                    event_id,
                )
            )
        ts = self._ts(shaped.ts if ts_us is None else ts_us, ts_us is None, at, event_id, problems)
        data = None
        if shaped.data is not None:
            data = self._data(shaped.data, at, event_id, problems)
        if problems:
            return Rejection.of(problems, event_id)
        return {
            "event_id": shaped.eventId,
            "type": shaped.type,
            "value": value,
            "unit": shaped.unit,
            "ts": ts,
            "received_at": self.received_at,
            "data": data,
        }

    def _ts(self, ts, given: bool, at: str, event_id, problems: list) -> int:
        if ts is None:
            return self.received_at
        if given:
            ts = parse_timestamp(ts)
            if ts is None:
                problems.append(
                    Rejection(
                        at + "ts",
                        "invalid_field",
                        "ts must be RFC 3339 with an offset (2026-01-31T12:00:00Z) or integer "
                        "epoch milliseconds",
                        event_id,
                    )
                )
                return self.received_at
        if ts > self.latest:
            problems.append(
                Rejection(
                    at + "ts",
                    "ts_in_future",
                    f"ts is more than {self.limits.max_future_seconds:g}s ahead of the server's "
                    "clock; check the sensor's clock",
                    event_id,
                )
            )
        elif ts < self.earliest:
            problems.append(
                Rejection(
                    at + "ts",
                    "ts_too_old",
                    "ts is older than the retention of "
                    f"{self.limits.retention_seconds / 86400:g} days",
                    event_id,
                )
            )
        return ts

    def _data(self, data: dict, at: str, event_id, problems: list) -> str | None:
        try:
            encoded = orjson.dumps(data)
        except (TypeError, orjson.JSONEncodeError):
            problems.append(
                Rejection(
                    at + "data",
                    "invalid_field",
                    "data holds a number JSON cannot carry exactly (an integer beyond 64 "
                    "bits): send it as a string",
                    event_id,
                )
            )
            return None
        if len(encoded) > self.limits.max_data_bytes:
            problems.append(
                Rejection(
                    at + "data",
                    "data_too_large",
                    f"data is {len(encoded)} bytes as JSON; the limit is "
                    f"{self.limits.max_data_bytes}",
                    event_id,
                )
            )
        # Cheap bound first: depth cannot exceed the number of opening brackets.
        elif (
            encoded.count(b"{") + encoded.count(b"[") > self.limits.max_depth
            and _depth(data) > self.limits.max_depth
        ):
            problems.append(
                Rejection(
                    at + "data",
                    "data_too_deep",
                    f"data nests deeper than {self.limits.max_depth} levels",
                    event_id,
                )
            )
        return encoded.decode()


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
