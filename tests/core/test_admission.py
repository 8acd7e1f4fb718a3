"""Admission, in process: the in-flight limit, the queueing budget and the drain (the real
server's behaviour under load is in test_prefork.py)."""

from __future__ import annotations

import time

import webtest
from webob import Request

from sensorhub.admission import QUEUED_AT_ENVIRON_KEY, admission_of, begin_drain


def test_a_draining_process_is_not_ready_and_refuses_new_requests_with_connection_close(
    app_factory,
):
    app = app_factory()
    client = webtest.TestApp(app)
    queued_before_the_drain = time.monotonic()
    begin_drain(app.registry)
    ready = client.get("/readyz", status=503)
    assert ready.json["detail"] == "not ready: the server is shutting down (draining)"
    refused = client.get("/api/v1/", status=503)
    assert refused.headers["Retry-After"] == "1"
    assert refused.headers["Connection"] == "close"
    assert refused.json["request_id"] == refused.headers["X-Request-ID"]
    assert client.get("/healthz").json == {"status": "ok"}  # alive while it drains
    # Queued before the drain began: it still gets its real answer.
    client.get("/api/v1/", extra_environ={QUEUED_AT_ENVIRON_KEY: queued_before_the_drain})


def test_past_the_in_flight_limit_a_request_is_shed_once_its_queueing_budget_is_spent(
    app_factory,
):
    app = app_factory(settings={"sensorhub.threads": "1", "sensorhub.queue_timeout": "50ms"})
    client = webtest.TestApp(app)
    admission = admission_of(app.registry)
    assert admission.enter(time.monotonic())  # another request holds the only slot
    try:
        started = time.monotonic()
        shed = client.get("/api/v1/", status=503)
        assert 0.04 < time.monotonic() - started < 1.0
        assert shed.headers["Retry-After"] == "1"
        assert "at capacity (1 in flight)" in shed.json["detail"]
        # A request that already waited its budget in the server's queue is shed at once.
        started = time.monotonic()
        client.get("/api/v1/", status=503, extra_environ={QUEUED_AT_ENVIRON_KEY: started - 1})
        assert time.monotonic() - started < 0.04
        assert client.get("/healthz").status_int == 200  # never shed
    finally:
        admission.leave()
    assert client.get("/api/v1/").status_int == 200
    assert (admission.in_flight, admission.shed) == (0, 2)


class UnreadableBody:
    """A wsgi.input that fails the test if anything reads it."""

    def read(self, *args):
        raise AssertionError("the body was read")

    readline = readlines = read


def test_a_body_declared_over_the_server_limit_is_refused_with_413_before_it_is_read(
    app_factory,
):
    app = app_factory(settings={"sensorhub.max_request_body_size": "1KiB"})
    request = Request.blank("/api/v1/", method="POST")
    request.environ.update({"wsgi.input": UnreadableBody(), "CONTENT_LENGTH": str(1024 + 1)})
    refused = request.get_response(app)
    assert refused.status_int == 413
    assert "sensorhub.max_request_body_size" in refused.json["detail"]
    assert refused.headers["Connection"] == "close"


def test_a_body_within_the_limit_is_kept_in_memory_for_a_retry_not_in_a_temporary_file(app):
    request_class = app.request_factory
    body = b"x" * 200_000  # well above webob's own 10 KiB default for a temporary file
    request = request_class.blank("/", method="POST", body=body)
    request.make_body_seekable()  # what pyramid_retry does before the first attempt
    assert request.body_file_raw.read() == body
    assert type(request.body_file_raw).__name__ == "BytesIO"
