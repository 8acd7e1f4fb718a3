"""What ``GET /api/v1/sensor`` says about a sensor, contributed by whichever plugins know.

The auth plugin owns the endpoint; other plugins (ingestion's counters, say) add fields without
being imported by it::

    config.add_sensor_info(lambda request, sensor_id: {"eventCount": ...})

and the endpoint merges ``sensor_info(request, sensor_id)`` into its answer. Contributors must be
cheap (they run on every call: a read goes through ``sensorhub.db.DriverRead``, which begins no
session) and return JSON-ready values with camelCase keys.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyramid.config import Configurator
    from pyramid.request import Request

# (request, sensor_id) -> fields to add, JSON-ready, with camelCase keys
Contributor = Callable[["Request", str], dict[str, Any]]
_REGISTRY_KEY = "sensorhub.sensor_info_contributors"


def add_sensor_info(config: Configurator, contributor: Contributor) -> None:
    config.registry.setdefault(_REGISTRY_KEY, []).append(config.maybe_dotted(contributor))


def sensor_info(request: Request, sensor_id: str) -> dict[str, Any]:
    info: dict[str, Any] = {}
    for contributor in request.registry.get(_REGISTRY_KEY, ()):
        info.update(contributor(request, sensor_id))
    return info


def includeme(config: Configurator) -> None:
    config.registry[_REGISTRY_KEY] = []
    config.add_directive("add_sensor_info", add_sensor_info)
