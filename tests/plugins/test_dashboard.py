"""The dashboard, read as documentation: an admin looks at the fleet in a browser or a script.

In-process (WebTest), inside each test's rolled-back transaction. The real browser (headless
Chromium: screenshots, keyboard, contrast) is in test_dashboard_browser.py.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import webtest
from sqlalchemy import update

from sensorhub.models import Sensor
from sensorhub.settings import SettingError, StartupError
from tests.conftest import doomed_environ
from tests.plugins.test_ingest_support import ADMIN, ADMIN_TOKEN, new_sensor, post_events

SECRET = "dashboard-session-secret-for-tests-0123456789"
SETTINGS = {
    "sensorhub.auth.admin_token": ADMIN_TOKEN,
    "sensorhub.ingest.group_commit": "false",  # requests write in the test's transaction
    "sensorhub.dashboard.session_secret": SECRET,
    # WebTest, like a browser, keeps a Secure cookie away from http://; the flag has its test.
    "sensorhub.dashboard.secure_cookie": "false",
    "sensorhub.dashboard.page_size": "10",
}


@pytest.fixture(scope="module")
def plugins():
    return ["auth", "ingest", "dashboard"]


@pytest.fixture(scope="module")
def app_settings():
    return SETTINGS


@pytest.fixture
def sensor(testapp):
    return new_sensor(testapp, "greenhouse")


def sign_in(testapp, token=ADMIN_TOKEN, next_page="/dashboard/", status=303):
    form = testapp.get("/dashboard/sign-in", params={"next": next_page}).forms[0]
    form["token"] = token
    return form.submit(status=status)


def now_ms(minus: timedelta = timedelta()) -> int:
    return int((datetime.now(UTC) - minus).timestamp() * 1000)


# --- who may look


def test_an_admin_script_sees_the_fleet_with_the_bearer_header(testapp, sensor):
    sensor_id, headers = sensor
    post_events(testapp, headers, [{"type": "temperature", "value": 21.5}] * 3)
    page = testapp.get("/dashboard/", headers=ADMIN)
    assert page.content_type == "text/html"
    row = page.html.find("tr", attrs={"data-sensor-id": sensor_id})
    assert "greenhouse" in row.th.text
    assert [cell.text for cell in row.find_all("td")][2:] == ["3", "3", "3", "0", "0"]
    assert page.html.find(id="total-events").text == "3"
    assert "Set-Cookie" not in page.headers  # a script gets no session it would never use


def test_a_sensor_token_gets_403(testapp, sensor):
    _, headers = sensor
    answer = testapp.get("/dashboard/", headers=headers, status=403)
    assert answer.content_type == "application/problem+json"


def test_a_refused_bearer_token_gets_401(testapp):
    headers = {"Authorization": "Bearer not-the-admin-token-at-all"}
    testapp.get("/dashboard/", headers=headers, status=401)


def test_an_anonymous_browser_is_sent_to_the_sign_in_page_and_back(testapp, sensor):
    sensor_id, _ = sensor
    path = f"/dashboard/sensors/{sensor_id}"
    answer = testapp.get(path, status=303)
    assert answer.location.endswith(f"/dashboard/sign-in?next=%2Fdashboard%2Fsensors%2F{sensor_id}")
    signed_in = sign_in(testapp, next_page=path)
    assert signed_in.location.endswith(path)
    assert testapp.get(path).html.h1.text.split() == ["greenhouse", "stale"]  # never seen


def test_the_sign_in_form_labels_its_field_and_carries_a_csrf_token(testapp):
    page = testapp.get("/dashboard/sign-in")
    field = page.html.find("input", id="token")
    assert field["type"] == "password"
    assert page.html.find("label", attrs={"for": "token"}).text == "Admin token"
    assert page.forms[0]["csrf_token"].value


def test_a_wrong_token_is_refused_and_never_echoed(testapp):
    answer = sign_in(testapp, token="wrong-token-0123456789abcdef", status=403)
    assert "That is not the admin token" in answer.text
    assert "wrong-token-0123456789abcdef" not in answer.text
    testapp.get("/dashboard/", status=303)  # still not signed in


def test_a_sensor_token_cannot_sign_in(testapp, sensor):
    _, headers = sensor
    token = headers["Authorization"].removeprefix("Bearer ")
    sign_in(testapp, token=token, status=403)


def test_a_form_without_its_csrf_token_is_refused(testapp):
    testapp.get("/dashboard/sign-in")
    answer = testapp.post("/dashboard/sign-in", {"token": ADMIN_TOKEN}, status=400)
    assert "Form expired" in answer.text
    testapp.get("/dashboard/", status=303)


def test_signing_out_ends_the_session(testapp):
    sign_in(testapp)
    page = testapp.get("/dashboard/")
    answer = page.forms[0].submit(status=303)  # the header's "Sign out" form
    assert answer.location.endswith("/dashboard/sign-in?signed_out=1")
    assert "You are signed out" in answer.follow().text
    testapp.get("/dashboard/", status=303)


def test_signing_out_needs_the_csrf_token_too(testapp):
    sign_in(testapp)
    testapp.post("/dashboard/sign-out", status=400)
    testapp.get("/dashboard/", status=200)


def test_the_session_cookie_is_secure_httponly_samesite_strict_and_scoped(
    app_factory, tm, dbsession
):
    settings = {**SETTINGS, "sensorhub.dashboard.secure_cookie": "true"}
    app = app_factory(["auth", "ingest", "dashboard"], settings)
    client = webtest.TestApp(app, extra_environ=doomed_environ(tm, dbsession))
    form_page = client.get("/dashboard/sign-in")
    cookie = form_page.headers["Set-Cookie"]
    for flag in ("Path=/dashboard/", "secure", "HttpOnly", "SameSite=Strict"):
        assert flag in cookie
    assert ADMIN_TOKEN not in cookie


def test_the_session_holds_no_token(testapp):
    signed_in = sign_in(testapp)
    assert ADMIN_TOKEN not in " ".join(signed_in.headers.getall("Set-Cookie"))


def test_after_signing_in_the_form_sends_you_on(testapp):
    sign_in(testapp)
    answer = testapp.get("/dashboard/sign-in", status=303)
    assert answer.location.endswith("/dashboard/")


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/", "/api/v1/", "/dashboard//evil.example"]
)
def test_sign_in_never_redirects_off_the_dashboard(testapp, target):
    assert sign_in(testapp, next_page=target).location.endswith("/dashboard/")


def test_rotating_the_admin_token_ends_old_sessions(app_factory, testapp, tm, dbsession):
    sign_in(testapp)
    rotated = app_factory(
        ["auth", "ingest", "dashboard"],
        {**SETTINGS, "sensorhub.auth.admin_token": "the-new-admin-token-0123456789"},
    )
    client = webtest.TestApp(rotated, extra_environ=doomed_environ(tm, dbsession))
    client.cookiejar = testapp.cookiejar  # the same browser, after the restart
    client.get("/dashboard/", status=303)


def test_a_sign_in_ends_after_the_session_lifetime(app_factory, tm, dbsession, monkeypatch):
    app = app_factory(
        ["auth", "ingest", "dashboard"],
        {**SETTINGS, "sensorhub.dashboard.session_lifetime": "1m"},
    )
    client = webtest.TestApp(app, extra_environ=doomed_environ(tm, dbsession))
    sign_in(client)
    client.get("/dashboard/", status=200)
    later = time.time() + 61  # within the idle timeout (30m): only the lifetime is over
    monkeypatch.setattr("plugins.dashboard.access.time.time", lambda: later)
    client.get("/dashboard/", status=303)


@pytest.mark.parametrize("token", ["", "token with spaces\x07", "tøken-0123456789abcdef"])
def test_a_token_no_policy_could_accept_is_refused_at_once(testapp, token):
    form = testapp.get("/dashboard/sign-in").forms[0]
    form["token"] = token
    assert "That is not the admin token" in form.submit(status=403).text


def test_pages_are_never_cached_nor_framed(testapp):
    headers = testapp.get("/dashboard/", headers=ADMIN).headers
    assert headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert "default-src 'none'" in headers["Content-Security-Policy"]


def test_the_stylesheet_is_served_from_the_app_itself(testapp):
    css = testapp.get("/dashboard/static/dashboard.css")
    assert css.content_type == "text/css"
    assert "http" not in css.text  # no external asset


def test_the_bare_path_leads_to_the_overview(testapp):
    assert testapp.get("/dashboard", status=303).location.endswith("/dashboard/")


def test_the_json_api_needs_no_csrf_token(testapp):
    created = testapp.post_json("/api/v1/sensors", {"name": "api"}, headers=ADMIN, status=201)
    assert "Set-Cookie" not in created.headers


# --- what the overview shows


def test_stale_sensors_are_highlighted(testapp, dbsession, sensor):
    fresh_id, headers = sensor
    post_events(testapp, headers, {"type": "temperature", "value": 1})  # seen now
    stale_id, _ = new_sensor(testapp, "cellar")  # never seen
    gone_id, _ = new_sensor(testapp, "attic")
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    dbsession.execute(update(Sensor).where(Sensor.id == gone_id).values(last_seen_at=long_ago))
    page = testapp.get("/dashboard/", headers=ADMIN).html
    classes = {
        sensor_id: page.find("tr", attrs={"data-sensor-id": sensor_id})["class"]
        for sensor_id in (fresh_id, stale_id, gone_id)
    }
    assert classes == {fresh_id: ["fresh"], stale_id: ["stale"], gone_id: ["stale"]}
    assert page.find(id="total-stale").text == "2"
    gone = page.find("tr", attrs={"data-sensor-id": gone_id})
    assert gone.find(class_="badge").text == "stale"
    assert gone.time.text == "2 h ago"


def test_the_last_hour_and_day_count_events_by_their_time(testapp, sensor):
    sensor_id, headers = sensor
    post_events(
        testapp,
        headers,
        [
            {"type": "t", "value": 1, "ts": now_ms(timedelta(minutes=5))},
            {"type": "t", "value": 2, "ts": now_ms(timedelta(hours=3))},
            {"type": "t", "value": 3, "ts": now_ms(timedelta(days=2))},
        ],
    )
    row = testapp.get("/dashboard/", headers=ADMIN).html.find(
        "tr", attrs={"data-sensor-id": sensor_id}
    )
    assert [cell.text for cell in row.find_all("td")][2:5] == ["1", "2", "3"]


def test_duplicates_and_rejections_come_from_the_counters(testapp, sensor):
    sensor_id, headers = sensor
    post_events(testapp, headers, {"type": "t", "value": 1, "eventId": "once"})
    post_events(testapp, headers, {"type": "t", "value": 1, "eventId": "once"})
    post_events(testapp, headers, [{"type": "t", "value": "x"}], status=422)
    row = testapp.get("/dashboard/", headers=ADMIN).html.find(
        "tr", attrs={"data-sensor-id": sensor_id}
    )
    assert [cell.text for cell in row.find_all("td")][4:] == ["1", "1", "1"]


def test_the_window_counts_stop_at_the_cap(app_factory, tm, dbsession):
    app = app_factory(
        ["auth", "ingest", "dashboard"], {**SETTINGS, "sensorhub.dashboard.count_cap": "100"}
    )
    client = webtest.TestApp(app, extra_environ=doomed_environ(tm, dbsession))
    sensor_id, headers = new_sensor(client)
    post_events(client, headers, [{"type": "t", "value": 1}] * 101)
    row = client.get("/dashboard/", headers=ADMIN).html.find(
        "tr", attrs={"data-sensor-id": sensor_id}
    )
    assert [cell.text for cell in row.find_all("td")][2:5] == ["100+", "100+", "101"]


def test_the_fleet_is_shown_a_page_at_a_time(testapp):
    ids = sorted(new_sensor(testapp, f"s{number}")[0] for number in range(12))
    first = testapp.get("/dashboard/", headers=ADMIN).html
    shown = [row["data-sensor-id"] for row in first.find_all("tr", attrs={"data-sensor-id": True})]
    assert shown == ids[:10]
    assert first.find("a", rel="next")["href"] == "/dashboard/?page=2"
    second = testapp.get("/dashboard/?page=2", headers=ADMIN).html
    assert len(second.find_all("tr", attrs={"data-sensor-id": True})) == 2
    assert second.caption.text == "Sensors, page 2 of 2"


@pytest.mark.parametrize(("number", "status"), [("0", 400), ("two", 400), ("99", 404)])
def test_a_page_number_out_of_range_says_so(testapp, number, status):
    answer = testapp.get("/dashboard/", params={"page": number}, headers=ADMIN, status=status)
    assert answer.html.find(class_="error").text


def test_an_empty_fleet_says_how_to_add_a_sensor(testapp):
    assert "sensorhub-admin sensor create" in testapp.get("/dashboard/", headers=ADMIN).text


# --- a sensor's page


def test_a_sensor_page_charts_each_type_and_lists_the_latest_events(testapp, sensor):
    sensor_id, headers = sensor
    events = [
        {"type": "temperature", "value": 20 + i, "unit": "Cel", "ts": now_ms(timedelta(minutes=i))}
        for i in range(5)
    ]
    events += [{"type": "humidity", "value": 40, "unit": "%RH"}, {"type": "door", "value": None}]
    post_events(testapp, headers, events)
    page = testapp.get(f"/dashboard/sensors/{sensor_id}", headers=ADMIN).html
    charts = {figure["data-type"]: figure for figure in page.find_all("figure")}
    assert sorted(charts) == ["humidity", "temperature"]  # "door" has no numeric value
    svg = charts["temperature"].svg
    assert svg["role"] == "img"
    assert svg.title.text == "temperature (Cel)"
    assert "5 values of temperature" in svg.desc.text
    assert "lowest 20 Cel, highest 24 Cel, latest 20 Cel" in svg.desc.text
    assert len(svg.polyline["points"].split()) == 5
    rows = page.find("table", class_="events").tbody.find_all("tr")
    assert len(rows) == 7
    assert page.find(id="event-count").text == "7"


def test_a_sensor_page_escapes_what_sensors_send(testapp, sensor):
    sensor_id, headers = sensor
    post_events(testapp, headers, {"type": "x", "value": 1, "unit": "<b>", "eventId": "<i>"})
    page = testapp.get(f"/dashboard/sensors/{sensor_id}", headers=ADMIN)
    assert "<b>" not in page.text and "&lt;b&gt;" in page.text


def test_an_unknown_sensor_is_a_404_page(testapp):
    answer = testapp.get("/dashboard/sensors/sen_nobody", headers=ADMIN, status=404)
    assert answer.content_type == "text/html"
    assert answer.html.h1.text == "No such sensor"
    assert "sen_nobody" in answer.html.find(class_="error").text


# --- start-up


def test_without_the_ingest_plugin_the_app_refuses_to_start(app_factory):
    with pytest.raises(StartupError, match="load the ingest plugin too") as error:
        app_factory(["auth", "dashboard"], SETTINGS)
    assert "\n" not in str(error.value)


def test_without_an_auth_plugin_the_app_refuses_to_start(app_factory):
    with pytest.raises(StartupError, match="auth plugin"):
        app_factory(["ingest", "dashboard"], SETTINGS)


def test_plugin_order_does_not_matter(app_factory):
    app_factory(["dashboard", "ingest", "auth"], SETTINGS)


def test_a_missing_session_secret_stops_start_up_saying_where_to_set_it(app_factory):
    settings = {**SETTINGS}
    del settings["sensorhub.dashboard.session_secret"]
    with pytest.raises(SettingError, match="SENSORHUB_DASHBOARD_SESSION_SECRET"):
        app_factory(["auth", "ingest", "dashboard"], settings)


def test_a_short_session_secret_is_refused_without_showing_it(app_factory):
    with pytest.raises(SettingError, match="at least 32 characters") as error:
        app_factory(
            ["auth", "ingest", "dashboard"],
            SETTINGS,
            environ={"SENSORHUB_DASHBOARD_SESSION_SECRET": "short-secret"},
        )
    assert "short-secret" not in str(error.value)


# --- the sign-in is the API's credential check


def test_failed_sign_ins_count_as_refused_credentials(app_factory, tm, dbsession):
    app = app_factory(["metrics", "auth", "ingest", "dashboard"], SETTINGS)
    client = webtest.TestApp(app, extra_environ=doomed_environ(tm, dbsession))
    sign_in(client, token="wrong-token-0123456789abcdef", status=403)
    exposition = client.get("/metrics").text
    assert 'sensorhub_auth_failures_total{reason="unknown"} 1.0' in exposition


def test_an_address_with_too_many_failed_sign_ins_is_told_to_wait(app_factory, tm, dbsession):
    settings = {**SETTINGS, "sensorhub.auth.failure_threshold": "2"}
    app = app_factory(["auth", "ingest", "dashboard"], settings)
    client = webtest.TestApp(app, extra_environ=doomed_environ(tm, dbsession))
    for _ in range(2):
        sign_in(client, token="wrong-token-0123456789abcdef", status=403)
    blocked = sign_in(client, token="wrong-token-0123456789abcdef", status=429)
    assert "Too many refused tokens" in blocked.text
    assert int(blocked.headers["Retry-After"]) > 0
