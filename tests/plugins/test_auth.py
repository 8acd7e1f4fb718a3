"""The auth plugin, read as API documentation: an operator enrols sensors and manages their
tokens; a sensor calls the API with ``Authorization: Bearer <token>``."""

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
import structlog
import webtest
from sqlalchemy import func, literal, select, update

from plugins.auth import security
from plugins.auth.models import CredentialGeneration, SensorToken
from sensorhub.events import AuthenticationFailed, SensorAuthenticated
from sensorhub.identity import SENSOR
from sensorhub.lifecycle import close_app
from sensorhub.models import Sensor
from sensorhub.sensor_info import SENSOR_ID
from sensorhub.settings import SettingError
from tests.conftest import empty_all_tables, recording_statements
from tests.plugins.test_auth_support import (
    ADMIN,
    AUTH_SETTINGS,
    bearer,
    create_sensor,
    plugin_module,
    recording_events,
    recording_writes,
)


@pytest.fixture(scope="module")
def plugins():
    return ["auth"]


@pytest.fixture(scope="module")
def app_settings():
    return AUTH_SETTINGS


@pytest.fixture(autouse=True)
def fresh_guard(app):
    app.registry["sensorhub.auth.policy"].guard.reset()


# --- the seed scenario


def test_admin_creates_a_sensor_which_then_reads_itself(testapp):
    created = create_sensor(testapp, metadata={"site": "north"})
    assert created["name"] == "greenhouse-1"
    assert created["token"].startswith("shs_")

    answer = testapp.get(
        "/api/v1/sensor",
        {"sensorId": created["sensorId"]},
        headers=bearer(created["token"]),
        status=200,
    ).json

    assert answer["sensorId"] == created["sensorId"]
    assert answer["name"] == "greenhouse-1"
    assert answer["metadata"] == {"site": "north"}
    assert answer["createdAt"] and answer["lastSeenAt"]


def test_creating_a_sensor_answers_201_with_location_and_no_store(testapp):
    response = testapp.post_json("/api/v1/sensors", {"name": "s"}, headers=ADMIN, status=201)
    assert (
        response.headers["Location"]
        == f"http://example.com/api/v1/sensors/{response.json['sensorId']}"
    )
    assert response.headers["Cache-Control"] == "no-store"  # the body holds a secret


def test_a_sensor_without_sensor_id_reads_itself(testapp):
    created = create_sensor(testapp)
    answer = testapp.get("/api/v1/sensor", headers=bearer(created["token"])).json
    assert answer["sensorId"] == created["sensorId"]
    assert answer["tokenId"] == created["tokenId"]


def test_sensor_info_contributed_by_other_plugins_is_merged(app_factory, testapp):
    def contributing_plugin(config):
        # Columns read by the sensor's id, and the fields made of their values.
        name_length = select(func.length(Sensor.name)).where(Sensor.id == SENSOR_ID)
        config.add_sensor_info(
            [name_length.scalar_subquery(), literal(7)],
            lambda length, seven: {"nameLength": length, "eventCount": seven, "sensorId": "x"},
        )

    with plugin_module("authtests.contributor", contributing_plugin) as name:
        app = app_factory(["auth", name], AUTH_SETTINGS)
    client = webtest.TestApp(app, extra_environ=testapp.extra_environ)
    created = create_sensor(client, "eleven char")
    for _ in range(2):  # looked up, then remembered: the same fields either way
        answer = client.get("/api/v1/sensor", headers=bearer(created["token"])).json
        assert (answer["nameLength"], answer["eventCount"]) == (11, 7)
        assert answer["sensorId"] == created["sensorId"]  # contributors cannot overwrite the core


def test_a_sensor_info_contribution_without_columns_is_refused(app_factory):
    def contributing_plugin(config):
        config.add_sensor_info([], lambda: {"eventCount": 7})

    with (
        plugin_module("authtests.columnless", contributing_plugin) as name,
        pytest.raises(ValueError, match="give at least one column"),
    ):
        app_factory(["auth", name], AUTH_SETTINGS)


# --- isolation


def test_sensor_cannot_read_another_sensor(testapp):
    mine, theirs = create_sensor(testapp, "mine"), create_sensor(testapp, "theirs")
    response = testapp.get(
        "/api/v1/sensor",
        {"sensorId": theirs["sensorId"]},
        headers=bearer(mine["token"]),
        status=403,
    )
    assert response.content_type == "application/problem+json"
    assert "theirs" not in response.text  # nothing about the other sensor leaks


def test_sensor_cannot_use_the_admin_api(testapp):
    mine, theirs = create_sensor(testapp, "mine"), create_sensor(testapp, "theirs")
    as_sensor = bearer(mine["token"])
    testapp.get("/api/v1/sensors", headers=as_sensor, status=403)
    testapp.get(f"/api/v1/sensors/{theirs['sensorId']}", headers=as_sensor, status=403)
    testapp.patch_json(
        f"/api/v1/sensors/{theirs['sensorId']}", {"disabled": True}, headers=as_sensor, status=403
    )
    testapp.post_json(
        f"/api/v1/sensors/{theirs['sensorId']}/tokens", {}, headers=as_sensor, status=403
    )
    testapp.delete(
        f"/api/v1/sensors/{theirs['sensorId']}/tokens/{theirs['tokenId']}",
        headers=as_sensor,
        status=403,
    )
    testapp.post_json("/api/v1/sensors", {"name": "x"}, headers=as_sensor, status=403)
    testapp.get("/api/v1/sensor", headers=bearer(theirs["token"]), status=200)


def test_admin_is_not_a_sensor(testapp):
    testapp.get("/api/v1/sensor", headers=ADMIN, status=403)


# --- the admin API


def test_admin_lists_sensors_page_by_page(testapp):
    ids = {create_sensor(testapp, f"s{i}")["sensorId"] for i in range(5)}
    seen, query = [], {"limit": 2}
    while query:
        page = testapp.get("/api/v1/sensors", query, headers=ADMIN).json
        assert len(page["sensors"]) <= 2
        seen += [s["sensorId"] for s in page["sensors"]]
        query = {"limit": 2, "cursor": page["nextCursor"]} if page["nextCursor"] else None
    assert ids <= set(seen)
    assert len(seen) == len(set(seen))


def test_listing_reports_active_tokens_per_sensor(testapp):
    created = create_sensor(testapp)
    testapp.post_json(f"/api/v1/sensors/{created['sensorId']}/tokens", {}, headers=ADMIN)
    page = testapp.get("/api/v1/sensors", {"limit": 500}, headers=ADMIN).json
    row = next(s for s in page["sensors"] if s["sensorId"] == created["sensorId"])
    assert row["activeTokens"] == 2


def test_listing_refuses_a_bad_limit(testapp):
    body = testapp.get("/api/v1/sensors", {"limit": 0}, headers=ADMIN, status=400).json
    assert body["errors"][0]["path"] == "limit"


def test_admin_reads_a_sensor_with_its_tokens_but_never_their_secrets(testapp):
    created = create_sensor(testapp, metadata={"floor": 2})
    answer = testapp.get(f"/api/v1/sensors/{created['sensorId']}", headers=ADMIN).json
    assert answer["metadata"] == {"floor": 2}
    [token] = answer["tokens"]
    assert token["tokenId"] == created["tokenId"]
    assert token["state"] == "active"
    assert token["hint"] == created["token"][:8] + "…"
    assert (
        created["token"]
        not in testapp.get(f"/api/v1/sensors/{created['sensorId']}", headers=ADMIN).text
    )


def test_unknown_sensor_is_404_for_the_admin(testapp):
    testapp.get("/api/v1/sensors/sen_nope", headers=ADMIN, status=404)
    testapp.post_json("/api/v1/sensors/sen_nope/tokens", {}, headers=ADMIN, status=404)


def test_admin_renames_and_disables_a_sensor(testapp):
    created = create_sensor(testapp)
    url = f"/api/v1/sensors/{created['sensorId']}"
    answer = testapp.patch_json(url, {"name": "renamed", "disabled": True}, headers=ADMIN).json
    assert (answer["name"], answer["disabled"]) == ("renamed", True)

    refused = testapp.get("/api/v1/sensor", headers=bearer(created["token"]), status=401)
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    assert "disabled" in refused.headers["WWW-Authenticate"]

    testapp.patch_json(url, {"disabled": False}, headers=ADMIN)
    assert testapp.get("/api/v1/sensor", headers=bearer(created["token"])).json["name"] == "renamed"


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"metadata": [1, 2]}, "metadata"),
        ({"disabled": "yes"}, "disabled"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_patch_explains_what_is_wrong(testapp, body, path):
    created = create_sensor(testapp)
    problem = testapp.patch_json(
        f"/api/v1/sensors/{created['sensorId']}", body, headers=ADMIN, status=422
    ).json
    assert problem["errors"][0]["path"] == path


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({}, "name"),
        ({"name": "  "}, "name"),
        ({"name": 3}, "name"),
        ({"name": "x", "metadata": "north"}, "metadata"),
        ({"name": "x", "metadata": {"blob": "x" * 9000}}, "metadata"),
        ({"name": "x", "expiresAt": "tomorrow"}, "expiresAt"),
        ({"name": "x", "expiresAt": "2001-01-01T00:00:00Z"}, "expiresAt"),
        ({"name": "x", "expiresAt": "2030-01-01T00:00:00"}, "expiresAt"),  # no offset
        ({"name": "x", "expiresAt": "20300101T000000Z"}, "expiresAt"),  # not RFC 3339
        ({"name": "x", "expiresAt": True}, "expiresAt"),
        ({"name": "x", "expiresAt": 1.9e12}, "expiresAt"),
        ({"name": "x", "expiresAt": 2**53}, "expiresAt"),  # beyond the year 9999
    ],
)
def test_creating_a_sensor_explains_what_is_wrong(testapp, body, path):
    problem = testapp.post_json("/api/v1/sensors", body, headers=ADMIN, status=422).json
    assert problem["errors"][0]["path"] == path


@pytest.mark.parametrize("expires_at", ["2030-01-01T02:00:00+02:00", 1893456000000])
def test_a_token_expiry_is_a_timestamp_as_events_take_it(testapp, expires_at):
    created = testapp.post_json(
        "/api/v1/sensors", {"name": "x", "expiresAt": expires_at}, headers=ADMIN, status=201
    ).json
    assert created["expiresAt"] == "2030-01-01T00:00:00+00:00"


def test_creating_a_sensor_needs_a_json_object(testapp):
    testapp.post("/api/v1/sensors", "not json", headers=ADMIN, status=400)
    testapp.post_json("/api/v1/sensors", ["a"], headers=ADMIN, status=400)


# --- rotation and revocation


def test_rotation_old_and_new_tokens_both_work_until_the_old_is_revoked(testapp):
    created = create_sensor(testapp)
    sensor_url = f"/api/v1/sensors/{created['sensorId']}"
    new = testapp.post_json(f"{sensor_url}/tokens", {}, headers=ADMIN, status=201).json
    assert new["token"] != created["token"] and new["sensorId"] == created["sensorId"]

    for token in (created["token"], new["token"]):
        testapp.get("/api/v1/sensor", headers=bearer(token), status=200)

    revoked = testapp.delete(f"{sensor_url}/tokens/{created['tokenId']}", headers=ADMIN).json
    assert revoked["state"] == "revoked" and revoked["revokedAt"]

    refused = testapp.get("/api/v1/sensor", headers=bearer(created["token"]), status=401)
    assert "revoked" in refused.headers["WWW-Authenticate"]
    testapp.get("/api/v1/sensor", headers=bearer(new["token"]), status=200)


def test_revoking_twice_is_harmless_and_unknown_tokens_are_404(testapp):
    created = create_sensor(testapp)
    url = f"/api/v1/sensors/{created['sensorId']}/tokens"
    first = testapp.delete(f"{url}/{created['tokenId']}", headers=ADMIN).json
    again = testapp.delete(f"{url}/{created['tokenId']}", headers=ADMIN).json
    assert first["revokedAt"] == again["revokedAt"]
    testapp.delete(f"{url}/tok_nope", headers=ADMIN, status=404)


def test_a_sensor_cannot_revoke_another_sensors_token_through_its_own_id(testapp):
    mine, theirs = create_sensor(testapp, "mine"), create_sensor(testapp, "theirs")
    testapp.delete(
        f"/api/v1/sensors/{mine['sensorId']}/tokens/{theirs['tokenId']}", headers=ADMIN, status=404
    )
    testapp.get("/api/v1/sensor", headers=bearer(theirs["token"]), status=200)


def test_an_expiring_token_works_until_it_expires(testapp, dbsession):
    created = create_sensor(testapp)
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    issued = testapp.post_json(
        f"/api/v1/sensors/{created['sensorId']}/tokens", {"expiresAt": soon}, headers=ADMIN
    ).json
    testapp.get("/api/v1/sensor", headers=bearer(issued["token"]), status=200)

    dbsession.get(SensorToken, issued["tokenId"]).expires_at = datetime.now(UTC) - timedelta(
        seconds=1
    )
    dbsession.flush()

    refused = testapp.get("/api/v1/sensor", headers=bearer(issued["token"]), status=401)
    assert "expired" in refused.headers["WWW-Authenticate"]


def test_admin_lists_a_sensors_tokens(testapp):
    created = create_sensor(testapp)
    answer = testapp.get(f"/api/v1/sensors/{created['sensorId']}/tokens", headers=ADMIN).json
    assert [t["tokenId"] for t in answer["tokens"]] == [created["tokenId"]]


# --- what is stored


def test_only_the_tokens_hash_is_stored(testapp, dbsession):
    created = create_sensor(testapp)
    row = dbsession.scalars(
        select(SensorToken).where(SensorToken.sensor_id == created["sensorId"])
    ).one()
    stored = [str(getattr(row, column.key)) for column in SensorToken.__table__.columns]
    stored += [repr(row.token_hash)]
    assert not any(created["token"] in value or created["token"][4:] in value for value in stored)
    assert row.token_hash == hashlib.sha256(created["token"].encode()).digest()


def test_last_used_is_written_at_most_once_per_interval(testapp, app, dbsession):
    created = create_sensor(testapp)
    engine = app.registry["dbengine"]
    with recording_writes(engine) as first:
        testapp.get("/api/v1/sensor", headers=bearer(created["token"]))
    with recording_writes(engine) as second:
        for _ in range(3):
            testapp.get("/api/v1/sensor", headers=bearer(created["token"]))
    assert len(first) == 2  # the token's last_used_at and the sensor's last_seen_at
    assert second == []
    token = dbsession.get(SensorToken, created["tokenId"])
    dbsession.refresh(token)
    assert token.last_used_at is not None
    assert dbsession.get(Sensor, created["sensorId"]).last_seen_at is not None


# --- remembered lookups (sensorhub.auth.token_cache_ttl)


class FakeClock:
    def __init__(self, policy):
        self.now = 1000.0
        policy.clock = lambda: self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(app):
    policy = app.registry["sensorhub.auth.policy"]
    yield FakeClock(policy)
    policy.clock = security.time.monotonic


def token_lookups(statements: list[str]) -> list[str]:
    return [s for s in statements if "WHERE sensor_tokens.token_hash" in s]


def generation_reads(statements: list[str]) -> list[str]:
    return [s for s in statements if s.startswith("SELECT credential_generation.generation")]


def test_a_busy_sensor_is_looked_up_once_per_ttl_and_checked_on_every_request(testapp, app, clock):
    created = create_sensor(testapp)
    with recording_statements(app.registry["dbengine"]) as statements:
        for _ in range(3):
            testapp.get("/api/v1/sensor", headers=bearer(created["token"]))
        clock.advance(app.registry.settings["sensorhub.auth.token_cache_ttl"] + 0.001)
        testapp.get("/api/v1/sensor", headers=bearer(created["token"]))
    assert len(token_lookups(statements)) == 2  # the first request and the one after the TTL
    assert len(generation_reads(statements)) == 2  # the two requests that reused the lookup


def profile_reads(statements: list[str]) -> list[str]:
    return [s for s in statements if s.startswith("SELECT sensors.id, sensors.name")]


def test_a_remembered_sensor_reads_itself_with_the_generation_check_alone(testapp, app):
    created = create_sensor(testapp)
    read = testapp.get("/api/v1/sensor", headers=bearer(created["token"])).json  # looked up
    with recording_statements(app.registry["dbengine"]) as statements:
        remembered = testapp.get("/api/v1/sensor", headers=bearer(created["token"])).json
    assert remembered == read
    assert len(generation_reads(statements)) == 1 and not token_lookups(statements)
    assert profile_reads(statements) == []  # the check brought the last-seen time


def test_a_remembered_profile_shows_every_change_at_the_next_request(testapp, dbsession):
    created = create_sensor(testapp)
    url, token = f"/api/v1/sensors/{created['sensorId']}", bearer(created["token"])
    testapp.get("/api/v1/sensor", headers=token)
    testapp.patch_json(url, {"name": "renamed", "metadata": {"room": "attic"}}, headers=ADMIN)
    answer = testapp.get("/api/v1/sensor", headers=token).json
    assert (answer["name"], answer["metadata"]) == ("renamed", {"room": "attic"})

    # A touch by another process or node: no generation bump, yet read with the check.
    seen = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    dbsession.execute(
        update(Sensor).where(Sensor.id == created["sensorId"]).values(last_seen_at=seen)
    )
    answer = testapp.get("/api/v1/sensor", headers=token).json
    assert answer["lastSeenAt"] == "2030-01-02T03:04:05+00:00"


def test_a_revocation_committed_by_another_app_is_refused_by_the_next_request(
    app_factory, dbengine
):
    # Two apps on one database, as two server processes or nodes: the second revokes a token
    # the first has just looked up and remembered.
    first, second = app_factory(["auth"], AUTH_SETTINGS), app_factory(["auth"], AUTH_SETTINGS)
    environ = {"HTTP_HOST": "example.com"}
    sensor_side, admin_side = webtest.TestApp(first, environ), webtest.TestApp(second, environ)
    try:
        created = create_sensor(admin_side)
        for _ in range(2):
            sensor_side.get("/api/v1/sensor", headers=bearer(created["token"]), status=200)

        admin_side.delete(
            f"/api/v1/sensors/{created['sensorId']}/tokens/{created['tokenId']}",
            headers=ADMIN,
            status=200,
        )
        refused = sensor_side.get("/api/v1/sensor", headers=bearer(created["token"]), status=401)
        assert "revoked" in refused.headers["WWW-Authenticate"]
    finally:
        empty_all_tables(dbengine)


def test_a_sensor_disabled_by_another_app_is_refused_by_the_next_request(app_factory, dbengine):
    first, second = app_factory(["auth"], AUTH_SETTINGS), app_factory(["auth"], AUTH_SETTINGS)
    environ = {"HTTP_HOST": "example.com"}
    sensor_side, admin_side = webtest.TestApp(first, environ), webtest.TestApp(second, environ)
    try:
        created = create_sensor(admin_side)
        sensor_side.get("/api/v1/sensor", headers=bearer(created["token"]), status=200)
        admin_side.patch_json(
            f"/api/v1/sensors/{created['sensorId']}", {"disabled": True}, headers=ADMIN
        )
        refused = sensor_side.get("/api/v1/sensor", headers=bearer(created["token"]), status=401)
        assert "disabled" in refused.headers["WWW-Authenticate"]
    finally:
        empty_all_tables(dbengine)


def test_a_change_made_behind_sensorhubs_back_applies_within_the_ttl(
    testapp, app, dbsession, clock
):
    created = create_sensor(testapp)
    testapp.get("/api/v1/sensor", headers=bearer(created["token"]), status=200)
    # A plain UPDATE in SQL, not through SensorHub's code: the generation does not move, so
    # only the TTL ends the remembered lookup.
    dbsession.execute(
        update(SensorToken)
        .where(SensorToken.id == created["tokenId"])
        .values(revoked_at=datetime.now(UTC))
    )

    testapp.get("/api/v1/sensor", headers=bearer(created["token"]), status=200)
    clock.advance(app.registry.settings["sensorhub.auth.token_cache_ttl"])
    refused = testapp.get("/api/v1/sensor", headers=bearer(created["token"]), status=401)
    assert "revoked" in refused.headers["WWW-Authenticate"]


def test_with_a_zero_ttl_every_request_is_looked_up(app_factory, testapp, dbsession):
    app = app_factory(["auth"], {**AUTH_SETTINGS, "sensorhub.auth.token_cache_ttl": "0"})
    client = webtest.TestApp(app, extra_environ=testapp.extra_environ)
    created = create_sensor(client)
    client.get("/api/v1/sensor", headers=bearer(created["token"]), status=200)
    dbsession.execute(
        update(SensorToken)
        .where(SensorToken.id == created["tokenId"])
        .values(revoked_at=datetime.now(UTC))
    )
    client.get("/api/v1/sensor", headers=bearer(created["token"]), status=401)


def test_a_lookup_is_not_remembered_past_the_tokens_expiry(testapp, app, clock):
    created = create_sensor(testapp)
    soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    issued = testapp.post_json(
        f"/api/v1/sensors/{created['sensorId']}/tokens", {"expiresAt": soon}, headers=ADMIN
    ).json
    with recording_statements(app.registry["dbengine"]) as statements:
        testapp.get("/api/v1/sensor", headers=bearer(issued["token"]))
        clock.advance(2.0)  # still within the TTL, but past the expiry
        testapp.get("/api/v1/sensor", headers=bearer(issued["token"]), status=(200, 401))
    assert len(token_lookups(statements)) == 2


def generation(session) -> int:
    return session.scalar(select(CredentialGeneration.generation))


def test_a_credential_change_bumps_the_generation_in_its_own_transaction(app, dbengine):
    factory = app.registry["dbsession_factory"]
    with factory() as session:
        before = generation(session)
        sensor = Sensor(name="s", meta={}, disabled=False)
        session.add(sensor)
        session.flush()
        assert generation(session) == before  # a new sensor: nothing remembered is about it

        sensor.disabled = True
        session.flush()
        assert generation(session) == before + 1
        with app.registry["dbsession_factory.reader"]() as other:
            assert generation(other) == before  # not before it commits...
        session.rollback()
        assert generation(session) == before  # ...and never if it does not


def test_a_closed_app_no_longer_bumps_the_generation(app_factory):
    first = app_factory(["auth"], AUTH_SETTINGS)
    session = first.registry["dbsession_factory"]()
    try:
        sensor = Sensor(name="s", meta={}, disabled=False)
        session.add(sensor)
        session.flush()
        close_app(first.registry)
        before = generation(session)
        sensor.disabled = True
        session.flush()
        assert generation(session) == before  # a closed app's listeners are gone
    finally:
        session.rollback()
        session.close()


# --- identity for the rest of the app


def test_authentication_publishes_events(testapp, app):
    created = create_sensor(testapp)
    with recording_events(app.registry, SensorAuthenticated, AuthenticationFailed) as seen:
        testapp.get("/api/v1/sensor", headers=bearer(created["token"]))
        testapp.get("/api/v1/sensor", headers=bearer("shs_" + "a" * 38), status=401)
        testapp.get("/api/v1/sensor", status=401)
    assert [
        (type(e).__name__, getattr(e, "sensor_id", None) or getattr(e, "reason", None))
        for e in seen
    ] == [
        ("SensorAuthenticated", created["sensorId"]),
        ("AuthenticationFailed", "bad_checksum"),
        ("AuthenticationFailed", "missing"),
    ]


def test_log_lines_of_an_authenticated_request_carry_the_sensor_id(app_factory, testapp):
    created = create_sensor(testapp)
    seen = {}

    def view(request):
        seen.update(structlog.contextvars.get_contextvars())
        return {}

    def plugin(config):
        config.add_route("probe", "/probe")
        config.add_view(view, route_name="probe", permission=SENSOR, renderer="json")

    with plugin_module("authtests.probe", plugin) as name:
        app = app_factory(["auth", name], AUTH_SETTINGS)
    client = webtest.TestApp(app, extra_environ=testapp.extra_environ)
    client.get("/probe", headers=bearer(created["token"]))
    assert seen["sensor_id"] == created["sensorId"]
    assert "sensor_id" not in structlog.contextvars.get_contextvars()


# --- self-enrolment and admin configuration


def test_devices_enrol_themselves_with_the_provisioning_key(app_factory, testapp):
    key = "fleet-provisioning-key-0123456789"
    app = app_factory(["auth"], {**AUTH_SETTINGS, "sensorhub.auth.provisioning_key": key})
    client = webtest.TestApp(app, extra_environ=testapp.extra_environ)

    enrolled = client.post_json(
        "/api/v1/sensors", {"name": "dev-42"}, headers=bearer(key), status=201
    ).json
    client.get("/api/v1/sensor", headers=bearer(enrolled["token"]), status=200)
    # the key enrols, nothing more
    client.get("/api/v1/sensors", headers=bearer(key), status=403)
    client.get("/api/v1/sensor", headers=bearer(key), status=403)
    assert client.get("/api/v1/").json["capabilities"]["auth"]["selfEnrolment"] is True


def test_self_enrolment_is_off_without_a_provisioning_key(testapp):
    testapp.post_json(
        "/api/v1/sensors",
        {"name": "x"},
        headers=bearer("fleet-provisioning-key-0123456789"),
        status=401,
    )
    assert testapp.get("/api/v1/").json["capabilities"]["auth"]["selfEnrolment"] is False


def test_without_an_admin_token_the_admin_api_is_refused(app_factory, testapp):
    app = app_factory(["auth"], {})
    client = webtest.TestApp(app, extra_environ=testapp.extra_environ)
    client.post_json("/api/v1/sensors", {"name": "x"}, headers=ADMIN, status=401)
    client.post_json("/api/v1/sensors", {"name": "x"}, headers=bearer(""), status=401)
    assert client.get("/api/v1/").json["capabilities"]["auth"]["adminApi"] == "disabled"


def test_the_admin_token_comes_from_the_environment(app_factory, testapp):
    app = app_factory(["auth"], {}, environ={"SENSORHUB_ADMIN_TOKEN": "from-the-env-0123456789"})
    client = webtest.TestApp(app, extra_environ=testapp.extra_environ)
    client.post_json(
        "/api/v1/sensors", {"name": "x"}, headers=bearer("from-the-env-0123456789"), status=201
    )


def test_a_short_admin_token_is_a_startup_error(app_factory):
    with pytest.raises(SettingError, match="SENSORHUB_ADMIN_TOKEN.*at least 16") as error:
        app_factory(["auth"], {"sensorhub.auth.admin_token": "short-secret"})
    assert "short-secret" not in str(error.value)


def _identity_peeking_tween(handler, registry):
    def tween(request):
        before = request.identity  # outside pyramid_tm's transaction: cannot be looked up
        response = handler(request)
        response.headers["X-Identity-Before"] = type(before).__name__
        response.headers["X-Identity-After"] = type(request.identity).__name__
        return response

    return tween


def test_a_tween_above_the_transaction_may_ask_for_the_identity(app_factory, dbengine):
    """A tween over pyramid_tm (say, a log line per request) asks before any lookup is
    possible: it sees nobody yet, which is neither cached nor counted as a failure, and the
    view still authenticates the sensor."""

    def plugin(config):
        config.add_tween(f"{__name__}._identity_peeking_tween", over="pyramid_tm.tm_tween_factory")

    with plugin_module("authtests.peek", plugin) as name:
        app = app_factory(
            ["auth", name], {**AUTH_SETTINGS, "sensorhub.auth.failure_threshold": "1"}
        )
    client = webtest.TestApp(app)  # real pyramid_tm transactions
    try:
        created = client.post_json("/api/v1/sensors", {"name": "peeked"}, headers=ADMIN).json
        with recording_events(app.registry, AuthenticationFailed) as failures:
            for path in ("/healthz", "/api/v1/sensor", "/api/v1/sensor"):
                response = client.get(path, headers=bearer(created["token"]), status=200)
        assert response.headers["X-Identity-Before"] == "NoneType"
        assert response.headers["X-Identity-After"] == "SensorIdentity"
        assert failures == []
    finally:
        empty_all_tables(dbengine)


# --- bodies the registry refuses, each with a 4xx that names what is wrong (never a 500)


@pytest.mark.parametrize(
    "body, content_type, status",
    [
        (b"[" * 5000 + b"]" * 5000, "application/json", 400),  # nesting deeper than decoding
        (b'{"name": "a\\ud800b"}', "application/json", 400),  # a lone surrogate
        (b'{"name": "x"}', "application/json; charset=klingon", 415),
        (b'{"name": "x"}', "application/json; charset=latin-1", 415),
        (b'{"name": "x", "metadata": {"n": 123456789012345678901234567890}}', None, 422),
        (b'{"name": "x", "expiresAt": 253402300800000}', None, 422),  # the year 10000
        (b'{"name": "x", "expiresAt": -62135596800001}', None, 422),  # before the year 1
        (b'{"name": "x", "expiresAt": "9999-12-31T23:59:60Z"}', None, 422),
    ],
)
def test_a_body_the_registry_cannot_take_is_a_4xx_problem(testapp, body, content_type, status):
    answer = testapp.post(
        "/api/v1/sensors",
        body,
        headers={**ADMIN, "Content-Type": content_type or "application/json"},
        status=status,
    )
    assert answer.content_type == "application/problem+json"
    assert answer.json["request_id"]


@pytest.mark.parametrize("name", ["red\x1b[31malert", "rtl\u202eevil", "line\u2028break", "\x00"])
def test_a_sensor_name_with_control_characters_is_refused(testapp, name):
    problem = testapp.post_json("/api/v1/sensors", {"name": name}, headers=ADMIN, status=422).json
    [error] = problem["errors"]
    assert error["path"] == "name" and "printable" in error["message"]


def test_every_bad_field_of_a_body_is_reported_at_once(testapp):
    problem = testapp.post_json(
        "/api/v1/sensors",
        {"name": 7, "metadata": "not an object", "expiresAt": True, "colour": "red"},
        headers=ADMIN,
        status=422,
    ).json
    assert sorted(e["path"] for e in problem["errors"]) == [
        "colour",
        "expiresAt",
        "metadata",
        "name",
    ]
    assert {e["reason"] for e in problem["errors"]} == {"unknown_field", "invalid_field"}
