"""The plugin's HTTP API, under ``/api/v1/<plugin>/``.

A view returns JSON-ready data (rendered by SensorHub's orjson renderer). For an error a client
caused, ``raise problem(422, "what was wrong", errors=[...])`` from ``sensorhub.errors``: it
becomes application/problem+json with the request ID. A sensor-only view adds
``permission=SENSOR`` (``sensorhub.identity``) and reads ``request.identity.sensor_id``;
database work goes through ``request.dbsession`` (committed before the response leaves).
"""

from __future__ import annotations

from .settings import GREETING, NAME
from .subscribers import recent_ingestions


def overview(request) -> dict:
    return {
        "plugin": NAME,
        "greeting": request.registry.settings[GREETING],
        "recentIngestions": recent_ingestions(request.registry).snapshot(),
    }
