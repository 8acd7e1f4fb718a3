"""What the bench runs: servers (an app and its plugins) and scenarios (a request pattern).

Scenarios on the same server share its database, so the read scenario finds the events the
ingest scenarios wrote. The main server loads all four plugins; each variant reruns a scenario
on a server that lacks exactly one of them, so the difference is that plugin's cost.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

API = "/api/v1"


@dataclass(frozen=True)
class ServerSpec:
    name: str
    plugins: tuple[str, ...] | None  # None: a bare app, ``app`` (bench/hello.py)
    app: str = "hello"
    # Serves that server's database as its sensors (started after it): the bare-driver app.
    database_of: str | None = None


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


# The main server runs every plugin, as production does; each variant lacks exactly one, so the
# difference to the main server is that plugin's cost (its "tax").
ALL_PLUGINS = ("logging", "metrics", "auth", "ingest")
BARE_DRIVER_SERVER = "bare-driver"
STRUCTLOG_FAST_PATH = "bench.fast_path_logging"

SERVERS = (
    ServerSpec("hello", None),
    ServerSpec("pyramid", None, app="pyramid"),
    ServerSpec("sensorhub", ALL_PLUGINS),
    ServerSpec("sensorhub-logging", tuple(p for p in ALL_PLUGINS if p != "logging")),
    ServerSpec("sensorhub-metrics", tuple(p for p in ALL_PLUGINS if p != "metrics")),
    # The logging plugin's place taken by structlog's documented fast configuration (bench
    # only): what the library's own fast path costs, beside the logging plugin's tax.
    ServerSpec(
        "sensorhub-structlog-fast",
        tuple(STRUCTLOG_FAST_PATH if p == "logging" else p for p in ALL_PLUGINS),
    ),
    # The same storage work with no framework on the bare sqlite3 driver (bench/bare_driver.py),
    # on the main server's database: the floor under each endpoint's own cost.
    ServerSpec(BARE_DRIVER_SERVER, None, app="bare", database_of="sensorhub"),
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
        "pyramid_hello",
        "pyramid",
        "get",
        {"path": "/"},
        what="bare Pyramid app on the same server (one route, one JSON view, no tweens): the "
        "framework's floor under api_root",
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
        "ingest_batch1000",
        "sensorhub",
        "events",
        {"events": "1000"},
        events_per_request=1000,
        requires=("auth", "ingest"),
        # The ingest plugin's default sensorhub.ingest.max_events is 1000 and its 1 MiB body
        # limit holds ~7,000 bench events, so the batch fits the defaults the bench measures.
        what="POST a JSON array of 1000 events per request",
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
        "api_root-logging",
        "sensorhub-logging",
        "get",
        {"path": f"{API}/"},
        requires=("logging",),
        what="api_root without the logging plugin",
    ),
    Scenario(
        "ingest_single-logging",
        "sensorhub-logging",
        "events",
        {"events": "1"},
        events_per_request=1,
        requires=("logging", "auth", "ingest"),
        what="ingest_single without the logging plugin",
    ),
    Scenario(
        "api_root-structlog_fast",
        "sensorhub-structlog-fast",
        "get",
        {"path": f"{API}/"},
        requires=("logging",),
        what="api_root with one line per request through structlog's documented fast "
        "configuration instead of the logging plugin (bench/fast_path_logging.py)",
    ),
    Scenario(
        "api_root-metrics",
        "sensorhub-metrics",
        "get",
        {"path": f"{API}/"},
        requires=("metrics",),
        what="api_root without the metrics plugin",
    ),
    Scenario(
        "ingest_single-metrics",
        "sensorhub-metrics",
        "events",
        {"events": "1"},
        events_per_request=1,
        requires=("metrics", "auth", "ingest"),
        what="ingest_single without the metrics plugin",
    ),
)

# Each reruns on the bare-driver app as "bare_<name>": what the endpoint's storage work costs with
# nothing else, the floor under its target (SQLite only: the app speaks sqlite3).
BARE_DRIVER_SCENARIOS = (
    "sensor_self",
    "ingest_single",
    "ingest_batch100",
    "ingest_batch1000",
    "events_read",
)
SCENARIOS += tuple(
    dataclasses.replace(
        scenario,
        name=f"bare_{scenario.name}",
        server=BARE_DRIVER_SERVER,
        what=f"{scenario.name}'s storage work, framework-less on the bare sqlite3 driver",
    )
    for scenario in SCENARIOS
    if scenario.name in BARE_DRIVER_SCENARIOS
)

# The scaling pass reruns these on one and on two worker processes (hello: the transport's own
# scaling, the reference for the others).
SCALING_SCENARIOS = (
    "hello",
    "api_root",
    "sensor_self",
    "ingest_single",
    "ingest_batch100",
    "ingest_batch1000",
    "events_read",
)

# ... and these beside them: how far SQLite's one writer at a time lets writes scale, on the bare
# driver (floors, not targets).
SCALING_FLOORS = ("bare_ingest_batch100", "bare_ingest_batch1000")

# The stored pass runs these on a database pre-filled with --stored events and on an empty one.
STORED_SCENARIOS = ("ingest_single", "ingest_batch100")

# (what is measured, scenario without the cost, scenario with it): the cost is the ratio
# with/without, and a plugin's tax is without/with - 1.
OVERHEADS = (
    ("SensorHub's stack over bare Pyramid", "pyramid_hello", "api_root"),
    ("auth (sensor token + sensor read)", "api_root", "sensor_self"),
    ("logging plugin, no database", "api_root-logging", "api_root"),
    ("structlog fast-path line, no database", "api_root-logging", "api_root-structlog_fast"),
    ("logging plugin, single-event ingest", "ingest_single-logging", "ingest_single"),
    ("metrics plugin, no database", "api_root-metrics", "api_root"),
    ("metrics plugin, single-event ingest", "ingest_single-metrics", "ingest_single"),
)


def installed_plugins() -> set[str]:
    """Built-in plugins present in this checkout (an ``includeme`` in plugins/<name>/)."""
    found = set()
    for name in ("auth", "ingest", "logging", "metrics"):
        spec = importlib.util.find_spec(f"plugins.{name}")
        if spec and spec.origin and "def includeme" in Path(spec.origin).read_text():
            found.add(name)
    return found


def select(
    names: list[str] | None, installed: set[str], sqlite: bool = True
) -> tuple[list[Scenario], list[tuple]]:
    """The scenarios to run and, for the others, why they are skipped."""
    chosen, skipped = [], []
    for scenario in SCENARIOS:
        if names and scenario.name not in names and scenario.name != "hello":
            continue
        missing = [p for p in scenario.requires if p not in installed]
        if scenario.server == BARE_DRIVER_SERVER and not sqlite:
            skipped.append((scenario, "the bare-driver app speaks sqlite3 only (--database-url)"))
        elif missing:
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
    # A dotted name is a module of the bench itself (bench/fast_path_logging.py), always present.
    return [p for p in spec.plugins if p in installed or "." in p]
