"""USE: saturation figures read when Prometheus scrapes, never on the request path.

- The SQLAlchemy connection pool (``registry["dbengine"].pool``): size, overflow limit,
  connections checked out and overflow connections open. Pools without those figures
  (``StaticPool``, ``NullPool``) report nothing.
- Utilisation is ``sensorhub_http_requests_in_flight`` over ``sensorhub_server_threads`` (the
  in-flight limit of :mod:`sensorhub.admission`); requests beyond it are shed as 503s.
- Process (CPU, RSS, open fds, start time), Python platform and GC collectors.

These are per-process figures: in multi-process mode they are not served (prometheus-client
cannot merge custom collectors across workers).
"""

from __future__ import annotations

from prometheus_client import GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import GaugeMetricFamily

from .metrics import metrics_of


class PoolCollector:
    def __init__(self, engine):
        self.engine = engine

    def collect(self):
        pool = self.engine.pool
        try:
            size, checked_out, overflow = pool.size(), pool.checkedout(), pool.overflow()
        except AttributeError:
            return
        max_overflow = getattr(pool, "_max_overflow", None)
        yield _gauge("sensorhub_db_pool_size", "Connections the pool keeps open", size)
        if max_overflow is not None:
            yield _gauge(
                "sensorhub_db_pool_max_overflow",
                "Extra connections the pool may open under load (-1: unlimited)",
                max_overflow,
            )
        yield _gauge(
            "sensorhub_db_pool_checked_out_connections",
            "Connections in use by requests or the writer right now",
            checked_out,
        )
        # QueuePool counts overflow from -pool_size; only the positive part is open connections.
        yield _gauge(
            "sensorhub_db_pool_overflow_connections",
            "Connections open above the pool size right now",
            max(0, overflow),
        )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def includeme(config) -> None:
    registry = config.registry
    metrics = metrics_of(registry)
    if registry.get("sensorhub.process", "server") == "server":
        metrics.server_threads.set(registry.settings.get("sensorhub.threads", 0))
    if metrics.multiprocess:
        return
    metrics.registry.register(PoolCollector(registry["dbengine"]))
    ProcessCollector(registry=metrics.registry)
    PlatformCollector(registry=metrics.registry)
    GCCollector(registry=metrics.registry)
