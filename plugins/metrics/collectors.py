"""USE: saturation figures read when Prometheus scrapes, never on the request path.

- The SQLAlchemy connection pool (``registry["dbengine"].pool``): size, overflow limit,
  connections checked out and overflow connections open. Pools without those figures
  (``StaticPool``, ``NullPool``) report nothing.
- Waitress: the app cannot see waitress's dispatcher on its own. When the server runner stores
  it as ``registry[sensorhub.server.DISPATCHER_KEY]``, its busy threads and queued requests
  are reported (``active_count`` and ``queue`` are waitress internals, read defensively).
  Without it, ``sensorhub_http_requests_in_flight`` (requests in the app = busy threads) over
  ``sensorhub_server_threads`` is the utilisation; the queue is not observable.
- Process (CPU, RSS, open fds, start time), Python platform and GC collectors.

These are per-process figures: in multi-process mode they are not served (prometheus-client
cannot merge custom collectors across workers).
"""

from __future__ import annotations

from prometheus_client import GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import GaugeMetricFamily

from sensorhub.server import DISPATCHER_KEY

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


class WaitressCollector:
    def __init__(self, registry):
        self.registry = registry

    def collect(self):
        dispatcher = self.registry.get(DISPATCHER_KEY)
        if dispatcher is None:
            return
        busy = getattr(dispatcher, "active_count", None)
        queue = getattr(dispatcher, "queue", None)
        if busy is not None:
            yield _gauge(
                "sensorhub_server_busy_threads",
                "Waitress threads running a request right now",
                busy,
            )
        if queue is not None:
            yield _gauge(
                "sensorhub_server_queued_requests",
                "Requests waitress has read and queued, waiting for a free thread",
                len(queue),
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
    metrics.registry.register(WaitressCollector(registry))
    ProcessCollector(registry=metrics.registry)
    PlatformCollector(registry=metrics.registry)
    GCCollector(registry=metrics.registry)
