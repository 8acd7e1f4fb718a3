"""The dashboard plugin: a status page for admins under ``/dashboard/``.

Server-rendered HTML (pyramid_jinja2), no script and no external asset:

- ``/dashboard/``: the fleet at a glance, a page of ``page_size`` sensors at a time: last seen,
  events in the last hour and day, accepted, duplicate and rejected counts; sensors not seen
  within ``stale_after`` highlighted;
- ``/dashboard/sensors/{id}``: one sensor, a chart of its recent values per event type (inline
  SVG, ``chart.py``) and its latest events;
- ``/dashboard/sign-in``, ``/dashboard/sign-out``: the admin token once, then a signed session
  cookie (``access.py``); scripts may send ``Authorization: Bearer <admin token>`` instead.

It owns no table: it reads the core's ``sensors`` and the ingest plugin's tables by name
(``queries.py``), and needs an auth plugin's security policy for the admin identity; without
either the app refuses to start with one line saying what to load. Guide: ``README.md``.
"""

from __future__ import annotations

import importlib.util

from pyramid.events import ApplicationCreated

from sensorhub.settings import StartupError

from . import access
from .queries import Queries, check_dependencies
from .settings import SETTINGS
from .views import QUERIES


def includeme(config) -> None:
    config.declare_settings(*SETTINGS)
    if importlib.util.find_spec("pyramid_jinja2") is None:
        raise StartupError(
            "the dashboard plugin needs pyramid_jinja2: pip install pyramid_jinja2 "
            "(make install does)"
        )
    settings = config.registry.settings
    if settings["sensorhub.dashboard.session_secret"] is None:
        return  # only while a tool collects the declarations (settings reference): never serves
    config.include("pyramid_jinja2")
    config.set_session_factory(access.session_factory(settings))
    config.include(".views")
    config.add_subscriber(_on_app_created, ApplicationCreated)


def _on_app_created(event: ApplicationCreated) -> None:
    """Every plugin is included by now, whatever their order: check what the pages need, then
    build the statements from the tables that exist."""
    registry = event.app.registry
    check_dependencies(registry)
    settings = registry.settings
    registry[QUERIES] = Queries(
        stale_after=settings["sensorhub.dashboard.stale_after"],
        count_cap=settings["sensorhub.dashboard.count_cap"],
        chart_events=settings["sensorhub.dashboard.chart_events"],
    )
    access.remember_expected_marker(registry)
