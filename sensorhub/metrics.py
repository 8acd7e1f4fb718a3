"""The metrics contract: how any plugin records its own figures without knowing who counts them.

A plugin reads the current implementation with :func:`metrics_of` and calls::

    metrics_of(registry).count("ingest_commit_groups", outcome="succeeded")
    metrics_of(registry).observe("ingest_commit_group_duration_seconds", 0.004)

The core registers :class:`NoMetrics` (recording does nothing), so a plugin records the same
way whether or not a metrics plugin is loaded; a metrics plugin replaces it with
``config.set_metrics(impl)``. Shaped after Kinto's ``IMetricsService``.

Invariants, for callers and implementations alike:

- ``name`` is a figure name without a prefix or suffix (``ingest_commit_groups``, not
  ``sensorhub_ingest_commit_groups_total``); the implementation decides how it is exported.
  A figure keeps one kind (counted or observed) and one set of label names.
- Label values are bounded sets (outcomes, reason codes), never ids or paths.
- Recording never raises and never blocks on I/O: callers record on hot paths and in
  background threads (the ingest writer), from several threads at once.
- Read the implementation when recording (``metrics_of(registry)``), not once at include time:
  a metrics plugin may be included after the plugin that records.

Test hooks: ``registry[METRICS_KEY] = recorder`` swaps the implementation of a built app (any
object with ``count`` and ``observe``); :class:`NoMetrics` is what an app without a metrics
plugin uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    from pyramid.config import Configurator

METRICS_KEY = "sensorhub.metrics.recorder"


class Metrics(Protocol):
    """Records a plugin's figures (see the module docstring for the invariants)."""

    def count(self, name: str, value: float = 1, **labels: str) -> None:
        """Add ``value`` (>= 0) to the counter ``name``."""

    def observe(self, name: str, value: float, **labels: str) -> None:
        """Record one ``value`` of the distribution ``name`` (a duration, a size)."""


class NoMetrics:
    """The core's default: no metrics plugin, nothing recorded."""

    def count(self, name: str, value: float = 1, **labels: str) -> None:
        pass

    def observe(self, name: str, value: float, **labels: str) -> None:
        pass


def metrics_of(registry: Any) -> Metrics:
    """The app's current :class:`Metrics` (``registry`` is the Pyramid registry)."""
    return cast(Metrics, registry[METRICS_KEY])


def set_metrics(config: Configurator, metrics: Metrics) -> None:
    """The ``config.set_metrics(impl)`` directive: ``impl`` records every plugin's figures."""
    config.registry[METRICS_KEY] = metrics


def includeme(config: Configurator) -> None:
    config.registry[METRICS_KEY] = NoMetrics()
    config.add_directive("set_metrics", set_metrics)
