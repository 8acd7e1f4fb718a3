"""The shapes of the sensor registry and token API, as the OpenAPI document publishes them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from sensorhub.openapi import JSON, Operation

# Printable text only: a name is shown in terminals and pages, where control characters, line
# separators and bidirectional overrides could disguise or inject what is shown.
Name = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=200,
        pattern="^[^\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029\\u202a-\\u202e\\u2066-\\u2069]+$",
        description="1-200 printable characters (no control characters)",
    ),
]
Expiry = Annotated[
    str | int,
    msgspec.Meta(description="RFC 3339 with an offset, or integer epoch milliseconds"),
]
Metadata = Annotated[dict[str, Any], msgspec.Meta(description="any JSON object, ≤ 8 KiB")]


class SensorCreate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    name: Name
    metadata: Metadata | None = None
    expiresAt: Expiry | None = None  # of the first token; none: it never expires


class SensorPatch(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Only the fields sent change; ``metadata: null`` clears it."""

    name: Name | UnsetType = UNSET
    metadata: Metadata | None | UnsetType = UNSET
    disabled: bool | UnsetType = UNSET


class TokenCreate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    expiresAt: Expiry | None = None


class SensorCreated(msgspec.Struct):
    sensorId: str
    token: str  # shown once: store it on the sensor
    name: str
    tokenId: str
    expiresAt: str | None


class Token(msgspec.Struct):
    tokenId: str
    hint: str
    state: Literal["active", "expired", "revoked"]
    issuedBy: str
    createdAt: str
    lastUsedAt: str | None
    expiresAt: str | None
    revokedAt: str | None


class TokenIssued(Token):
    sensorId: str
    token: str  # shown once


class TokenList(msgspec.Struct):
    tokens: list[Token]


class Sensor(msgspec.Struct):
    sensorId: str
    name: str
    metadata: dict[str, Any] | None
    createdAt: str
    lastSeenAt: str | None
    disabled: bool


class SensorWithTokens(Sensor):
    tokens: list[Token]


class SensorSummary(Sensor):
    activeTokens: int


class SensorsPage(msgspec.Struct):
    sensors: list[SensorSummary]
    nextCursor: str | None  # pass back as ?cursor= for the next page; null on the last


class OwnSensor(msgspec.Struct):
    """The calling sensor; other plugins add fields (the ingest plugin its counters)."""

    sensorId: str
    name: str
    createdAt: str
    lastSeenAt: str | None
    metadata: dict[str, Any] | None
    tokenId: str


class OwnSensorQuery(msgspec.Struct, omit_defaults=True):
    sensorId: str | None = None  # if given, must be the caller's own


class SensorsQuery(msgspec.Struct, omit_defaults=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=500)] = 100
    cursor: (
        Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern="^[A-Za-z0-9_-]+$")]
        | None
    ) = None  # nextCursor of the previous page


OWN_SENSOR = Operation(
    "The calling sensor: who it is and what it has sent",
    tags=("sensors",),
    query=OwnSensorQuery,
    responses={200: ("the sensor", {JSON: OwnSensor})},
)
CREATE_SENSOR = Operation(
    "Register a sensor and issue its first token (admin or provisioning key)",
    tags=("sensors",),
    body={JSON: SensorCreate},
    responses={201: ("created; the token is shown only here", {JSON: SensorCreated})},
    errors=(422,),
)
LIST_SENSORS = Operation(
    "List sensors (admin), a page at a time",
    tags=("sensors",),
    query=SensorsQuery,
    responses={200: ("a page of sensors", {JSON: SensorsPage})},
    errors=(422,),
)
GET_SENSOR = Operation(
    "One sensor with its tokens (admin)",
    tags=("sensors",),
    responses={200: ("the sensor", {JSON: SensorWithTokens})},
    errors=(404,),
)
PATCH_SENSOR = Operation(
    "Rename, describe, disable or enable a sensor (admin)",
    tags=("sensors",),
    body={JSON: SensorPatch},
    responses={200: ("the sensor as changed", {JSON: Sensor})},
    errors=(404, 422),
)
LIST_TOKENS = Operation(
    "A sensor's tokens (admin)",
    tags=("tokens",),
    responses={200: ("the tokens, never their secrets", {JSON: TokenList})},
    errors=(404,),
)
ISSUE_TOKEN = Operation(
    "Issue another token for a sensor, to rotate (admin)",
    tags=("tokens",),
    body={JSON: TokenCreate},
    responses={201: ("issued; the token is shown only here", {JSON: TokenIssued})},
    errors=(404, 422),
)
REVOKE_TOKEN = Operation(
    "Revoke a token (admin); refused from the next request on",
    tags=("tokens",),
    responses={200: ("the token as revoked", {JSON: Token})},
    errors=(404,),
)
