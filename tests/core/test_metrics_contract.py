"""The metrics contract: any plugin records its own figures through ``metrics_of(registry)``;
without a metrics plugin recording does nothing, and a metrics plugin replaces the recorder."""

from __future__ import annotations

import sys
import types

import pytest

from sensorhub.metrics import Metrics, NoMetrics, metrics_of


@pytest.fixture(scope="module")
def plugins():
    return []


def test_without_a_metrics_plugin_recording_does_nothing_and_raises_nothing(app):
    recorder = metrics_of(app.registry)
    assert isinstance(recorder, NoMetrics)
    recorder.count("ingest_commit_groups", outcome="succeeded")
    recorder.count("anything_at_all", 3, any_label="value")
    recorder.observe("ingest_commit_group_duration_seconds", 0.01)


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, float]] = []

    def count(self, name: str, value: float = 1, **labels: str) -> None:
        self.seen.append((name, value))

    def observe(self, name: str, value: float, **labels: str) -> None:
        self.seen.append((name, value))


def test_a_plugin_replaces_the_recorder_with_the_set_metrics_directive(app_factory, monkeypatch):
    recorder = Recorder()
    plugin = types.ModuleType("metricstests.probe")
    plugin.includeme = lambda config: config.set_metrics(recorder)
    parent = types.ModuleType("metricstests")
    parent.probe = plugin
    monkeypatch.setitem(sys.modules, "metricstests", parent)
    monkeypatch.setitem(sys.modules, "metricstests.probe", plugin)
    app = app_factory(plugins=["metricstests.probe"])
    contract: Metrics = metrics_of(app.registry)
    assert contract is recorder
    contract.count("probe_figures", 2, outcome="ok")
    contract.observe("probe_seconds", 0.5)
    assert recorder.seen == [("probe_figures", 2), ("probe_seconds", 0.5)]
