"""Errors are application/problem+json with the request ID; nothing internal leaks."""

import pytest
import webtest

from sensorhub.errors import FieldError, problem


@pytest.fixture(scope="module")
def plugins():
    return ["tests.core.fakeplugin"]


def assert_problem(response, status):
    assert response.status_int == status
    assert response.content_type == "application/problem+json"
    body = response.json
    assert body["status"] == status
    assert body["title"] and body["detail"]
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body


def test_unknown_path_is_a_404_problem(testapp):
    body = assert_problem(testapp.get("/api/v1/nothing-here", status=404), 404)
    assert "/api/v1/nothing-here" in body["detail"]


def test_wrong_method_is_a_405_with_allow(testapp):
    response = testapp.delete("/fake/answer", status=405)
    assert_problem(response, 405)
    assert response.headers["Allow"] == "GET, HEAD"


def test_an_unexpected_exception_is_a_500_that_leaks_nothing(testapp):
    response = testapp.get("/fake/explode", status=500)
    body = assert_problem(response, 500)
    for internal in ("boom", "/etc/secret-path", "RuntimeError", "Traceback", "shs_"):
        assert internal not in response.text
    assert "request_id" in body["detail"]


def test_anonymous_caller_on_a_protected_view_gets_401_with_the_policys_challenge(testapp):
    response = testapp.get("/fake/admin", status=401)
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"] == 'FakeHeader realm="tests"'


def test_authenticated_caller_without_permission_gets_403(testapp):
    response = testapp.get("/fake/sensor-only", headers={"X-Fake-Admin": "yes"}, status=403)
    assert_problem(response, 403)


def blank_request(app):
    from pyramid.request import Request, apply_request_extensions

    request = Request.blank("/")
    request.registry = app.registry
    apply_request_extensions(request)
    return request


def test_problem_helper_carries_validation_errors_and_headers(app):
    from sensorhub.errors import http_error_view, problem

    exc = problem(
        422,
        "1 event is invalid",
        headers={"Retry-After": "3"},
        errors=[{"path": "events[0].value", "message": "must be a number"}],
    )
    response = http_error_view(exc, blank_request(app))
    body = response.json
    assert body["errors"] == [{"path": "events[0].value", "message": "must be a number"}]
    assert response.headers["Retry-After"] == "3"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 413, 415, 422, 429, 500, 503])
def test_every_error_status_renders_as_a_problem(app, status):
    from sensorhub.errors import http_error_view, problem

    response = http_error_view(problem(status, f"detail for {status}"), blank_request(app))
    assert response.status_int == status
    assert response.content_type == "application/problem+json"
    assert response.json["detail"] == f"detail for {status}"
    assert response.json["request_id"]


def test_a_database_outage_is_a_503_with_retry_after_not_a_500(app_factory):
    app = app_factory(
        plugins=["tests.core.fakeplugin"],
        settings={
            "dbengine": None,
            "sensorhub.database.url": "postgresql+psycopg://nobody@127.0.0.1:1/none",
            "sensorhub.database.connect_timeout": "1s",
        },
    )
    response = webtest.TestApp(app).post_json("/fake/sensors", {"name": "x"}, status=503)
    body = assert_problem(response, 503)
    assert response.headers["Retry-After"]
    assert "127.0.0.1" not in body["detail"]


def test_a_query_string_that_is_not_utf8_is_a_400_not_a_500(app):
    response = webtest.TestApp(app).get("/fake/answer?a=%ff", status=400)
    assert_problem(response, 400)
    assert "UTF-8" in response.json["detail"]


# --- field errors


def test_a_field_error_reads_as_path_and_message():
    error = FieldError("expiresAt", "must be in the future")
    assert str(error) == "expiresAt: must be in the future"
    assert error.as_error() == {"path": "expiresAt", "message": "must be in the future"}


def test_a_field_error_with_a_reason_puts_it_between_path_and_message():
    error = FieldError("events[3].value", "value must be a number", "invalid_field")
    assert list(error.as_error().items()) == [
        ("path", "events[3].value"),
        ("reason", "invalid_field"),
        ("message", "value must be a number"),
    ]


def test_a_problem_lists_field_errors_in_its_errors():
    exc = problem(422, "2 fields are invalid", errors=[FieldError("a", "x"), {"path": "b"}])
    assert exc.problem_errors == [{"path": "a", "message": "x"}, {"path": "b"}]
