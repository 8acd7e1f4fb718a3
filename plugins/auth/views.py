"""The auth plugin's HTTP API (all JSON; errors are problem documents).

Sensor side:   GET  /api/v1/sensor?sensorId=<own id>        (permission "sensor")
Admin side:    POST /api/v1/sensors                          (admin, or the provisioning key)
               GET  /api/v1/sensors?limit=&cursor=           (admin, keyset-paginated)
               GET/PATCH /api/v1/sensors/{id}                (admin)
               GET/POST  /api/v1/sensors/{id}/tokens         (admin: list, issue for rotation)
               DELETE    /api/v1/sensors/{id}/tokens/{tid}   (admin: revoke)

A raw token appears in exactly two answers (creating a sensor, issuing a token), which carry
``Cache-Control: no-store``.
"""

from __future__ import annotations

import base64
from datetime import datetime

from msgspec import UNSET
from pyramid.httpexceptions import HTTPNotFound

from sensorhub.api import API_PREFIX
from sensorhub.errors import FieldError, problem
from sensorhub.identity import ADMIN, SENSOR, AdminIdentity
from sensorhub.timestamps import parse_datetime
from sensorhub.validation import body_of, query_of

from . import schema, service
from .security import ENROL, SELF_ROUTE


def _invalid(error: FieldError):
    if error.reason is None:
        error.reason = "invalid_field"  # the service's checks name the field; the code is this
    return problem(422, str(error), errors=[error])


def _expiry(raw: str | int | None) -> datetime | None:
    if raw is None:
        return None
    value = parse_datetime(raw)
    if value is None:
        raise problem(
            422,
            "expiresAt is not a timestamp",
            errors=[
                FieldError(
                    "expiresAt",
                    "RFC 3339 with an offset (2030-01-01T00:00:00Z) or integer epoch "
                    "milliseconds, within the years 1 to 9999",
                    "invalid_field",
                )
            ],
        )
    return value


def _sensor_or_404(request):
    sensor = service.get_sensor(request.dbsession, request.matchdict["sensor_id"])
    if sensor is None:
        raise HTTPNotFound(f"no sensor {request.matchdict['sensor_id']!r}")
    return sensor


def _no_store(request) -> None:
    request.response.headers["Cache-Control"] = "no-store"


def create_sensor(request):
    body = body_of(request, schema.SensorCreate, allow_empty=True)
    issued_by = "admin" if isinstance(request.identity, AdminIdentity) else "provisioning"
    try:
        sensor, issued = service.create_sensor(
            request.dbsession,
            body.name,
            body.metadata,
            issued_by=issued_by,
            expires_at=_expiry(body.expiresAt),
        )
    except FieldError as error:
        raise _invalid(error) from None
    request.response.status = 201
    request.response.headers["Location"] = f"{API_PREFIX}/sensors/{sensor.id}"
    _no_store(request)
    return {
        "sensorId": sensor.id,
        "token": issued.token,
        "name": sensor.name,
        "tokenId": issued.row.id,
        "expiresAt": issued.row.expires_at,
    }


def own_sensor(request):
    identity = request.identity
    asked = query_of(request, schema.OwnSensorQuery).sensorId
    if asked is not None and asked != identity.sensor_id:
        raise problem(403, "a sensor may only read itself: sensorId must be your own id")
    # A remembered lookup's check brought the answer, as fresh as a read; else one read.
    policy = request.registry["sensorhub.auth.policy"]
    answer = policy.remembered_self(request) or policy.read_self(request, identity.sensor_id)
    if answer is None:  # deleted since this request authenticated
        raise HTTPNotFound(f"no sensor {identity.sensor_id!r}")
    (sensor_id, name, created_at, last_seen_at, meta), info = answer
    info.update(
        {
            "sensorId": sensor_id,
            "name": name,
            "createdAt": created_at,
            "lastSeenAt": last_seen_at,
            "metadata": meta,
            "tokenId": identity.token_id,
        }
    )
    return info


def list_sensors(request):
    query = query_of(request, schema.SensorsQuery)
    after = None
    if query.cursor is not None:
        after = _decode_cursor(query.cursor)
    sensors = service.list_sensors(request.dbsession, query.limit, after)
    active = service.count_active_tokens(request.dbsession, [s.id for s in sensors])
    items = [{**service.sensor_json(s), "activeTokens": active.get(s.id, 0)} for s in sensors]
    more = len(sensors) == query.limit
    return {"sensors": items, "nextCursor": _encode_cursor(sensors[-1].id) if more else None}


def _encode_cursor(sensor_id: str) -> str:
    return base64.urlsafe_b64encode(sensor_id.encode()).rstrip(b"=").decode()


def _decode_cursor(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise problem(
            422,
            "cursor is not one this server issued: start again without it",
            errors=[FieldError("cursor", "not one this server issued", "invalid_field")],
        ) from None


def get_sensor(request):
    sensor = _sensor_or_404(request)
    tokens = service.sensor_tokens(request.dbsession, sensor.id)
    return {**service.sensor_json(sensor), "tokens": [service.token_json(t) for t in tokens]}


def patch_sensor(request):
    sensor = _sensor_or_404(request)
    body = body_of(request, schema.SensorPatch, allow_empty=True)
    try:
        if body.name is not UNSET:
            sensor.name = service.check_name(body.name)
        if body.metadata is not UNSET:
            sensor.meta = service.check_metadata(body.metadata)
    except FieldError as error:
        raise _invalid(error) from None
    if body.disabled is not UNSET:
        sensor.disabled = body.disabled
    request.dbsession.flush()
    return service.sensor_json(sensor)


def list_tokens(request):
    sensor = _sensor_or_404(request)
    return {
        "tokens": [
            service.token_json(t) for t in service.sensor_tokens(request.dbsession, sensor.id)
        ]
    }


def issue_token(request):
    sensor = _sensor_or_404(request)
    body = body_of(request, schema.TokenCreate, allow_empty=True)
    try:
        issued = service.issue_token(
            request.dbsession, sensor, issued_by="admin", expires_at=_expiry(body.expiresAt)
        )
    except FieldError as error:
        raise _invalid(error) from None
    request.response.status = 201
    _no_store(request)
    return {**service.token_json(issued.row), "sensorId": sensor.id, "token": issued.token}


def revoke_token(request):
    sensor = _sensor_or_404(request)
    token = service.get_token(request.dbsession, sensor.id, request.matchdict["token_id"])
    if token is None:
        raise HTTPNotFound(f"sensor {sensor.id!r} has no token {request.matchdict['token_id']!r}")
    service.revoke(token)
    request.dbsession.flush()
    return service.token_json(token)


def includeme(config) -> None:
    prefix = API_PREFIX
    config.add_route(SELF_ROUTE, f"{prefix}/sensor")
    config.add_route("auth.sensors", f"{prefix}/sensors")
    config.add_route("auth.sensor", f"{prefix}/sensors/{{sensor_id}}")
    config.add_route("auth.sensor_tokens", f"{prefix}/sensors/{{sensor_id}}/tokens")
    config.add_route("auth.sensor_token", f"{prefix}/sensors/{{sensor_id}}/tokens/{{token_id}}")
    view = config.add_view
    view(
        own_sensor,
        route_name=SELF_ROUTE,
        request_method=("GET", "HEAD"),
        permission=SENSOR,
        renderer="json",
        openapi=schema.OWN_SENSOR,
    )
    view(
        create_sensor,
        route_name="auth.sensors",
        request_method="POST",
        permission=ENROL,
        renderer="json",
        openapi=schema.CREATE_SENSOR,
    )
    view(
        list_sensors,
        route_name="auth.sensors",
        request_method=("GET", "HEAD"),
        permission=ADMIN,
        renderer="json",
        openapi=schema.LIST_SENSORS,
    )
    view(
        get_sensor,
        route_name="auth.sensor",
        request_method=("GET", "HEAD"),
        permission=ADMIN,
        renderer="json",
        openapi=schema.GET_SENSOR,
    )
    view(
        patch_sensor,
        route_name="auth.sensor",
        request_method="PATCH",
        permission=ADMIN,
        renderer="json",
        openapi=schema.PATCH_SENSOR,
    )
    view(
        list_tokens,
        route_name="auth.sensor_tokens",
        request_method=("GET", "HEAD"),
        permission=ADMIN,
        renderer="json",
        openapi=schema.LIST_TOKENS,
    )
    view(
        issue_token,
        route_name="auth.sensor_tokens",
        request_method="POST",
        permission=ADMIN,
        renderer="json",
        openapi=schema.ISSUE_TOKEN,
    )
    view(
        revoke_token,
        route_name="auth.sensor_token",
        request_method="DELETE",
        permission=ADMIN,
        renderer="json",
        openapi=schema.REVOKE_TOKEN,
    )
