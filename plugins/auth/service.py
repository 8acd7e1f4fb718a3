"""Sensor and token operations shared by the HTTP API and ``sensorhub-admin sensor``.

Functions take a session joined to the caller's transaction and never commit: the request (or
the admin command's ``with request.tm``) decides. The raw token exists only in
the return value of :func:`create_sensor` / :func:`issue_token`; only its hash and a short hint
are stored.
A bad value raises :class:`sensorhub.errors.FieldError`, which the API answers with a 422.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import func, select

from sensorhub.errors import FieldError
from sensorhub.models import Sensor
from sensorhub.timestamps import utcnow

from . import tokens
from .models import SensorToken

MAX_NAME_LENGTH = 200
MAX_METADATA_BYTES = 8192


@dataclass(frozen=True)
class IssuedToken:
    token: str  # the raw token: show it once, never store or log it
    row: SensorToken


def check_name(name, path: str = "name") -> str:
    if not isinstance(name, str) or not name.strip():
        raise FieldError(path, "required: a non-empty string")
    name = name.strip()
    if len(name) > MAX_NAME_LENGTH:
        raise FieldError(path, f"at most {MAX_NAME_LENGTH} characters")
    return name


def check_metadata(metadata, path: str = "metadata") -> dict | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise FieldError(path, "must be a JSON object (or absent)")
    try:
        encoded = orjson.dumps(metadata)
    except orjson.JSONEncodeError:
        raise FieldError(path, "holds an integer beyond 64 bits: send it as a string") from None
    if len(encoded) > MAX_METADATA_BYTES:
        raise FieldError(path, f"at most {MAX_METADATA_BYTES} bytes as JSON")
    return metadata


def check_expiry(expires_at: datetime | None, path: str = "expiresAt") -> datetime | None:
    if expires_at is not None and expires_at <= utcnow():
        raise FieldError(path, "must be in the future")
    return expires_at


def create_sensor(
    dbsession,
    name: object,  # unchecked input (a request body's value): check_name validates it
    metadata: dict | None,
    *,
    issued_by: str,
    expires_at: datetime | None = None,
) -> tuple[Sensor, IssuedToken]:
    sensor = Sensor(
        name=check_name(name), meta=check_metadata(metadata), disabled=False, created_at=utcnow()
    )
    dbsession.add(sensor)
    dbsession.flush()
    return sensor, issue_token(dbsession, sensor, issued_by=issued_by, expires_at=expires_at)


def issue_token(
    dbsession, sensor: Sensor, *, issued_by: str, expires_at: datetime | None = None
) -> IssuedToken:
    raw = tokens.new_token()
    row = SensorToken(
        sensor_id=sensor.id,
        token_hash=tokens.token_hash(raw),
        hint=tokens.hint(raw),
        issued_by=issued_by,
        created_at=utcnow(),
        expires_at=check_expiry(expires_at),
    )
    dbsession.add(row)
    dbsession.flush()
    return IssuedToken(raw, row)


def get_sensor(dbsession, sensor_id: str) -> Sensor | None:
    return dbsession.get(Sensor, sensor_id)


# What a sensor reads about itself (GET /api/v1/sensor): these columns, as a Profile.
PROFILE_COLUMNS = (
    Sensor.id,
    Sensor.name,
    Sensor.created_at,
    Sensor.last_seen_at,
    Sensor.meta.label("meta"),
)
Profile = tuple[str, str, datetime, datetime | None, Any]


def sensor_tokens(dbsession, sensor_id: str) -> list[SensorToken]:
    return list(
        dbsession.scalars(
            select(SensorToken)
            .where(SensorToken.sensor_id == sensor_id)
            .order_by(SensorToken.created_at, SensorToken.id)
        )
    )


def get_token(dbsession, sensor_id: str, token_id: str) -> SensorToken | None:
    token = dbsession.get(SensorToken, token_id)
    return token if token is not None and token.sensor_id == sensor_id else None


def revoke(token: SensorToken) -> bool:
    """Revoke ``token`` now; False when it already was (revoking twice changes nothing)."""
    if token.revoked_at is not None:
        return False
    token.revoked_at = utcnow()
    return True


def list_sensors(dbsession, limit: int, after: str | None = None) -> list[Sensor]:
    """A page of sensors in id order (keyset pagination: stable while sensors are added)."""
    query = select(Sensor).order_by(Sensor.id).limit(limit)
    if after:
        query = query.where(Sensor.id > after)
    return list(dbsession.scalars(query))


def count_active_tokens(dbsession, sensor_ids: list[str]) -> dict[str, int]:
    now = utcnow()
    rows = dbsession.execute(
        select(SensorToken.sensor_id, func.count())
        .where(
            SensorToken.sensor_id.in_(sensor_ids),
            SensorToken.revoked_at.is_(None),
            (SensorToken.expires_at.is_(None)) | (SensorToken.expires_at > now),
        )
        .group_by(SensorToken.sensor_id)
    )
    return dict(rows.all())


def sensor_json(sensor: Sensor) -> dict:
    return {
        "sensorId": sensor.id,
        "name": sensor.name,
        "metadata": sensor.meta,
        "createdAt": sensor.created_at,
        "lastSeenAt": sensor.last_seen_at,
        "disabled": sensor.disabled,
    }


def token_json(token: SensorToken) -> dict:
    return {
        "tokenId": token.id,
        "hint": token.hint,
        "state": token.state(utcnow()),
        "issuedBy": token.issued_by,
        "createdAt": token.created_at,
        "lastUsedAt": token.last_used_at,
        "expiresAt": token.expires_at,
        "revokedAt": token.revoked_at,
    }
