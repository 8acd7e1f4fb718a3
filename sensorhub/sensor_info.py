"""What ``GET /api/v1/sensor`` says about a sensor, contributed by whichever plugins know.

The auth plugin owns the endpoint; other plugins (ingestion's counters, say) add fields without
being imported by it::

    config.add_sensor_info(lambda request, sensor_id: {"eventCount": ...})

and the endpoint merges ``sensor_info(request, sensor_id)`` into its answer. Contributors must be
cheap (they run on every call) and return JSON-ready values with camelCase keys.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Contributor = Callable[[Any, str], dict]
_REGISTRY_KEY = "sensorhub.sensor_info_contributors"


def add_sensor_info(config, contributor: Contributor) -> None:
    config.registry.setdefault(_REGISTRY_KEY, []).append(config.maybe_dotted(contributor))


def sensor_info(request, sensor_id: str) -> dict:
    info: dict = {}
    for contributor in request.registry.get(_REGISTRY_KEY, ()):
        info.update(contributor(request, sensor_id))
    return info


def includeme(config) -> None:
    config.registry[_REGISTRY_KEY] = []
    config.add_directive("add_sensor_info", add_sensor_info)
