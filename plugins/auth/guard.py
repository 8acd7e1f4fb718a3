"""The brute-force guard: too many refused credentials from one client address → 429.

Each client address (``REMOTE_ADDR``; behind a reverse proxy, let the server set it from the
proxy's header, e.g. waitress's ``trusted_proxy``; ``X-Forwarded-For`` is never read here because
any client can forge it) keeps the times of its last ``threshold`` failures. Once ``threshold``
failures fall within ``window`` seconds the address is blocked until the oldest of them leaves
the window; ``Retry-After`` says when. Failures keep counting while blocked, so a client that
keeps guessing stays blocked.

A valid credential is never slowed or refused: the guard is consulted only after a credential
has been refused, so sensors sharing an address (NAT, a gateway) with a misbehaving device keep
working. (Guessing a 190-bit token is hopeless anyway; the guard bounds the noise, log volume
and database lookups a broken or hostile client can cause.)

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
