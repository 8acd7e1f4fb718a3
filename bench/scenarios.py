"""What the bench runs: servers (an app and its plugins) and scenarios (a request pattern).

Scenarios on the same server share its database, so the read scenario finds the events the
ingest scenarios wrote. The plugin variants rerun a scenario on a server that differs only by
one plugin, so the difference is that plugin's cost.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

API = "/api/v1"


@dataclass(frozen=True)
class ServerSpec:
    name: str
    plugins: tuple[str, ...] | None  # None: the bare WSGI hello app


@dataclass(frozen=True)
class Scenario:
    name: str
    server: str
    script: str  # bench/lua/<script>.lua
    args: dict = field(default_factory=dict)
    events_per_request: int = 0  # > 0: an ingest scenario, checked for lost/extra events
    requires: tuple[str, ...] = ()  # plugins that must be installed
    what: str = ""

    @property
    def path(self) -> str:
        return self.args.get("path", "/api/v1/events")


SERVERS = (
    ServerSpec("hello", None),
    ServerSpec("sensorhub", ("auth", "ingest")),
    ServerSpec("sensorhub+logging", ("logging", "auth", "ingest")),
    ServerSpec("sensorhub+metrics", ("metrics", "auth", "ingest")),
)

SCENARIOS = (
    Scenario(
        "hello",
        "hello",
        "get",
        {"path": "/"},
        what="bare WSGI app on the same server: the transport limit",
    ),
    Scenario(
        "api_root",
        "sensorhub",
        "get",
        {"path": f"{API}/"},
        what="GET /api/v1/ unauthenticated: Pyramid, tweens, renderer; no database",
    ),
    Scenario(
        "sensor_self",
        "sensorhub",
        "get",
        {"path": f"{API}/sensor?sensorId={{sensorId}}", "auth": "1"},
        requires=("auth",),
        what="GET /api/v1/sensor as a sensor: api_root + bearer-token auth + one read",
    ),
    Scenario(
        "ingest_single",
        "sensorhub",
        "events",
        {"events": "1"},
        events_per_request=1,
        requires=("auth", "ingest"),
        what="POST one event per request, round robin over the sensors",
    ),
    Scenario(
        "ingest_batch100",
        "sensorhub",
        "events",
        {"events": "100"},
        events_per_request=100,
        requires=("auth", "ingest"),
        what="POST a JSON array of 100 events per request",
    ),
    Scenario(
        "events_read",
        "sensorhub",
        "get",
        {"path": f"{API}/events?limit=100", "auth": "1"},
        requires=("auth", "ingest"),
        what="GET /api/v1/events?limit=100, the calling sensor's newest events",
    ),
    Scenario(
        "api_root+logging",
        "sensorhub+logging",
        "get",
        {"path": f"{API}/"},
        requires=("logging",),
        what="api_root with the logging plugin (JSON to a file)",
    ),
    Scenario(
        "ingest_single+logging",
        "sensorhub+logging",
        "events",
        {"events": "1"},
        events_per_request=1,
        requires=("logging", "auth", "ingest"),
        what="ingest_single with the logging plugin",
    ),
    Scenario(
        "api_root+metrics",
        "sensorhub+metrics",
        "get",
        {"path": f"{API}/"},
        requires=("metrics",),
        what="api_root with the metrics plugin",
    ),
    Scenario(
        "ingest_single+metrics",
        "sensorhub+metrics",
        "events",
        {"events": "1"},
        events_per_request=1,
        requires=("metrics", "auth", "ingest"),
        what="ingest_single with the metrics plugin",
    ),
)

# (what is measured, baseline scenario, scenario with the extra cost)
OVERHEADS = (
    ("auth (sensor token + sensor read)", "api_root", "sensor_self"),
    ("logging plugin, no database", "api_root", "api_root+logging"),
    ("logging plugin, single-event ingest", "ingest_single", "ingest_single+logging"),
    ("metrics plugin, no database", "api_root", "api_root+metrics"),
    ("metrics plugin, single-event ingest", "ingest_single", "ingest_single+metrics"),
)


def installed_plugins() -> set[str]:
    """Built-in plugins present in this checkout (an ``includeme`` in plugins/<name>/)."""
    found = set()
    for name in ("auth", "ingest", "logging", "metrics"):
        spec = importlib.util.find_spec(f"plugins.{name}")
        if spec and spec.origin and "def includeme" in Path(spec.origin).read_text():
            found.add(name)
    return found


def select(names: list[str] | None, installed: set[str]) -> tuple[list[Scenario], list[tuple]]:
    """The scenarios to run and, for the others, why they are skipped."""
    chosen, skipped = [], []
    for scenario in SCENARIOS:
        if names and scenario.name not in names and scenario.name != "hello":
            continue
        missing = [p for p in scenario.requires if p not in installed]
        if missing:
            skipped.append(
                (
                    scenario,
                    f"plugin {', '.join(missing)} not installed "
                    f"(no includeme in plugins/{missing[0]}/)",
                )
            )
        else:
            chosen.append(scenario)
    return chosen, skipped


def server_plugins(spec: ServerSpec, installed: set[str]) -> list[str] | None:
    if spec.plugins is None:
        return None
    return [p for p in spec.plugins if p in installed]
