"""{{ cookiecutter.description }}

A SensorHub plugin (SensorHub's docs/plugins.md has the contracts and rules). Load it by naming
it in ``sensorhub.plugins`` (env ``SENSORHUB_PLUGINS``). It adds:

- settings ``sensorhub.{{ cookiecutter.plugin_name }}.*`` in SensorHub's settings table, so each
  can come from the ini or the environment and shows in ``sensorhub-admin settings <ini>``;
- ``GET /api/v1/{{ cookiecutter.plugin_name }}/`` and its entry in the capabilities at ``GET /api/v1/``;
- a subscriber that remembers the latest ingestions (the core's ``EventsIngested`` event).

Importing this package does nothing; ``includeme`` does everything, so two apps with different
settings can live in one process (the tests build several).
"""

from __future__ import annotations

from typing import Any

from sensorhub.api import API_PREFIX
from sensorhub.events import EventsIngested
from sensorhub.openapi import JSON, Operation

from .settings import NAME, RECENT_LIMIT, SETTINGS
from .subscribers import RecentIngestions, remember_ingestion
from .views import overview


def includeme(config) -> None:
    # Declare first: the typed values are in registry.settings from here on.
    config.declare_settings(*SETTINGS)
    settings = config.registry.settings
    config.registry[RecentIngestions.REGISTRY_KEY] = RecentIngestions(settings[RECENT_LIMIT])

    config.add_route(f"{NAME}_overview", f"{API_PREFIX}/{NAME}/")
    # Every view declares its operation: it is published in /api/v1/openapi.json (shapes are
    # msgspec Structs; dict[str, Any] until you write one for your answer).
    config.add_view(overview, route_name=f"{NAME}_overview", request_method=("GET", "HEAD"),
                    renderer="json",
                    openapi=Operation("What this plugin offers (edit me)", tags=(NAME,),
                                      responses={200: ("the overview", {JSON: dict[str, Any]})}))
    config.add_event_subscriber(remember_ingestion, EventsIngested)
    config.add_api_capability(NAME, description="what this plugin offers (edit me)",
                              url=f"{API_PREFIX}/{NAME}/")
{%- if cookiecutter.with_model == "yes" %}
    config.include(".models")  # its table's migrations
{%- endif %}
