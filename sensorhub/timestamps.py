"""Timestamps as clients send them: RFC 3339 with an offset, or integer epoch milliseconds.

One reader for every plugin, so a timestamp means the same wherever a client sends one (an
event's ``ts``, a query's ``since``, a token's ``expiresAt``). Nothing is guessed: a time
without an offset, a float or a boolean (which zone? which unit?) is refused, and so is a value
beyond what a signed 64-bit count of microseconds (and, for :func:`parse_datetime`, a
``datetime``) can hold. Refusals are ``None``, never an exception: the caller words the error.
Inside SensorHub a timestamp is integer epoch microseconds (UTC): exact, cheap to compare and
index, the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

__all__ = [
    "EPOCH",
    "MAX_EPOCH_MS",
    "format_timestamp",
    "now_us",
    "parse_datetime",
    "parse_timestamp",
    "timestamp_formatter",
    "utcnow",
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = EPOCH.replace(tzinfo=None)
MAX_EPOCH_MS = 2**53  # times 1000 (microseconds) it still fits a signed 64-bit column
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)
_MICROSECOND = timedelta(microseconds=1)


def utcnow() -> datetime:
    return datetime.now(UTC)


def now_us() -> int:
    return time.time_ns() // 1000


def parse_timestamp(value: object) -> int | None:
    """Epoch microseconds from integer epoch milliseconds (at most :data:`MAX_EPOCH_MS` either
    side of 1970) or an RFC 3339 string with an offset (``Z`` or ``±hh:mm``; digits beyond
    microseconds are dropped); ``None`` for anything else."""
    if type(value) is int:  # not bool, whose type is bool
        return value * 1000 if -MAX_EPOCH_MS <= value <= MAX_EPOCH_MS else None
    if type(value) is not str:
        return None
    match = _RFC3339.fullmatch(value)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zulu, sign, off_hours, off_minutes = (
        match.groups()
    )
    try:
        offset = timedelta(0) if zulu else timedelta(hours=int(off_hours), minutes=int(off_minutes))
        moment = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int((fraction or "0").ljust(6, "0")[:6]),
            tzinfo=timezone(-offset if sign == "-" else offset),
        )
    except ValueError:  # month 13, second 60, offset of 24 h or more, …
        return None
    return (moment - EPOCH) // _MICROSECOND


def parse_datetime(value: object) -> datetime | None:
    """:func:`parse_timestamp`'s moment as an aware UTC ``datetime``; ``None`` also for one
    that a ``datetime`` cannot hold (before year 1 or after 9999 in UTC)."""
    us = parse_timestamp(value)
    if us is None:
        return None
    try:
        return EPOCH + timedelta(microseconds=us)
    except OverflowError:
        return None


def format_timestamp(us: int) -> str:
    """RFC 3339 in UTC with a ``Z``: milliseconds, or microseconds when there are any."""
    seconds, micro = divmod(us, 1_000_000)
    return _with_fraction(_seconds_text(seconds), micro)


def timestamp_formatter() -> Callable[[int], str]:
    """:func:`format_timestamp` for many values (a page of events): each second's text is made
    once, since a page's events mostly share seconds and a batch's events their ``receivedAt``."""
    seconds_text: dict[int, str] = {}

    def format_one(us: int) -> str:
        seconds, micro = divmod(us, 1_000_000)
        text = seconds_text.get(seconds)
        if text is None:
            text = seconds_text[seconds] = _seconds_text(seconds)
        return _with_fraction(text, micro)

    return format_one


def _seconds_text(seconds: int) -> str:
    # From a naive epoch: isoformat writes no offset, so nothing is replaced per call.
    return (_NAIVE_EPOCH + timedelta(seconds=seconds)).isoformat()


def _with_fraction(seconds_text: str, micro: int) -> str:
    if micro % 1000:
        return f"{seconds_text}.{micro:06d}Z"
    return f"{seconds_text}.{micro // 1000:03d}Z"
