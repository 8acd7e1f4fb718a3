"""The metrics plugin: Prometheus RED/USE and domain metrics for SensorHub.

Answers an operator's four questions (how busy, how many errors, how slow, how saturated):

- ``GET /metrics`` (``sensorhub.metrics.path``): Prometheus text format, OpenMetrics when the
  scraper's ``Accept`` asks for it. Optionally protected by a bearer token
  (``sensorhub.metrics.token``) or moved to its own loopback port (``sensorhub.metrics.port``).
- RED per route (``red.py``): one tween over pyramid_tm and the exception view, labelled by
  method, route *name* (``unmatched`` when no route matched, so random paths never make series)
  and status code; an in-flight gauge; buckets from ``sensorhub.metrics.buckets``.
- Domain metrics (``domain.py``) from the core's domain events, counted only after commit, and
  the time transactions stay open (SQLAlchemy engine events).
- Plugins' own figures (``recorder.py``): the core's metrics contract (``sensorhub.metrics``),
  e.g. the ingest writer's group commits, exported as ``sensorhub_<name>``.
- USE (``collectors.py``): the DB connection pool, process metrics, ``sensorhub_build_info``;
  saturation is the in-flight gauge against ``sensorhub_server_threads`` (the admission limit),
  and load shed shows as 503s in the RED series.
- Pushgateway (``push.py``): ``sensorhub-admin`` commands push duration, outcome and rows when
  ``SENSORHUB_PUSHGATEWAY_URL`` is set; a silent no-op otherwise.

Every app owns its ``CollectorRegistry`` (``registry["sensorhub.metrics"]``), so tests can build
many apps in one process without "Duplicated timeseries" errors.

Multi-process servers (``sensorhub-serve``, i.e. gunicorn): the launcher sets
``PROMETHEUS_MULTIPROC_DIR`` to an empty directory before the workers start (prometheus-client
reads it when it is imported, so the ini cannot set it). Metric values then live in
memory-mapped files and ``/metrics`` builds a fresh registry with a ``MultiProcessCollector`` on
each scrape; gauges declare how workers' values combine (``multiprocess_mode``). Custom
collectors (pool, process) cannot be aggregated across processes and are left out in that mode.
``pserve`` (waitress) is one process: the plain registry is right there.
"""

from __future__ import annotations

from sensorhub.settings import Setting, as_duration, as_int, as_str

from .exposition import includeme as _include_exposition
from .metrics import AppMetrics, as_buckets, metrics_of
from .recorder import PrometheusMetrics
from .settings import check_multiprocess

__all__ = ["AppMetrics", "includeme", "metrics_of"]

DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

SETTINGS = (
    Setting(
        "sensorhub.metrics.path",
        as_str,
        "/metrics",
        "URL path of the Prometheus exposition on the main port",
    ),
    Setting(
        "sensorhub.metrics.buckets",
        as_buckets,
        DEFAULT_BUCKETS,
        "request latency histogram buckets in seconds, ascending, space-separated",
    ),
    Setting(
        "sensorhub.metrics.token",
        as_str,
        "",
        "if set, /metrics requires 'Authorization: Bearer <token>' (empty: open)",
        secret=True,
    ),
    Setting(
        "sensorhub.metrics.port",
        as_int(0, 65535),
        0,
        "serve the metrics on this separate port instead of the main one (0: off)",
    ),
    Setting("sensorhub.metrics.host", as_str, "127.0.0.1", "address of the separate metrics port"),
    Setting(
        "sensorhub.metrics.multiproc_dir",
        as_str,
        "",
        "multi-process mode: the directory of the workers' metric files; must be set in "
        "the process environment by the launcher, before start",
        env="PROMETHEUS_MULTIPROC_DIR",
    ),
    Setting(
        "sensorhub.metrics.pushgateway_url",
        as_str,
        "",
        "admin commands push their metrics to this Pushgateway (empty: no push)",
        env="SENSORHUB_PUSHGATEWAY_URL",
    ),
    Setting(
        "sensorhub.metrics.pushgateway_timeout",
        as_duration,
        5.0,
        "how long an admin command waits for the Pushgateway",
    ),
)


def includeme(config) -> None:
    config.declare_settings(*SETTINGS)
    settings = config.registry.settings
    multiproc_dir = check_multiprocess(settings["sensorhub.metrics.multiproc_dir"])
    metrics = AppMetrics(settings["sensorhub.metrics.buckets"], multiprocess=bool(multiproc_dir))
    config.registry["sensorhub.metrics"] = metrics
    # Every plugin's own figures (the core's metrics contract) land on the same registry.
    config.set_metrics(PrometheusMetrics(metrics, settings["sensorhub.metrics.buckets"]))
    config.include(".collectors")
    config.include(".red")
    config.include(".domain")
    config.include(".push")
    _include_exposition(config, multiproc_dir)
