"""The core's metrics contract (:mod:`sensorhub.metrics`), implemented with prometheus-client.

A figure a plugin records is exported as ``sensorhub_<name>`` (``_total`` for counters, the
histogram's ``_bucket``/``_sum``/``_count``). Figures this plugin already declares (with their
help text, label values created at zero and chosen buckets, in :class:`.metrics.AppMetrics`)
are recorded into those; any other name becomes a metric on its first use, on the app's own
registry: a counter, or a histogram with the request-latency buckets
(``sensorhub.metrics.buckets``), labelled by the label names of that first use.

Recording never raises (the contract's invariant): a figure used with another kind or other
label names than its first use, a negative count or a name Prometheus refuses is dropped and
logged once.
"""

from __future__ import annotations

import threading

import structlog
from prometheus_client import Counter, Histogram

from .metrics import AppMetrics

log = structlog.get_logger(__name__)


class PrometheusMetrics:
    """:class:`sensorhub.metrics.Metrics` on one app's :class:`.metrics.AppMetrics`."""

    def __init__(self, metrics: AppMetrics, buckets: tuple[float, ...]):
        self._app = metrics
        self._buckets = buckets
        self._lock = threading.Lock()
        self._refused: set[str] = set()
        self._counters: dict[str, Counter] = {"ingest_commit_groups": metrics.commit_groups}
        self._label_names: dict[str, tuple[str, ...]] = {"ingest_commit_groups": ("outcome",)}
        self._histograms: dict[str, Histogram] = {
            "ingest_commit_group_requests": metrics.commit_group_requests,
            "ingest_commit_group_events": metrics.commit_group_events,
            "ingest_commit_group_duration_seconds": metrics.commit_group_duration,
        }

    def count(self, name: str, value: float = 1, **labels: str) -> None:
        if value < 0:
            self._refuse(name, "a negative count")
            return
        counter = self._counters.get(name) or self._declare(name, Counter, labels)
        if counter is not None and self._fits(name, labels):
            (counter.labels(**labels) if labels else counter).inc(value)

    def observe(self, name: str, value: float, **labels: str) -> None:
        histogram = self._histograms.get(name) or self._declare(name, Histogram, labels)
        if histogram is not None and self._fits(name, labels):
            (histogram.labels(**labels) if labels else histogram).observe(value)

    def _declare(self, name, kind, labels):
        with self._lock:
            mine = self._counters if kind is Counter else self._histograms
            other = self._histograms if kind is Counter else self._counters
            if name in mine:
                return mine[name]
            if name in other:
                self._refuse(name, "recorded as another kind")
                return None
            options = {"buckets": self._buckets} if kind is Histogram else {}
            try:
                metric = kind(
                    f"sensorhub_{name}",
                    f"{name} (recorded by a plugin)",
                    sorted(labels),
                    registry=self._app.registry,
                    **options,
                )
            except ValueError as error:  # an invalid name, or one this plugin already exports
                self._refuse(name, str(error))
                return None
            mine[name] = metric
            self._label_names[name] = tuple(sorted(labels))
            return metric

    def _fits(self, name: str, labels: dict[str, str]) -> bool:
        if tuple(sorted(labels)) == self._label_names.get(name, ()):
            return True
        self._refuse(name, "recorded with other label names")
        return False

    def _refuse(self, name: str, why: str) -> None:
        if name not in self._refused:
            self._refused.add(name)
            log.warning("metric_refused", figure=name, reason=why)
