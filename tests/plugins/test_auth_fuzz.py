"""Bounded fuzzing of the bearer-token parser (issue 13): the shape and checksum checks answer
yes or no for any string, and any ``Authorization`` header a client sends (control characters,
non-ASCII, far too long, nearly a token) is answered 401 with a reason, never an error.
Derandomized: CI runs the same inputs every time.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugins.auth import tokens
from tests.plugins.test_auth_support import AUTH_SETTINGS

FUZZ = settings(max_examples=400, deadline=None, derandomize=True, database=None)

near_tokens = st.one_of(
    st.text(max_size=60),
    st.text(alphabet=tokens.ALPHABET + "_-+/= \x00é", min_size=30, max_size=46).map(
        lambda tail: tokens.PREFIX + tail
    ),
    st.text(alphabet=tokens.ALPHABET, min_size=32, max_size=32).map(
        lambda secret: tokens.PREFIX + secret + tokens.checksum(tokens.PREFIX + secret)
    ),
)


@FUZZ
@given(near_tokens)
def test_the_token_shape_and_checksum_checks_never_escape_anything_but_a_yes_or_no(candidate):
    shaped = tokens.looks_like_token(candidate)
    assert shaped is (
        len(candidate) == tokens.TOKEN_LENGTH
        and candidate.startswith(tokens.PREFIX)
        and all(char in tokens.ALPHABET for char in candidate[len(tokens.PREFIX) :])
    )
    if shaped:
        valid = tokens.checksum_ok(candidate)
        body = candidate[: -tokens.CHECKSUM_LENGTH]
        assert valid is (tokens.checksum(body) == candidate[-tokens.CHECKSUM_LENGTH :])
    assert len(tokens.token_hash(candidate)) == 32


@pytest.fixture(scope="module")
def plugins():
    return ["auth"]


@pytest.fixture(scope="module")
def app_settings():
    # Every generated credential must reach the parser: the guard would answer 429 after 20.
    return {**AUTH_SETTINGS, "sensorhub.auth.failure_threshold": "0"}


headers = st.one_of(
    st.text(max_size=80),
    st.text(max_size=1100).map(lambda text: "Bearer " + text),
    near_tokens.map(lambda token: "Bearer " + token),
    near_tokens.map(lambda token: "bearer  \t" + token + " "),
)


# One doomed transaction for every example is fine: a refused credential writes nothing.
@settings(FUZZ, max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=headers)
def test_any_authorization_header_is_answered_401_with_a_reason_never_an_error(testapp, header):
    # What a WSGI server hands the app: the header's bytes (UTF-8 here) decoded as Latin-1.
    raw = header.encode("utf-8", "surrogatepass").decode("latin-1")
    answer = testapp.get("/api/v1/sensor", extra_environ={"HTTP_AUTHORIZATION": raw}, status=401)
    assert answer.headers["WWW-Authenticate"].startswith('Bearer realm="sensorhub"')
    assert answer.json["status"] == 401
