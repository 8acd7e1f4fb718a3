"""Every response carries an X-Request-ID: the caller's if it is safe, a new one otherwise."""

import os
import uuid

import pytest
import structlog
import webtest

from sensorhub.request_id import new_request_id, request_id_tween_factory


def test_a_valid_inbound_request_id_is_echoed_unchanged(testapp):
    response = testapp.get("/healthz", headers={"X-Request-ID": "edge-7f3a.b_9"})
    assert response.headers["X-Request-ID"] == "edge-7f3a.b_9"


def test_without_an_inbound_id_a_uuid4_is_generated(testapp):
    generated = testapp.get("/healthz").headers["X-Request-ID"]
    assert uuid.UUID(generated).version == 4


def test_generated_ids_differ_between_worker_processes_forked_from_one_app():
    """IDs come from `random`, which reseeds in a forked child: gunicorn's workers, forked from
    the preloaded app, must not draw the same IDs in the same order."""
    new_request_id()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: one ID to the parent, then out without pytest's teardown
        os.write(write_end, new_request_id().encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        child_id = pipe.read()
    os.waitpid(pid, 0)
    assert uuid.UUID(child_id).version == 4
    assert child_id != new_request_id()


@pytest.mark.parametrize(
    "unsafe", ["a" * 65, "has space", "semi;colon", "ünïcode", "", "x\tforged=1"]
)
def test_an_unsafe_inbound_id_is_replaced(testapp, unsafe):
    response = testapp.get("/healthz", headers={"X-Request-ID": unsafe})
    assert response.headers["X-Request-ID"] != unsafe
    assert uuid.UUID(response.headers["X-Request-ID"]).version == 4


def test_an_id_with_a_newline_is_replaced(app):
    environ = {"HTTP_X_REQUEST_ID": "abc\nlevel=error forged", "HTTP_HOST": "example.com"}
    response = webtest.TestApp(app).get("/healthz", extra_environ=environ)
    assert "\n" not in response.headers["X-Request-ID"]
    assert "forged" not in response.headers["X-Request-ID"]


def test_error_responses_carry_the_same_id_in_header_and_body(testapp):
    response = testapp.get("/no/such/thing", headers={"X-Request-ID": "trace-42"}, status=404)
    assert response.headers["X-Request-ID"] == "trace-42"
    assert response.json["request_id"] == "trace-42"


def test_the_id_is_bound_for_the_request_and_gone_after_it(app):
    seen = {}

    def handler(request):
        seen.update(structlog.contextvars.get_contextvars())
        structlog.contextvars.bind_contextvars(sensor_id="bound-during-request")
        return request.response

    tween = request_id_tween_factory(handler, app.registry)
    request = make_request(app, "/", headers={"X-Request-ID": "ctx-1"})
    response = tween(request)
    assert seen["request_id"] == "ctx-1"
    assert response.headers["X-Request-ID"] == "ctx-1"
    leftover = structlog.contextvars.get_contextvars()
    assert "request_id" not in leftover and "sensor_id" not in leftover


def test_the_id_survives_a_retried_attempt(app):
    """pyramid_retry builds a new request per attempt from the same environ."""
    from pyramid.request import Request, apply_request_extensions

    environ = Request.blank("/").environ
    first, second = Request(environ), Request(environ)
    for request in (first, second):
        request.registry = app.registry
        apply_request_extensions(request)
    assert first.request_id == second.request_id


def make_request(app, path, **kw):
    from pyramid.request import Request, apply_request_extensions

    request = Request.blank(path, **kw)
    request.registry = app.registry
    apply_request_extensions(request)
    return request
