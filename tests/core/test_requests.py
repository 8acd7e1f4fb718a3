"""The request vocabulary plugins share: route name and whether pyramid_retry repeats an attempt."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from pyramid_retry import mark_error_retryable

from sensorhub.errors import first_line
from sensorhub.requests import UNMATCHED_ROUTE, matched_route_name, route_name, will_retry


def _request(route: str | None = None, attempt: int = 0, attempts: int = 3, exception=None):
    return SimpleNamespace(
        matched_route=SimpleNamespace(name=route) if route else None,
        environ={"retry.attempt": attempt, "retry.attempts": attempts},
        exception=exception,
    )


def _retryable() -> Exception:
    error = RuntimeError("conflict")
    mark_error_retryable(error)
    return error


def test_a_matched_route_is_named_and_an_unmatched_path_gets_the_fixed_label():
    assert route_name(_request("ingest.events")) == "ingest.events"
    assert route_name(_request()) == UNMATCHED_ROUTE == "unmatched"
    assert matched_route_name(_request("healthz")) == "healthz"
    assert matched_route_name(_request()) is None
    assert matched_route_name(SimpleNamespace()) is None  # routing has not happened yet


def test_an_attempt_is_retried_only_for_a_retryable_error_before_the_final_attempt():
    conflict = _retryable()
    assert will_retry(_request(attempt=0), conflict)
    assert not will_retry(_request(attempt=2), conflict)  # the final attempt ends the request
    assert not will_retry(_request(attempt=0), ValueError("a bug"))
    assert not will_retry(_request(attempt=0))  # no error: nothing to retry


def test_an_error_an_exception_view_answered_counts_as_the_attempts_error():
    conflict = _retryable()
    assert will_retry(_request(attempt=1, exception=conflict))
    assert not will_retry(_request(attempt=2, exception=conflict))


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("could not connect\nDETAIL: the server is down", "could not connect"),
        ("  \n leading blank lines\nmore", "leading blank lines"),
        ("", ""),
        ("x" * 500, "x" * 200),
    ],
)
def test_an_errors_first_line_names_the_problem_in_bounded_space(message, expected):
    assert first_line(RuntimeError(message)) == expected
