"""The dashboard and the rules shipped under deploy/ only use series the app really exports.

Every PromQL expression in ``deploy/grafana/sensorhub.json`` and ``deploy/prometheus/rules.yml``
is reduced to the metric names it references; each must be in the exposition of an app that
has seen every kind of domain event once, or be a recording rule, or a series Prometheus makes
itself. Every alert has a dashboard panel and a runbook section.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import webtest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from sensorhub.events import (
    AuthenticationFailed,
    EventsIngested,
    RequestRateLimited,
    SensorAuthenticated,
    publish,
)
from sensorhub.metrics import metrics_of as recorder_of

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "sensorhub.json"
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
RUNBOOK = ROOT / "docs" / "runbook.md"
PROMETHEUS_OWN_SERIES = {
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "ALERTS",
    "ALERTS_FOR_STATE",
}
SUFFIXES = ("", "_total", "_bucket", "_count", "_sum", "_created")
KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "group_left", "group_right"}
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, labels or keywords)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values, $variables inside them
    expr = re.sub(r"\{[^}]*\}", " ", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", " ", expr)  # ranges, $__rate_interval
    expr = _GROUPING.sub(" ", expr)
    names = set()
    for match in _IDENTIFIER.finditer(expr):
        rest = expr[match.end() :].lstrip()
        if rest.startswith("(") or match.group() in KEYWORDS:
            continue  # a function or aggregation
        if match.start() > 0 and (
            expr[match.start() - 1].isdigit() or expr[match.start() - 1] == "."
        ):
            continue  # the exponent or unit of a number
        names.add(match.group())
    return names


def dashboard_expressions() -> dict[str, str]:
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = {}
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expressions[f"panel {panel['title']!r} {target['refId']}"] = target["expr"]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            found = re.fullmatch(r"label_values\((\w+),\s*\w+\)", query["query"])
            assert found, f"unexpected variable query {query['query']!r}"
            expressions[f"variable {variable['name']}"] = found.group(1)
    return expressions


def rules() -> list[dict]:
    return [
        rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    ]


def rule_expressions() -> dict[str, str]:
    return {rule.get("record") or rule["alert"]: rule["expr"] for rule in rules()}


@pytest.fixture(scope="module")
def plugins():
    return ["metrics"]


@pytest.fixture(scope="module")
def exported_names(app) -> set[str]:
    """Family and sample names of an app that has seen every domain event once."""
    registry = app.registry
    for event in (
        EventsIngested(None, "sen_1", 3, 1, 1, 1, {"invalid_field": 1}),
        SensorAuthenticated(None, "sen_1"),
        AuthenticationFailed(None, "unknown"),
        RequestRateLimited(None, "auth_failures"),
    ):
        publish(registry, event)
    record_one_commit_group(registry)
    testapp = webtest.TestApp(app)
    testapp.get("/healthz")
    text = testapp.get("/metrics").text
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    return names


def known(name: str, exported: set[str], recorded: set[str]) -> bool:
    return (
        name in recorded
        or name in PROMETHEUS_OWN_SERIES
        or any(
            name.endswith(suffix) and name[: len(name) - len(suffix)] in exported
            for suffix in SUFFIXES
            if suffix
        )
        or name in exported
    )


@pytest.mark.parametrize("source", ["dashboard", "rules"])
def test_every_promql_expression_references_only_series_that_exist(exported_names, source):
    expressions = dashboard_expressions() if source == "dashboard" else rule_expressions()
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    assert expressions
    unknown = {
        where: sorted(
            name for name in metric_names(expr) if not known(name, exported_names, recorded)
        )
        for where, expr in expressions.items()
    }
    assert {where: names for where, names in unknown.items() if names} == {}


def test_the_name_check_catches_a_misspelt_metric(exported_names):
    names = metric_names(
        'sum by (route) (rate(sensorhub_http_request_total{job="$job"}'
        "[$__rate_interval])) / on (job) group_left sensorhub_build_info"
    )
    assert names == {"sensorhub_http_request_total", "sensorhub_build_info"}
    assert not known("sensorhub_http_request_total", exported_names, set())
    assert known("sensorhub_http_requests_total", exported_names, set())


def test_every_alert_has_a_dashboard_panel_and_a_runbook_section():
    alerts = [rule for rule in rules() if "alert" in rule]
    panels = {panel["title"] for panel in json.loads(DASHBOARD.read_text())["panels"]}
    headings = {
        line[4:].strip() for line in RUNBOOK.read_text().splitlines() if line.startswith("### ")
    }
    assert len(alerts) == 5
    for alert in alerts:
        name = alert["alert"]
        assert name in panels, f"no dashboard panel titled {name}"
        assert name in headings, f"no '### {name}' section in docs/runbook.md"
        assert alert["annotations"]["runbook_url"] == f"docs/runbook.md#{name.lower()}"
        assert {"summary", "description"} <= set(alert["annotations"])


def test_the_dashboard_has_a_red_an_ingestion_and_a_saturation_row():
    rows = [
        panel["title"]
        for panel in json.loads(DASHBOARD.read_text())["panels"]
        if panel["type"] == "row"
    ]
    assert [title.split(":")[0].split(" ")[0] for title in rows] == [
        "RED",
        "Ingestion",
        "Saturation",
        "Alerts",
    ]


def record_one_commit_group(registry) -> None:
    """What the ingest writer records after a group commit (through the metrics contract)."""
    recorder = recorder_of(registry)
    recorder.count("ingest_commit_groups", outcome="succeeded")
    recorder.observe("ingest_commit_group_requests", 2)
    recorder.observe("ingest_commit_group_events", 3)
    recorder.observe("ingest_commit_group_duration_seconds", 0.01)
