"""Sensor tokens and the brute-force guard, without an app: the format scanners and redaction
rely on, the checksum that catches typos before the database, and the guard's arithmetic."""

import hashlib
import re

from plugins.auth import tokens
from plugins.auth.guard import FailureGuard

REDACTION = re.compile(r"shs_[A-Za-z0-9]{30,}")  # what the logging plugin redacts


def test_tokens_have_a_prefix_base62_secret_and_checksum_that_redaction_recognises():
    token = tokens.new_token()
    assert len(token) == tokens.TOKEN_LENGTH == 42
    assert REDACTION.fullmatch(token)
    assert tokens.looks_like_token(token) and tokens.checksum_ok(token)


def test_tokens_do_not_repeat():
    assert len({tokens.new_token() for _ in range(2000)}) == 2000


def test_the_checksum_catches_every_single_character_typo():
    token = tokens.new_token()
    for position in range(len(tokens.PREFIX), len(token)):
        for replacement in tokens.ALPHABET:
            if replacement != token[position]:
                typo = token[:position] + replacement + token[position + 1 :]
                assert not tokens.checksum_ok(typo), typo


def test_the_checksum_catches_swapped_neighbours():
    token = tokens.new_token()
    for position in range(len(tokens.PREFIX), len(token) - 1):
        swapped = token[:position] + token[position + 1] + token[position] + token[position + 2 :]
        if swapped != token:
            assert not tokens.checksum_ok(swapped)


def test_shapes_that_are_not_tokens():
    token = tokens.new_token()
    for candidate in (
        token[:-1],
        token + "a",
        "ghp_" + token[4:],
        token.replace("shs_", "SHS_"),
        token[:20] + "-" + token[21:],
        token[:20] + "é" + token[21:],
    ):
        assert not tokens.looks_like_token(candidate), candidate


def test_the_stored_hash_is_sha256_of_the_token():
    token = tokens.new_token()
    assert tokens.token_hash(token) == hashlib.sha256(token.encode()).digest()
    assert tokens.hint(token) == token[:8] + "…"


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_the_guard_blocks_after_threshold_failures_within_the_window():
    clock = Clock()
    guard = FailureGuard(3, 60, clock=clock)
    for second in (0, 10, 20):
        clock.now = second
        assert guard.retry_after("a") is None
        guard.record_failure("a")
    assert guard.retry_after("a") == 40  # until the failure at 0 s leaves the window
    clock.now = 60
    assert guard.retry_after("a") is None
    assert guard.retry_after("b") is None


def test_failures_spread_wider_than_the_window_never_block():
    clock = Clock()
    guard = FailureGuard(3, 60, clock=clock)
    for second in range(0, 1000, 31):
        clock.now = second
        assert guard.retry_after("a") is None
        guard.record_failure("a")


def test_a_threshold_of_zero_turns_the_guard_off():
    guard = FailureGuard(0, 60)
    for _ in range(100):
        guard.record_failure("a")
    assert guard.retry_after("a") is None


def test_the_guard_remembers_a_bounded_number_of_addresses():
    guard = FailureGuard(1, 60, max_clients=100)
    for number in range(1000):
        guard.record_failure(f"10.0.{number // 256}.{number % 256}")
    assert len(guard._failures) == 100
    assert guard.retry_after("10.0.3.231") is not None  # the most recent are kept
    assert guard.retry_after("10.0.0.0") is None
