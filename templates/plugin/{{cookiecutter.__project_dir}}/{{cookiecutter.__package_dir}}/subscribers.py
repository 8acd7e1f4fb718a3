"""What the plugin does when something happens elsewhere (SensorHub's domain events).

Subscribers get the event only; they find the app through ``event.request.registry``, never
through another plugin's modules. ``EventsIngested`` is published after the commit, so what is
counted here was stored.
"""

from __future__ import annotations

import threading
from collections import deque

from sensorhub.events import EventsIngested


class RecentIngestions:
    """The latest ingestions, newest last. Requests run on several threads: hence the lock."""

    REGISTRY_KEY = f"{__package__}.recent_ingestions"

    def __init__(self, limit: int):
        self._items: deque[dict] = deque(maxlen=limit)
        self._lock = threading.Lock()

    def add(self, sensor_id: str, accepted: int) -> None:
        with self._lock:
            self._items.append({"sensorId": sensor_id, "accepted": accepted})

    def snapshot(self) -> list[dict]:
        with self._lock:
            return list(self._items)


def recent_ingestions(registry) -> RecentIngestions:
    return registry[RecentIngestions.REGISTRY_KEY]


def remember_ingestion(event: EventsIngested) -> None:
    recent_ingestions(event.request.registry).add(event.sensor_id, event.accepted)
