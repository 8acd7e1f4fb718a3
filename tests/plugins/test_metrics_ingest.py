"""Domain metrics from real traffic: sensors authenticate and post events through the auth and
ingest plugins (group commit on, as in production), and the counters say what happened."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

ADMIN = {"Authorization": "Bearer admin-token-for-tests-0123456789"}


@pytest.fixture(scope="module")
def plugins():
    return ["auth", "ingest", "metrics"]


@pytest.fixture(scope="module")
def app_settings():
    return {
        "sensorhub.auth.admin_token": "admin-token-for-tests-0123456789",
        "sensorhub.ingest.group_commit": "true",
        "tm.annotate_user": "false",
    }


def scrape(testapp) -> dict:
    text = testapp.get("/metrics").text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def delta(before: dict, after: dict, name: str, **labels) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


@pytest.fixture
def sensor_headers(committing_testapp):
    created = committing_testapp.post_json(
        "/api/v1/sensors", {"name": "metered"}, headers=ADMIN, status=201
    ).json
    return {"Authorization": f"Bearer {created['token']}"}


def test_posted_events_are_counted_by_outcome_after_their_group_commit(
    committing_testapp, sensor_headers
):
    before = scrape(committing_testapp)
    batch = [{"type": "temperature", "value": 20 + n, "eventId": f"e-{n}"} for n in range(3)]
    committing_testapp.post_json("/api/v1/events", batch, headers=sensor_headers, status=201)
    committing_testapp.post_json(
        "/api/v1/events", batch[:1], headers=sensor_headers, status=201
    )  # a resend: one duplicate
    after = scrape(committing_testapp)
    assert delta(before, after, "sensorhub_events_ingested_total", outcome="accepted") == 3
    assert delta(before, after, "sensorhub_events_ingested_total", outcome="duplicate") == 1
    assert delta(before, after, "sensorhub_ingest_batch_size_events_count") == 2
    assert delta(before, after, "sensorhub_ingest_batch_size_events_sum") == 4
    assert delta(before, after, "sensorhub_ingest_commit_groups_total", outcome="succeeded") >= 1
    assert delta(before, after, "sensorhub_sensor_authentications_total") == 2
    assert (
        delta(
            before,
            after,
            "sensorhub_http_requests_total",
            method="POST",
            route="ingest.events",
            status="201",
        )
        == 2
    )


def test_a_refused_batch_counts_its_rejections_by_reason(committing_testapp, sensor_headers):
    before = scrape(committing_testapp)
    committing_testapp.post_json(
        "/api/v1/events",
        [{"type": "ok", "value": 1}, {"value": 2}],
        headers=sensor_headers,
        status=422,
    )
    after = scrape(committing_testapp)
    assert delta(before, after, "sensorhub_events_ingested_total", outcome="rejected") == 1
    assert delta(before, after, "sensorhub_events_ingested_total", outcome="accepted") == 0
    assert delta(before, after, "sensorhub_events_rejected_total", reason="missing_field") == 1


def test_a_refused_token_is_counted_by_reason(committing_testapp):
    before = scrape(committing_testapp)
    committing_testapp.post_json(
        "/api/v1/events", [], status=401, headers={"Authorization": "Bearer shs_" + "x" * 20}
    )
    committing_testapp.post_json("/api/v1/events", [], status=401)
    after = scrape(committing_testapp)
    assert delta(before, after, "sensorhub_auth_failures_total", reason="malformed") == 1
    assert delta(before, after, "sensorhub_auth_failures_total", reason="missing") == 1
