"""One reading of a client's timestamp: RFC 3339 with an offset, or integer epoch milliseconds."""

from datetime import UTC, datetime

import pytest

from sensorhub.timestamps import (
    MAX_EPOCH_MS,
    format_timestamp,
    parse_datetime,
    parse_timestamp,
    timestamp_formatter,
)

MOMENT = datetime(2026, 5, 28, 20, 26, 40, tzinfo=UTC)
MOMENT_US = int(MOMENT.timestamp()) * 1_000_000


@pytest.mark.parametrize(
    "value",
    [
        "2026-05-28T20:26:40Z",
        "2026-05-28t20:26:40z",
        "2026-05-28 20:26:40Z",
        "2026-05-28T22:26:40+02:00",
        "2026-05-28T17:56:40-02:30",
        MOMENT_US // 1000,
    ],
)
def test_an_offset_or_epoch_milliseconds_name_one_moment(value):
    assert parse_timestamp(value) == MOMENT_US
    assert parse_datetime(value) == MOMENT


@pytest.mark.parametrize(
    ("fraction", "microseconds"),
    [(".5", 500_000), (".123456", 123_456), (".123456789", 123_456), (".000001", 1)],
)
def test_fractional_seconds_are_kept_to_the_microsecond(fraction, microseconds):
    assert parse_timestamp(f"2026-05-28T20:26:40{fraction}Z") == MOMENT_US + microseconds


@pytest.mark.parametrize(
    "value",
    [
        "2026-05-28T20:26:40",  # no offset: which zone?
        "2026-05-28T20:26:40+02",
        "2026-05-28",
        "Z",
        "2026-05-28T20:26:40.Z",
        "20260528T202640Z",
        "2026-13-01T00:00:00Z",
        "2026-05-28T20:26:60Z",
        "2026-05-28T20:26:40+24:00",
        " 2026-05-28T20:26:40Z",
        "yesterday",
        "",
        True,  # a bool is an int to Python, not a timestamp
        False,
        1.78e12,  # a float: which unit?
        str(MOMENT_US // 1000),
        None,
        [MOMENT_US // 1000],
    ],
)
def test_anything_else_is_refused_not_guessed(value):
    assert parse_timestamp(value) is None
    assert parse_datetime(value) is None


def test_epoch_milliseconds_are_bounded_so_microseconds_fit_64_bits():
    assert parse_timestamp(MAX_EPOCH_MS) == MAX_EPOCH_MS * 1000 < 2**63
    assert parse_timestamp(-MAX_EPOCH_MS) == -MAX_EPOCH_MS * 1000
    assert parse_timestamp(MAX_EPOCH_MS + 1) is None
    assert parse_timestamp(-MAX_EPOCH_MS - 1) is None


@pytest.mark.parametrize("value", [MAX_EPOCH_MS, -MAX_EPOCH_MS, "9999-12-31T23:59:59-01:00"])
def test_a_moment_a_datetime_cannot_hold_is_refused_not_raised(value):
    assert parse_timestamp(value) is not None
    assert parse_datetime(value) is None


def test_timestamps_are_written_in_utc_with_milliseconds_or_microseconds():
    assert format_timestamp(MOMENT_US) == "2026-05-28T20:26:40.000Z"
    assert format_timestamp(MOMENT_US + 123_456) == "2026-05-28T20:26:40.123456Z"
    assert parse_timestamp(format_timestamp(MOMENT_US + 123_456)) == MOMENT_US + 123_456


def test_a_page_s_formatter_writes_what_format_timestamp_writes():
    """Whatever it remembered of earlier values (seconds before 1970 and up to 9999 included)."""
    import random

    lowest, highest = -62_135_596_800_000_000, 253_402_300_799_999_999
    values = [lowest, highest, -1, 0, 999, 1000, MOMENT_US, MOMENT_US + 1, MOMENT_US + 123_000]
    values += [random.randint(lowest, highest) for _ in range(2000)]
    values += [MOMENT_US + random.randint(0, 3_000_000) for _ in range(2000)]
    format_one = timestamp_formatter()
    for value in values * 2:  # the second time round from what it remembered
        assert format_one(value) == format_timestamp(value), value
