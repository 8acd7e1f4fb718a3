"""The brute-force guard: too many refused credentials from one client address → 429.

Each client address (``REMOTE_ADDR``; behind a reverse proxy, let the server set it from the
proxy's header, e.g. waitress's ``trusted_proxy``; ``X-Forwarded-For`` is never read here because
any client can forge it) keeps the times of its last ``threshold`` failures. Once ``threshold``
failures fall within ``window`` seconds the address is blocked until the oldest of them leaves
the window; ``Retry-After`` says when. Failures keep counting while blocked, so a client that
keeps guessing stays blocked.

A blocked address costs nothing: its requests get no database lookup and no log line. What can
be checked in memory still works from it (the admin and provisioning secrets, and a sensor token
this process looked up recently), so sensors sharing an address (NAT, a gateway) with a
misbehaving device mostly keep working; a sensor token never seen before waits out the block.
(Guessing a 190-bit token is hopeless anyway; the guard bounds the noise, log volume and
database lookups a broken or hostile client can cause.)

State is in-process memory: correct for one process (waitress' threads share it). With several
processes or hosts each keeps its own count, so the effective threshold is ``threshold`` per
process; put a shared limiter (the reverse proxy, Redis) in front when that matters. Memory is
bounded: at most ``max_clients`` addresses are tracked, the least recently failing dropped first.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable


class FailureGuard:
    def __init__(
        self,
        threshold: int,
        window: float,
        *,
        max_clients: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.threshold = threshold  # 0 turns the guard off
        self.window = window
        self.max_clients = max_clients
        self.clock = clock  # test hook: a fake clock moves time without sleeping
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def record_failure(self, client: str) -> None:
        if not self.threshold:
            return
        now = self.clock()
        with self._lock:
            times = self._failures.get(client)
            if times is None:
                times = self._failures[client] = deque(maxlen=self.threshold)
                while len(self._failures) > self.max_clients:
                    self._failures.popitem(last=False)
            else:
                self._failures.move_to_end(client)
            times.append(now)

    def reset(self) -> None:
        """Forget every client (tests; an operator's manual unblock would do the same)."""
        with self._lock:
            self._failures.clear()

    def retry_after(self, client: str) -> int | None:
        """Whole seconds until ``client`` may try again, or None when it is not blocked."""
        if not self.threshold:
            return None
        with self._lock:
            times = self._failures.get(client)
            if times is None or len(times) < self.threshold:
                return None
            remaining = times[0] + self.window - self.clock()
        if remaining <= 0:
            return None
        return max(1, math.ceil(remaining))


class SensorRateLimiter:
    """Per-sensor request rate: a token bucket of ``burst`` requests refilled at ``rate`` per
    second, so one misbehaving sensor (a retry loop, a stuck clock) cannot starve the fleet.

    In-process, like the failure guard: with several processes or hosts, each enforces the
    limit on the requests it receives. Memory is bounded by ``max_sensors`` buckets (the least
    recently seen dropped first; a dropped sensor starts again with a full bucket).
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_sensors: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.rate = rate  # 0 turns the limit off
        self.burst = max(1, burst)
        self.max_sensors = max_sensors
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at
        self._lock = threading.Lock()

    def retry_after(self, sensor_id: str) -> int | None:
        """Take one request from the sensor's bucket: None if it may go on, else the whole
        seconds until it may."""
        if not self.rate:
            return None
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.pop(sensor_id, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            self._buckets[sensor_id] = (tokens, now)
            while len(self._buckets) > self.max_sensors:
                self._buckets.popitem(last=False)
        if allowed:
            return None
        return max(1, math.ceil((1.0 - tokens) / self.rate))
