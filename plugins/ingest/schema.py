"""The shapes of the events API, as the OpenAPI document publishes them.

What a schema cannot say (the time window, sizes after decompression, depth of ``data``, partial
mode, SenML base-value resolution) is checked in ``parsing.py``, and its reason codes are listed
in ``rejection.py``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from sensorhub.openapi import JSON, FieldProblem, OneOf, Operation

NDJSON = "application/x-ndjson"
SENML = "application/senml+json"

EventType = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z0-9_.:-]{1,64}$",
        description="1-64 characters from A-Z a-z 0-9 _ . : - (what was measured)",
    ),
]
Timestamp = Annotated[
    str | int,
    msgspec.Meta(
        description="RFC 3339 with an offset (2026-12-01T10:00:00Z) or integer epoch "
        "milliseconds; defaults to when the server received the event",
    ),
]


class Event(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=True):
    """One reading or happening. Send an ``eventId`` so a resend is a safe duplicate."""

    type: EventType
    value: float | None = None
    unit: Annotated[str, msgspec.Meta(max_length=32)] | None = None
    ts: Timestamp | None = None
    eventId: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None
    data: dict[str, Any] | None = None


class SenMLRecord(msgspec.Struct, omit_defaults=True):
    """An RFC 8428 record; base fields apply to the records after them. A field is present
    with a value, or absent (never null)."""

    bn: str | UnsetType = UNSET
    bt: float | UnsetType = UNSET
    bu: str | UnsetType = UNSET
    bv: float | UnsetType = UNSET
    bs: float | UnsetType = UNSET
    bver: int | UnsetType = UNSET
    n: str | UnsetType = UNSET
    u: str | UnsetType = UNSET
    v: float | UnsetType = UNSET
    vs: str | UnsetType = UNSET
    vb: bool | UnsetType = UNSET
    vd: str | UnsetType = UNSET
    s: float | UnsetType = UNSET
    t: float | UnsetType = UNSET
    ut: float | UnsetType = UNSET


class ItemResult(msgspec.Struct, omit_defaults=True):
    """What became of one input item, in input order."""

    status: Literal["accepted", "duplicate", "conflict", "rejected"]
    eventId: str | None = None
    path: str | None = None
    reason: str | None = None
    message: str | None = None
    errors: list[FieldProblem] | None = None  # a rejected item with several bad fields


class IngestResult(msgspec.Struct):
    accepted: int
    duplicates: int  # not stored again, conflicts included
    conflicts: int  # an eventId already stored with a different payload (kept as it was)
    rejected: int
    results: list[ItemResult]


class StoredEvent(msgspec.Struct):
    eventId: str | None
    type: str
    value: float | None
    unit: str | None
    ts: str  # RFC 3339, UTC
    receivedAt: str
    data: dict[str, Any] | None


class EventsPage(msgspec.Struct):
    events: list[StoredEvent]
    nextCursor: str | None  # pass back as ?cursor= for the next page; null on the last


Bound = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^(-?[0-9]{1,15}|[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}"
        r"(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2}))$",
        description="RFC 3339 with an offset, or integer epoch milliseconds",
    ),
]
Cursor = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=200,
        pattern="^[A-Za-z0-9_-]+$",
        description="nextCursor of the previous page, with the same order",
    ),
]


class EventsQuery(msgspec.Struct, omit_defaults=True):
    type: list[EventType] | None = None  # repeat for several types
    since: Bound | None = None  # inclusive
    until: Bound | None = None  # exclusive
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100
    order: Literal["newest", "oldest"] = "newest"
    cursor: Cursor | None = None


def post_events_operation(max_events: int) -> Operation:
    """The POST operation with this server's batch limit (a setting) in its shapes."""
    events = Annotated[list[Event], msgspec.Meta(min_length=1, max_length=max_events)]
    records = Annotated[list[SenMLRecord], msgspec.Meta(min_length=1, max_length=max_events)]
    batch = msgspec.defstruct("EventBatch", [("events", events)], forbid_unknown_fields=True)
    return Operation(
        "Post events: one, a batch, NDJSON or SenML",
        description="201 only after the events are committed, with one result per input "
        "item. A batch with an invalid item is refused whole (422, every bad field listed) "
        "unless the server runs in partial mode. Content-Encoding: gzip is accepted.",
        tags=("events",),
        # NDJSON: the same events, one JSON object per line (described here as the array).
        body={JSON: OneOf(Event, events, batch), NDJSON: events, SENML: records},
        responses={201: ("committed; one result per input item", {JSON: IngestResult})},
        errors=(413, 415, 422),
    )


READ_EVENTS = Operation(
    "Read events back, newest first, a page at a time",
    description="Accept: application/x-ndjson streams every matching event instead.",
    tags=("events",),
    query=EventsQuery,
    responses={200: ("a page of events", {JSON: EventsPage, NDJSON: None})},
    errors=(422,),
)
READ_SENSOR_EVENTS = Operation(
    "Read any sensor's events (admin)",
    tags=("events",),
    query=EventsQuery,
    responses={200: ("a page of events", {JSON: EventsPage, NDJSON: None})},
    errors=(404, 422),
)
