"""Every way a credential can be wrong: a 4xx that says why, never a 500, never a database
write, and never the raw token echoed back or logged. Then the brute-force guard."""

from datetime import UTC, datetime, timedelta

import pytest
import structlog
import webtest
from sqlalchemy import update

from plugins.auth import tokens
from plugins.auth.models import SensorToken
from sensorhub.events import AUTH_FAILURE_REASONS, AuthenticationFailed, RequestRateLimited
from sensorhub.models import Sensor
from tests.conftest import recording_statements
from tests.plugins.test_auth_support import (
    ADMIN,
    ADMIN_TOKEN,
    AUTH_SETTINGS,
    bearer,
    create_sensor,
    recording_events,
    recording_writes,
)


@pytest.fixture(scope="module")
def plugins():
    return ["auth"]


@pytest.fixture(scope="module")
def app_settings():
    return {**AUTH_SETTINGS, "sensorhub.auth.failure_threshold": "0"}  # guard tested below


@pytest.fixture
def sensor(testapp):
    return create_sensor(testapp)


def _expire(dbsession, sensor):
    dbsession.execute(
        update(SensorToken)
        .where(SensorToken.id == sensor["tokenId"])
        .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
    )


def _revoke(dbsession, sensor):
    dbsession.execute(
        update(SensorToken)
        .where(SensorToken.id == sensor["tokenId"])
        .values(revoked_at=datetime.now(UTC))
    )


def _disable(dbsession, sensor):
    dbsession.execute(update(Sensor).where(Sensor.id == sensor["sensorId"]).values(disabled=True))


def _typo(token):
    return token[:10] + ("B" if token[10] == "A" else "A") + token[11:]


# (case, Authorization value from the sensor's token, state change, reason, invalid_token?)
CASES = [
    ("missing header", None, None, "missing", False),
    ("wrong scheme", lambda t: f"Basic {t}", None, "wrong_scheme", False),
    ("empty bearer", lambda t: "Bearer ", None, "malformed", True),
    ("truncated token", lambda t: f"Bearer {t[:-3]}", None, "malformed", True),
    ("bad checksum", lambda t: f"Bearer {_typo(t)}", None, "bad_checksum", True),
    ("unknown token", lambda t: f"Bearer {tokens.new_token()}", None, "unknown", True),
    ("wrong admin token", lambda t: "Bearer " + ADMIN_TOKEN[::-1], None, "unknown", True),
    ("expired token", lambda t: f"Bearer {t}", _expire, "expired", True),
    ("revoked token", lambda t: f"Bearer {t}", _revoke, "revoked", True),
    ("disabled sensor", lambda t: f"Bearer {t}", _disable, "disabled", True),
    ("non-ASCII bytes", lambda t: f"Bearer {t[:-1]}\xe9", None, "malformed", True),
    ("control characters", lambda t: f"Bearer {t}\x00", None, "malformed", True),
    ("oversized header", lambda t: "Bearer " + t * 300, None, "malformed", True),
]


@pytest.mark.parametrize(
    ("authorization", "change", "reason", "invalid_token"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_a_refused_credential_is_a_401_that_says_why(
    testapp, app, dbsession, sensor, authorization, change, reason, invalid_token
):
    if change:
        change(dbsession, sensor)
        dbsession.flush()
    environ = {}
    if authorization is not None:
        # Through the WSGI environ, as a server hands it over (latin-1 text, any bytes).
        environ["HTTP_AUTHORIZATION"] = authorization(sensor["token"])

    with (
        recording_writes(app.registry["dbengine"]) as writes,
        recording_events(app.registry, AuthenticationFailed) as failures,
        structlog.testing.capture_logs() as logs,
    ):
        response = testapp.get("/api/v1/sensor", extra_environ=environ, status=401)

    assert response.content_type == "application/problem+json"
    assert writes == []
    assert [event.reason for event in failures] == [reason]
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="sensorhub"')
    assert ('error="invalid_token"' in challenge) is invalid_token
    assert sensor["token"] not in response.text + challenge
    assert sensor["token"] not in repr(logs)
    # The body says why as the header does: a reason code a client can act on.
    errors = response.json.get("errors") or []
    if invalid_token:
        assert [(e["path"], e["reason"]) for e in errors] == [("Authorization", reason)]
        assert errors[0]["message"] in challenge
    else:
        assert errors == [] and "send 'Authorization: Bearer" in response.json["detail"]


def test_every_refusal_reason_is_one_the_core_declares():
    """Metrics label by reason: the policy publishes the core's codes and no others."""
    published = {case[3] for case in CASES} | {"token_in_query"}
    assert published == set(AUTH_FAILURE_REASONS)


def test_a_token_in_the_query_string_is_refused_even_with_a_valid_header(testapp, app, sensor):
    with (
        recording_writes(app.registry["dbengine"]) as writes,
        recording_events(app.registry, AuthenticationFailed) as failures,
    ):
        for query in (
            {"access_token": sensor["token"]},
            {"sensorId": sensor["token"]},
            {"token": "anything"},
            sensor["token"],  # a bare key: ?shs_…
        ):
            response = testapp.get(
                "/api/v1/sensor", query, headers=bearer(sensor["token"]), status=400
            )
            assert "Authorization: Bearer" in response.json["detail"]
            assert sensor["token"] not in response.text
    assert writes == []
    assert {event.reason for event in failures} == {"token_in_query"}


def test_the_scheme_name_is_case_insensitive(testapp, sensor):
    testapp.get(
        "/api/v1/sensor", headers={"Authorization": f"bearer {sensor['token']}"}, status=200
    )


def test_an_undecodable_query_string_is_not_a_500(testapp, sensor):
    response = testapp.get(
        "/api/v1/sensor?sensorId=%ff%fe", headers=bearer(sensor["token"]), expect_errors=True
    )
    assert response.status_int < 500


def test_admin_endpoints_refuse_every_broken_credential_with_401(testapp, sensor):
    for authorization in (
        None,
        "Basic x",
        "Bearer ",
        f"Bearer {_typo(sensor['token'])}",
        f"Bearer {ADMIN_TOKEN}x",
    ):
        environ = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
        response = testapp.get("/api/v1/sensors", extra_environ=environ, status=401)
        assert ADMIN_TOKEN not in response.text


def test_the_admin_token_never_reaches_a_log_line(testapp):
    with structlog.testing.capture_logs() as logs:
        create_sensor(testapp)
        testapp.get(
            "/api/v1/sensors", headers={"Authorization": f"Bearer {ADMIN_TOKEN}x"}, status=401
        )
    assert ADMIN_TOKEN not in repr(logs)


# --- the brute-force guard


@pytest.fixture
def guarded(app_factory, testapp):
    """An app whose guard blocks an address after 3 refused credentials within 60 s, with a
    clock the test moves."""
    app = app_factory(
        ["auth"],
        {
            **AUTH_SETTINGS,
            "sensorhub.auth.failure_threshold": "3",
            "sensorhub.auth.failure_window": "60s",
        },
    )
    now = [1000.0]
    app.registry["sensorhub.auth.policy"].guard.clock = lambda: now[0]

    def client(address):
        return webtest.TestApp(app, extra_environ={**testapp.extra_environ, "REMOTE_ADDR": address})

    return app, client, now


def test_repeated_bad_tokens_from_one_address_get_429_with_retry_after(guarded):
    app, client, now = guarded
    attacker = client("203.0.113.9")
    for _ in range(3):
        attacker.get("/api/v1/sensor", headers=bearer(tokens.new_token()), status=401)
    now[0] += 15
    with recording_events(app.registry, RequestRateLimited) as limited:
        response = attacker.get("/api/v1/sensor", headers=bearer(tokens.new_token()), status=429)
    assert response.headers["Retry-After"] == "45"
    assert response.json["status"] == 429
    assert [event.scope for event in limited] == ["auth_failures"]

    now[0] += 46  # the oldest failure left the window
    attacker.get("/api/v1/sensor", headers=bearer(tokens.new_token()), status=401)


def test_a_blocked_address_costs_no_lookup_but_known_sensors_behind_it_keep_working(guarded):
    app, client, _ = guarded
    gateway = client("198.51.100.7")
    good = gateway.post_json("/api/v1/sensors", {"name": "good"}, headers=ADMIN).json
    new = gateway.post_json("/api/v1/sensors", {"name": "new"}, headers=ADMIN).json
    gateway.get("/api/v1/sensor", headers=bearer(good["token"]), status=200)  # looked up
    for _ in range(5):
        gateway.get("/api/v1/sensor", headers=bearer(tokens.new_token()), expect_errors=True)
    engine = app.registry["dbengine"]
    with recording_statements(engine) as statements, structlog.testing.capture_logs() as logs:
        gateway.get("/api/v1/sensor", headers=bearer(tokens.new_token()), status=429)
        gateway.get("/api/v1/sensor", headers=bearer(new["token"]), status=429)
    assert not [s for s in statements if "sensor_tokens" in s]
    assert not [line for line in logs if line["event"] == "authentication_failed"]
    gateway.get("/api/v1/sensor", headers=bearer(good["token"]), status=200)  # in memory
    gateway.get("/api/v1/sensors", headers=ADMIN, status=200)


def test_the_guard_counts_per_address_and_ignores_missing_credentials(guarded):
    _, client, _ = guarded
    for _ in range(5):
        client("192.0.2.1").get("/api/v1/sensor", status=401)  # no credential: not a guess
    for _ in range(3):
        client("192.0.2.2").get("/api/v1/sensor", headers=bearer("nope-nope"), status=401)
    client("192.0.2.2").get("/api/v1/sensor", status=429)
    client("192.0.2.1").get("/api/v1/sensor", headers=bearer("nope-nope"), status=401)


def test_forwarded_for_headers_do_not_let_a_client_escape_the_guard(guarded):
    _, client, _ = guarded
    attacker = client("203.0.113.50")
    for i in range(4):
        response = attacker.get(
            "/api/v1/sensor",
            headers={**bearer(tokens.new_token()), "X-Forwarded-For": f"10.0.0.{i}"},
            expect_errors=True,
        )
    assert response.status_int == 429


# --- the per-sensor rate limit


def test_a_sensor_beyond_its_rate_gets_429_with_retry_after_and_others_are_unaffected(
    app_factory, testapp
):
    app = app_factory(
        ["auth"],
        {**AUTH_SETTINGS, "sensorhub.auth.sensor_rate": "2", "sensorhub.auth.sensor_burst": "3"},
    )
    now = [50.0]
    app.registry["sensorhub.auth.policy"].sensor_limiter.clock = lambda: now[0]
    client = webtest.TestApp(app, extra_environ=testapp.extra_environ)
    noisy = client.post_json("/api/v1/sensors", {"name": "noisy"}, headers=ADMIN).json
    quiet = client.post_json("/api/v1/sensors", {"name": "quiet"}, headers=ADMIN).json
    for _ in range(3):  # the burst
        client.get("/api/v1/sensor", headers=bearer(noisy["token"]), status=200)
    with recording_events(app.registry, RequestRateLimited) as limited:
        refused = client.get("/api/v1/sensor", headers=bearer(noisy["token"]), status=429)
    assert refused.headers["Retry-After"] == "1"
    assert "faster than its limit (2/s)" in refused.json["detail"]
    assert [event.scope for event in limited] == ["sensor"]
    client.get("/api/v1/sensor", headers=bearer(quiet["token"]), status=200)
    now[0] += 0.5  # one request's worth refilled
    client.get("/api/v1/sensor", headers=bearer(noisy["token"]), status=200)
    client.get("/api/v1/sensor", headers=bearer(noisy["token"]), status=429)
