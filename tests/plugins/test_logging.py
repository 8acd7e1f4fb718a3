"""The logging plugin, read from the real output of the configured pipeline.

Every line an operator sees is one JSON object with ``timestamp``, ``level``, ``event`` and, during
a request, ``request_id``; a request ends with exactly one ``request_finished`` line; secrets never
reach the output. The views below (this module is also the test app's plugin) log the way real
code does: structlog, stdlib ``logging`` and SQLAlchemy.
"""

from __future__ import annotations

import io
import json
import logging
import sys
import threading

import pytest
import structlog
import webtest
from pyramid_retry import mark_error_retryable
from sqlalchemy import insert, text

from plugins.logging import pipeline
from sensorhub import make_app
from sensorhub.events import EventsIngested, publish
from sensorhub.models import Sensor
from sensorhub.settings import SettingError

ADMIN_TOKEN = "admin-token-for-tests-0123456789"
SENSOR_TOKEN_LIKE = "shs_" + "Q7x" * 12 + "Zz"  # the token format, known to no database
PASSWORD = "correct-horse-battery-staple"
ESSENTIALS = {"timestamp", "level", "logger", "event", "request_id"}

log = structlog.get_logger(__name__)


# --- the test app's own plugin: views that log like application code does


def includeme(config) -> None:
    for name, view in [
        ("log", log_everything),
        ("boom", fail_with_token_in_a_local),
        ("conflict", insert_a_duplicate),
        ("bind", bind_a_sensor),
        ("ingested", publish_from_another_thread),
        ("flaky", fail_first_attempt),
    ]:
        config.add_route(f"test.{name}", f"/test/{name}")
        config.add_view(view, route_name=f"test.{name}", renderer="json")
    # Another plugin's tween where the metrics plugin puts its own: the summary must stay above
    # pyramid_tm and the exception view whatever else is placed around it.
    config.add_tween(
        f"{__name__}.passthrough_tween_factory",
        under="sensorhub.request_id.request_id_tween_factory",
        over="pyramid_tm.tm_tween_factory",
    )


def passthrough_tween_factory(handler, registry):
    return handler


def log_everything(request):
    log.info(
        "view_ran",
        agent=request.user_agent,
        password=PASSWORD,
        headers=dict(request.headers),
        nested={"items": [{"api_key": "key-in-a-list"}], "note": f"Bearer {ADMIN_TOKEN}"},
    )
    logging.getLogger("pyramid.testview").warning(
        "stdlib line, header Authorization: %s", request.headers.get("Authorization")
    )
    request.dbsession.execute(text("SELECT 1"))
    return {"ok": True}


def fail_with_token_in_a_local(request):
    token = SENSOR_TOKEN_LIKE  # noqa: F841 (the local a "show locals" traceback would print)
    raise RuntimeError(f"could not use {SENSOR_TOKEN_LIKE}")


def insert_a_duplicate(request):
    row = {"id": "sen_duplicate", "name": "distinctive-parameter-4242"}
    request.dbsession.execute(insert(Sensor), [row])
    request.dbsession.execute(insert(Sensor), [row])
    return {}


def bind_a_sensor(request):
    structlog.contextvars.bind_contextvars(sensor_id="sen_bound_by_the_view")
    log.info("bound")
    return {}


def publish_from_another_thread(request):
    """Like a group commit: the event is published after the commit, by another thread."""
    event = EventsIngested(
        request,
        "sen_batch",
        batch_size=5,
        accepted=3,
        duplicates=1,
        rejected=1,
        rejected_by_reason={"bad_value": 1},
    )
    publisher = threading.Thread(target=publish, args=(request.registry, event))
    publisher.start()
    publisher.join()
    return {}


class Conflict(Exception):
    pass


mark_error_retryable(Conflict)


def fail_first_attempt(request):
    if request.environ["retry.attempt"] == 0:
        raise Conflict("serialization failure, try again")
    return {"attempt": request.environ["retry.attempt"]}


# --- fixtures


@pytest.fixture(scope="module", autouse=True)
def restore_logging():
    """Leave the process's logging as this module found it (other modules expect defaults)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            for name in getattr(handler, "levelled", ()):
                logging.getLogger(name).setLevel(logging.NOTSET)
    root.setLevel(level)
    logging.captureWarnings(False)
    structlog.reset_defaults()


@pytest.fixture(scope="module")
def plugins():
    return ["logging", "auth", __name__]


@pytest.fixture(scope="module")
def app_settings():
    return {"sensorhub.auth.admin_token": ADMIN_TOKEN, "sensorhub.logging.format": "json"}


@pytest.fixture
def build(app_factory):
    """Another app with this module's plugins and extra settings; returns a WebTest app."""

    def factory(**settings):
        app = app_factory(
            ["logging", "auth", __name__], {"sensorhub.auth.admin_token": ADMIN_TOKEN, **settings}
        )
        return webtest.TestApp(app, extra_environ={"HTTP_HOST": "example.com"})

    return factory


@pytest.fixture(autouse=True)
def module_pipeline(app):
    """Tests that build another app reconfigure the process; put this module's app back."""
    pipeline.configure("json", logging.INFO, {})


def records(capsys) -> list[dict]:
    """Every line written to stdout since the last call, each parsed as one JSON object."""
    out = capsys.readouterr().out
    assert out.endswith("\n") or out == ""
    lines = out.splitlines()  # splits at U+2028 and friends too: stricter than "\n"
    parsed = [json.loads(line) for line in lines]
    assert all(isinstance(record, dict) for record in parsed)
    return parsed


def summaries(lines: list[dict]) -> list[dict]:
    return [line for line in lines if line["event"] == "request_finished"]


def create_sensor(testapp) -> tuple[str, str]:
    body = testapp.post_json(
        "/api/v1/sensors",
        {"name": "greenhouse"},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        status=201,
    ).json
    return body["sensorId"], body["token"]


# --- shape


def test_every_line_of_a_request_is_one_json_object_with_the_request_id(testapp, capsys):
    testapp.get("/test/log", headers={"X-Request-ID": "shape-1"})
    lines = records(capsys)
    assert [line["event"] for line in lines] == [
        "view_ran",
        "stdlib line, header Authorization: None",
        "request_finished",
    ]
    for line in lines:
        assert ESSENTIALS <= line.keys()
        assert line["request_id"] == "shape-1"
        assert line["timestamp"].endswith("Z")  # ISO-8601, UTC
    assert [line["level"] for line in lines] == ["info", "warning", "info"]
    assert [line["logger"] for line in lines] == [__name__, "pyramid.testview", "sensorhub.request"]


def test_sqlalchemy_lines_have_the_same_shape_when_asked_for(build, capsys):
    quiet = build()
    quiet.get("/test/log")
    assert not [line for line in records(capsys) if line["logger"].startswith("sqlalchemy")]

    verbose = build(**{"sensorhub.logging.levels": "sqlalchemy.engine=INFO"})
    verbose.get("/test/log", headers={"X-Request-ID": "sql-1"})
    sql = [line for line in records(capsys) if line["logger"].startswith("sqlalchemy.engine")]
    assert any(line["event"] == "SELECT 1" for line in sql)
    for line in sql:
        assert ESSENTIALS <= line.keys() and line["request_id"] == "sql-1"


def test_lines_outside_a_request_have_no_request_id(testapp, capsys):
    logging.getLogger("waitress").info("Serving on http://127.0.0.1:6543")
    [line] = records(capsys)
    assert line["event"] == "Serving on http://127.0.0.1:6543"
    assert "request_id" not in line and line["logger"] == "waitress"


# --- the summary line


def test_a_request_logs_exactly_one_summary_with_route_status_and_sizes(testapp, capsys):
    testapp.post(
        "/test/log",
        "x" * 10,
        headers={"X-Request-ID": "sum-1"},
        extra_environ={"REMOTE_ADDR": "192.0.2.7"},
    )
    [summary] = summaries(records(capsys))
    assert summary["level"] == "info"
    assert {
        key: summary[key]
        for key in (
            "method",
            "route",
            "path",
            "status",
            "request_id",
            "bytes_in",
            "client_addr",
            "sensor_id",
        )
    } == {
        "method": "POST",
        "route": "test.log",
        "path": "/test/log",
        "status": 200,
        "request_id": "sum-1",
        "bytes_in": 10,
        "client_addr": "192.0.2.7",
        "sensor_id": None,
    }
    assert summary["bytes_out"] == len(b'{"ok":true}')
    assert isinstance(summary["duration_ms"], float) and summary["duration_ms"] > 0


def test_client_errors_are_logged_with_their_reason_not_a_traceback(testapp, capsys):
    testapp.get("/no/such/thing", status=404)
    testapp.get("/api/v1/sensor", status=401)
    not_found, unauthenticated = summaries(lines := records(capsys))
    assert not any("exception" in line for line in lines)
    assert (not_found["level"], not_found["status"], not_found["route"]) == ("info", 404, None)
    assert not_found["reason"] == "no such resource: /no/such/thing"
    assert (unauthenticated["level"], unauthenticated["status"]) == ("warning", 401)
    assert unauthenticated["route"] == "auth.sensor_self"
    assert unauthenticated["auth_failure"] == "missing"
    assert unauthenticated["reason"].startswith("authentication required")


def test_an_authenticated_sensor_is_named_in_its_summary(testapp, capsys):
    sensor_id, token = create_sensor(testapp)
    testapp.get("/api/v1/sensor", headers={"Authorization": f"Bearer {token}"})
    output = capsys.readouterr().out
    assert token not in output and ADMIN_TOKEN not in output
    admin_call, sensor_call = summaries([json.loads(line) for line in output.splitlines()])
    assert admin_call["status"] == 201 and admin_call["sensor_id"] is None
    assert sensor_call["status"] == 200 and sensor_call["sensor_id"] == sensor_id


def test_a_refused_token_is_logged_with_the_reason_and_without_the_token(testapp, capsys):
    testapp.get(
        "/api/v1/sensor", headers={"Authorization": f"Bearer {SENSOR_TOKEN_LIKE}"}, status=401
    )
    output = capsys.readouterr().out
    assert SENSOR_TOKEN_LIKE not in output
    [summary] = summaries([json.loads(line) for line in output.splitlines()])
    assert summary["auth_failure"] in {"unknown", "bad_checksum"}


def test_ingestion_facts_published_by_another_thread_land_on_the_requests_line(testapp, capsys):
    testapp.post("/test/ingested")
    [summary] = summaries(records(capsys))
    assert {key: summary[key] for key in summary if key.startswith("events_")} == {
        "events_batch": 5,
        "events_accepted": 3,
        "events_duplicates": 1,
        "events_rejected": 1,
        "events_rejected_by_reason": {"bad_value": 1},
    }
    assert summary["sensor_id"] == "sen_batch"


def test_health_probes_are_silent_unless_they_fail_or_are_sampled(testapp, build, capsys):
    testapp.get("/healthz")
    assert summaries(records(capsys)) == []
    sampled = build(**{"sensorhub.logging.quiet_sample_rate": "1"})
    sampled.get("/healthz")
    [summary] = summaries(records(capsys))
    assert summary["route"] == "healthz" and summary["sampled"] == 1.0
    chatty = build(**{"sensorhub.logging.quiet_routes": "readyz"})
    chatty.get("/healthz")
    assert summaries(records(capsys))[0]["route"] == "healthz"


def test_a_retried_attempt_logs_a_retry_and_the_request_one_summary(committing_testapp, capsys):
    assert committing_testapp.get("/test/flaky").json == {"attempt": 1}
    lines = records(capsys)
    [retry] = [line for line in lines if line["event"] == "request_retried"]
    assert retry["error"] == "Conflict" and retry["attempt"] == 0
    [summary] = summaries(lines)
    assert summary["status"] == 200 and summary["request_id"] == retry["request_id"]


def test_the_client_address_behind_a_trusted_proxy_is_the_forwarded_one(build, capsys):
    behind_proxy = build(**{"sensorhub.trusted_proxy": "10.0.0.1"})
    forwarded = {"HTTP_X_FORWARDED_FOR": "203.0.113.9, 198.51.100.4"}
    behind_proxy.get("/test/log", extra_environ={"REMOTE_ADDR": "10.0.0.1", **forwarded})
    behind_proxy.get("/test/log", extra_environ={"REMOTE_ADDR": "192.0.2.66", **forwarded})
    from_proxy, direct = summaries(records(capsys))
    assert from_proxy["client_addr"] == "198.51.100.4"  # the entry the proxy added
    assert direct["client_addr"] == "192.0.2.66"  # not the proxy: its header is not believed


# --- errors


def test_an_unexpected_error_is_logged_once_with_a_structured_traceback_and_no_locals(
    testapp, capsys
):
    testapp.get("/test/boom", headers={"X-Request-ID": "boom-1"}, status=500)
    output = capsys.readouterr().out
    assert SENSOR_TOKEN_LIKE not in output
    lines = [json.loads(line) for line in output.splitlines()]
    [error] = [line for line in lines if "exception" in line]
    assert error["event"] == "unexpected_error" and error["request_id"] == "boom-1"
    [exception] = error["exception"]
    assert exception["exc_type"] == "RuntimeError"
    assert exception["exc_value"] == "could not use shs_[REDACTED]"
    assert exception["frames"][-1]["name"] == "fail_with_token_in_a_local"
    assert not any("locals" in frame for frame in exception["frames"])
    [summary] = summaries(lines)
    assert (summary["level"], summary["status"], summary["error"]) == ("error", 500, "RuntimeError")


def test_a_database_error_does_not_leak_bound_parameters(testapp, capsys):
    testapp.get("/test/conflict", status=500)
    output = capsys.readouterr().out
    assert "distinctive-parameter-4242" not in output
    [error] = [json.loads(line) for line in output.splitlines() if '"exception"' in line]
    assert error["exception"][0]["exc_type"] == "IntegrityError"  # then the driver's own
    assert "SQL parameters hidden" in error["exception"][0]["exc_value"]


# --- secrets and forged lines


def test_tokens_authorization_headers_and_passwords_never_reach_the_output(testapp, capsys):
    testapp.get(
        "/test/log",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Cookie": "session=cookie-secret"},
    )
    output = capsys.readouterr().out
    for secret in (ADMIN_TOKEN, PASSWORD, "key-in-a-list", "cookie-secret"):
        assert secret not in output
    view_ran = json.loads(output.splitlines()[0])
    assert view_ran["password"] == "[REDACTED]"
    assert view_ran["headers"]["Authorization"] == "[REDACTED]"
    assert view_ran["nested"] == {"items": [{"api_key": "[REDACTED]"}], "note": "Bearer [REDACTED]"}


def test_client_strings_with_newlines_cannot_forge_a_line(testapp, capsys):
    forged = '{"level":"error","event":"forged","request_id":"x"}'
    testapp.get("/test/log%0A" + forged, status=404)
    testapp.get(
        "/test/log",
        headers={"X-Request-ID": "sent-id\n" + forged},
        extra_environ={"HTTP_USER_AGENT": "probe/1.0\n" + forged + "\u2028" + forged},
    )
    lines = records(capsys)
    assert not any(line["event"] == "forged" for line in lines)
    not_found, view_ran = lines[0], lines[1]
    assert (
        not_found["path"] == "/test/log%0A%7B%22level%22:%22error%22,%22event%22:%22forged%22,"
        "%22request_id%22:%22x%22%7D"
    )  # the path as sent: URL-encoded
    assert view_ran["agent"] == "probe/1.0\n" + forged + "\u2028" + forged  # inside one string
    # The core refused the ID (a hex UUID could contain "abc" by chance, never "sent-id").
    assert "sent-id" not in view_ran["request_id"]


def test_consecutive_requests_on_one_thread_do_not_share_context(testapp, capsys):
    testapp.get("/test/bind", headers={"X-Request-ID": "first"})
    testapp.get("/test/log", headers={"X-Request-ID": "second"})
    lines = records(capsys)
    first = [line for line in lines if line["request_id"] == "first"]
    second = [line for line in lines if line["request_id"] == "second"]
    assert len(first) + len(second) == len(lines)
    assert all(line["sensor_id"] == "sen_bound_by_the_view" for line in first)
    assert all(line.get("sensor_id") is None for line in second)


# --- configuration


def test_console_format_is_readable_and_escapes_control_characters(build, capsys):
    console = build(**{"sensorhub.logging.format": "console"})
    console.get("/no/such%1B[31mthing%0Aforged", status=404, headers={"X-Request-ID": "con-1"})
    console.get("/test/boom", status=500)
    output = capsys.readouterr().out
    assert "\x1b" not in output  # no terminal escapes: capsys is no tty, and none from clients
    first, *rest = output.splitlines()
    assert "request_finished" in first and "request_id=con-1" in first and "status=404" in first
    assert not first.startswith("{")
    record_starts = [line for line in rest if not line.startswith("  ")]
    assert [("unexpected_error" in line, "request_finished" in line) for line in record_starts] == [
        (True, False),
        (False, True),
    ]
    assert "Traceback (most recent call last)" in output and SENSOR_TOKEN_LIKE not in output


def test_including_the_plugin_again_does_not_stack_handlers(build, capsys):
    build(), build()
    handlers = [
        handler
        for handler in logging.getLogger().handlers
        if isinstance(handler, pipeline.StandardStreamHandler)
    ]
    assert len(handlers) == 1
    log.info("once")
    assert [line["event"] for line in records(capsys)] == ["once"]


def test_pserves_plain_console_handler_is_replaced(build, capsys):
    plain = logging.StreamHandler(sys.stdout)
    logging.getLogger().addHandler(plain)
    build()
    assert plain not in logging.getLogger().handlers
    log.info("structured only")
    assert [line["event"] for line in records(capsys)] == ["structured only"]


def test_structlog_lines_are_written_by_the_plugin_without_a_stdlib_record(capsys):
    """Another handler on the root logger (a file, a test's capture) gets the libraries' records
    only; without the plugin's handler, structlog calls become stdlib records again."""
    events = []

    class Recording(logging.Handler):
        def emit(self, record):
            events.append(record.msg["event"] if isinstance(record.msg, dict) else record.msg)

    root, recording = logging.getLogger(), Recording()
    root.addHandler(recording)
    try:
        log.info("structured", password=PASSWORD)
        logging.getLogger("waitress").info("library")
        assert [line["event"] for line in records(capsys)] == ["structured", "library"]
        assert events == ["library"]
        for handler in list(root.handlers):
            if isinstance(handler, pipeline.StandardStreamHandler):
                root.removeHandler(handler)
        log.info("without the plugin's handler")
        assert events == ["library", "without the plugin's handler"]
        assert records(capsys) == []
    finally:
        root.removeHandler(recording)


def test_levels_come_from_the_settings(build, capsys):
    build(
        **{
            "sensorhub.logging.level": "warning",
            "sensorhub.logging.levels": "pyramid.testview=ERROR",
        }
    ).get("/test/log")
    assert records(capsys) == []
    build(**{"sensorhub.logging.level": "ERROR"}).get("/test/boom", status=500)
    assert [line["event"] for line in records(capsys)] == ["unexpected_error", "request_finished"]


def test_a_logger_may_be_more_verbose_than_the_process(build, capsys):
    """A level below the process level, named for one logger, lets that logger's structlog
    calls through (structlog's fast wrapper must not drop them before their logger's level
    is asked), and only that logger's."""
    build(
        **{
            "sensorhub.logging.level": "WARNING",
            "sensorhub.logging.levels": f"{__name__}=INFO",
        }
    ).get("/test/log")
    info_lines = [line for line in records(capsys) if line["level"] == "info"]
    assert [(line["logger"], line["event"]) for line in info_lines] == [(__name__, "view_ran")]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("sensorhub.logging.format", "xml"),
        ("sensorhub.logging.level", "loud"),
        ("sensorhub.logging.levels", "sqlalchemy.engine"),
        ("sensorhub.logging.levels", "waitress=LOUD"),
        ("sensorhub.logging.quiet_sample_rate", "2"),
    ],
)
def test_a_bad_logging_setting_stops_start_up_naming_it(build, key, value):
    with pytest.raises(SettingError, match=key.replace(".", r"\.")):
        build(**{key: value})


def test_the_format_can_come_from_the_environment(app_factory, capsys):
    app_factory(
        ["logging"],
        {"sensorhub.logging.format": "console"},
        environ={"SENSORHUB_LOGGING_FORMAT": "json"},
    )
    log.info("from_env")
    assert records(capsys)[0]["event"] == "from_env"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def admin_app(ini_settings, database_url, dbengine, environ=None):
    return make_app(
        {
            **ini_settings,
            "sensorhub.database.url": database_url,
            "dbengine": dbengine,
            "sensorhub.plugins": "logging",
            "sensorhub.logging.format": "json",
        },
        environ=environ or {},
        process="admin",
    )


def test_admin_commands_log_to_stderr_leaving_stdout_to_their_output(
    ini_settings, database_url, dbengine, capsys
):
    admin_app(ini_settings, database_url, dbengine)
    log.info("admin_line")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert json.loads(captured.err)["event"] == "admin_line"


def test_admin_commands_at_a_terminal_log_for_people_unless_the_environment_says_json(
    ini_settings, database_url, dbengine, monkeypatch
):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    admin_app(ini_settings, database_url, dbengine)
    log.info("for_people")
    assert "for_people" in terminal.getvalue() and not terminal.getvalue().startswith("{")
    terminal.truncate(0), terminal.seek(0)
    admin_app(ini_settings, database_url, dbengine, {"SENSORHUB_LOGGING_FORMAT": "json"})
    log.info("for_machines")
    assert json.loads(terminal.getvalue())["event"] == "for_machines"


def test_a_path_that_is_not_utf8_is_a_400_and_logged_as_sent(testapp, capsys):
    problem = testapp.get("/api/v1/%ff%fe", status=400).json
    assert "not valid UTF-8" in problem["detail"]
    [line] = [line for line in records(capsys) if line["event"] == "request_finished"]
    assert (line["path"], line["status"]) == ("/api/v1/%FF%FE", 400)
