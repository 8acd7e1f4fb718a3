"""Time-ordered unique event ids: UUIDv7 (RFC 9562 §5.7), which Python 3.11's uuid lacks.

48 bits of Unix milliseconds, then 74 random bits, so ids sort by creation time and never
collide in practice. Within one process they also strictly increase (RFC 9562 §6.2, method 1:
``rand_a`` is a counter seeded at random each millisecond), so two events made in the same
millisecond keep their order.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last = (0, 0)  # (milliseconds, 12-bit counter) of the id made last


def uuid7() -> uuid.UUID:
    global _last
    with _lock:
        millis = time.time_ns() // 1_000_000
        last_millis, counter = _last
        if millis > last_millis:
            counter = int.from_bytes(os.urandom(2)) & 0x7FF  # room to count up in this ms
        else:  # same millisecond, or the clock went back: keep counting from the last id
            millis, counter = last_millis, counter + 1
            if counter > 0xFFF:
                millis, counter = millis + 1, 0
        _last = (millis, counter)
    rand_b = int.from_bytes(os.urandom(8)) & ((1 << 62) - 1)
    value = (millis << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | rand_b
    return uuid.UUID(int=value)


def new_event_id() -> str:
    return str(uuid7())
