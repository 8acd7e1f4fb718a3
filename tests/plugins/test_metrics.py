"""The metrics plugin, read through its own exposition, the way Prometheus reads it.

Every assertion parses ``GET /metrics`` with prometheus-client's parser. The views below (this
module is also the test app's plugin) fail, commit, roll back and publish domain events the
way real plugins do.
"""

from __future__ import annotations

import socket
import urllib.request

import pytest
import webtest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families
from pyramid_retry import mark_error_retryable
from sqlalchemy import insert

from plugins.metrics import metrics_of
from plugins.metrics.exposition import SERVER_KEY
from sensorhub.errors import problem
from sensorhub.events import (
    AuthenticationFailed,
    EventsIngested,
    RequestRateLimited,
    SensorAuthenticated,
    notify_after_commit,
    publish,
)
from sensorhub.lifecycle import close_app
from sensorhub.metrics import metrics_of as recorder_of
from sensorhub.models import Sensor
from sensorhub.settings import SettingError, StartupError
from tests.failing_commit import FailingCommit

ADMIN_TOKEN = "admin-token-for-tests-0123456789"
PLUGIN = "tests.plugins.test_metrics"

# What docs/runbook.md and the dashboard rely on: present from the first scrape.
DOCUMENTED_FAMILIES = {
    "sensorhub_http_requests",
    "sensorhub_http_request_duration_seconds",
    "sensorhub_http_requests_in_flight",
    "sensorhub_http_request_retries",
    "sensorhub_events_ingested",
    "sensorhub_ingest_batch_size_events",
    "sensorhub_sensor_authentications",
    "sensorhub_auth_failures",
    "sensorhub_rate_limited_requests",
    "sensorhub_ingest_commit_groups",
    "sensorhub_ingest_commit_group_requests",
    "sensorhub_ingest_commit_group_events",
    "sensorhub_ingest_commit_group_duration_seconds",
    "sensorhub_db_transaction_duration_seconds",
    "sensorhub_server_threads",
    "sensorhub_build_info",
    "sensorhub_db_pool_size",
    "sensorhub_db_pool_max_overflow",
    "sensorhub_db_pool_checked_out_connections",
    "sensorhub_db_pool_overflow_connections",
    "process_cpu_seconds",
    "process_resident_memory_bytes",
    "process_open_fds",
    "process_start_time_seconds",
}


# --- the test app's own plugin


def includeme(config) -> None:
    for name, view in [
        ("ok", ok),
        ("boom", boom),
        ("invalid", invalid),
        ("in_flight", in_flight),
        ("ingested", ingested),
        ("ingested_then_aborted", ingested_then_aborted),
        ("ingested_then_commit_fails", ingested_then_commit_fails),
        ("write", write),
        ("flaky", flaky),
    ]:
        config.add_route(f"test.{name}", f"/test/{name}")
        config.add_view(view, route_name=f"test.{name}", renderer="json")


def ok(request):
    return {}


def boom(request):
    raise RuntimeError("a bug")


def invalid(request):
    raise problem(422, "bad input")


def in_flight(request):
    return {
        "in_flight": metrics_of(request.registry).registry.get_sample_value(
            "sensorhub_http_requests_in_flight"
        )
    }


def an_ingestion(request) -> EventsIngested:
    return EventsIngested(
        request,
        "sen_test",
        batch_size=4,
        accepted=2,
        duplicates=1,
        rejected=1,
        rejected_by_reason={"bad_value": 1},
    )


def ingested(request):
    notify_after_commit(request, an_ingestion(request))
    return {}


def ingested_then_aborted(request):
    notify_after_commit(request, an_ingestion(request))
    raise problem(409, "conflict after the events were queued")


def ingested_then_commit_fails(request):
    notify_after_commit(request, an_ingestion(request))
    request.tm.get().join(FailingCommit(request.tm))
    return {}


def write(request):
    request.dbsession.execute(insert(Sensor), [{"id": "sen_metrics", "name": "metrics"}])
    return {}


def flaky(request):
    attempts = request.registry.setdefault("test.flaky_attempts", [])
    attempts.append(1)
    if len(attempts) % 2:
        error = RuntimeError("serialization failure")
        mark_error_retryable(error)
        raise error
    return {}


# --- fixtures and helpers


@pytest.fixture(scope="module")
def plugins():
    return ["metrics", PLUGIN]


@pytest.fixture(scope="module")
def app_settings():
    return {"retry.attempts": "2"}


def scrape(testapp, **headers) -> dict:
    """``{(sample name, frozenset(labels)): value}`` from the app's text exposition."""
    text = testapp.get("/metrics", headers=headers).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def series_names(samples: dict) -> set:
    return {key for key in samples if not key[0].endswith("_created")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- exposition


def test_metrics_are_served_in_the_prometheus_text_format_with_the_documented_series(testapp):
    response = testapp.get("/metrics")
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {family.name for family in text_string_to_metric_families(response.text)}
    assert DOCUMENTED_FAMILIES <= families
    assert (
        value(scrape(testapp), "sensorhub_build_info", version=__import__("sensorhub").__version__)
        == 1
    )


def test_a_scraper_asking_for_openmetrics_gets_openmetrics(testapp):
    response = testapp.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0; charset=utf-8"}
    )
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")
    assert "sensorhub_http_requests" in {family.name for family in parse_om(response.text)}


def test_the_metrics_endpoint_is_announced_at_the_api_root(testapp):
    assert testapp.get("/api/v1/").json["capabilities"]["metrics"]["url"] == "/metrics"


# --- RED


def test_n_requests_add_n_to_the_route_counter_and_its_latency_histogram(testapp):
    before = scrape(testapp)
    for _ in range(5):
        testapp.get("/test/ok")
    after = scrape(testapp)
    labels = {"method": "GET", "route": "test.ok"}
    assert (
        value(after, "sensorhub_http_requests_total", status="200", **labels)
        - value(before, "sensorhub_http_requests_total", status="200", **labels)
        == 5
    )
    assert (
        value(after, "sensorhub_http_request_duration_seconds_count", **labels)
        - value(before, "sensorhub_http_request_duration_seconds_count", **labels)
        == 5
    )


def test_errors_are_counted_with_the_status_the_exception_view_rendered(testapp):
    before = scrape(testapp)
    testapp.get("/test/boom", status=500)
    testapp.get("/test/invalid", status=422)
    after = scrape(testapp)
    for route, status in [("test.boom", "500"), ("test.invalid", "422")]:
        key = {"method": "GET", "route": route, "status": status}
        assert (
            value(after, "sensorhub_http_requests_total", **key)
            - value(before, "sensorhub_http_requests_total", **key)
            == 1
        )


def test_random_404_paths_never_create_series(testapp):
    testapp.get("/warm-up-the-unmatched-series", status=404)
    before = series_names(scrape(testapp))
    for path in ("/wp-admin.php", "/.env", "/a/b/c/d/e/f", "/%E2%98%83"):
        testapp.get(path, status=404)
    after_samples = scrape(testapp)
    # The only series the scrape itself may add is its own route's, already present here.
    assert series_names(after_samples) == before
    assert (
        value(
            after_samples,
            "sensorhub_http_requests_total",
            method="GET",
            route="unmatched",
            status="404",
        )
        >= 5
    )


def test_invented_http_methods_are_folded_into_other(testapp):
    unlinted = webtest.TestApp(testapp.app, extra_environ=testapp.extra_environ, lint=False)
    unlinted.request("/test/ok", method="BREW", status="*")
    samples = scrape(testapp)
    methods = {
        dict(labels)["method"]
        for name, labels in samples
        if name == "sensorhub_http_requests_total"
    }
    assert "BREW" not in methods and "other" in methods


def test_the_in_flight_gauge_counts_the_request_being_served_and_drops_after(testapp):
    assert testapp.get("/test/in_flight").json == {"in_flight": 1.0}
    assert (
        metrics_of(testapp.app.registry).registry.get_sample_value(
            "sensorhub_http_requests_in_flight"
        )
        == 0
    )


def test_a_retried_attempt_counts_as_a_retry_and_the_request_once(testapp):
    before = scrape(testapp)
    testapp.get("/test/flaky")
    after = scrape(testapp)
    key = {"method": "GET", "route": "test.flaky", "status": "200"}
    assert (
        value(after, "sensorhub_http_requests_total", **key)
        - value(before, "sensorhub_http_requests_total", **key)
        == 1
    )
    assert (
        value(after, "sensorhub_http_request_retries_total", route="test.flaky")
        - value(before, "sensorhub_http_request_retries_total", route="test.flaky")
        == 1
    )


def test_latency_buckets_come_from_the_settings(app_factory):
    app = webtest.TestApp(app_factory(["metrics"], {"sensorhub.metrics.buckets": "0.1 1 10"}))
    app.get("/healthz")
    bounds = {
        dict(labels)["le"]
        for name, labels in scrape(app)
        if name == "sensorhub_http_request_duration_seconds_bucket"
    }
    assert bounds == {"0.1", "1.0", "10.0", "+Inf"}


@pytest.mark.parametrize("raw", ["1 0.5", "fast", "", "0 1"])
def test_unusable_buckets_stop_start_up_naming_the_setting(app_factory, raw):
    with pytest.raises(SettingError, match="sensorhub.metrics.buckets.*ascending"):
        app_factory(["metrics"], {"sensorhub.metrics.buckets": raw})


def test_apps_built_in_one_process_each_count_only_their_own_requests(app_factory):
    first = webtest.TestApp(app_factory(["metrics"]))
    second = webtest.TestApp(app_factory(["metrics"]))
    for _ in range(3):
        first.get("/healthz")
    key = {"method": "GET", "route": "healthz", "status": "200"}
    assert value(scrape(first), "sensorhub_http_requests_total", **key) == 3
    assert value(scrape(second), "sensorhub_http_requests_total", **key) == 0


# --- domain metrics


def test_domain_events_move_their_counters(testapp):
    registry = testapp.app.registry
    before = scrape(testapp)
    publish(registry, SensorAuthenticated(None, "sen_1"))
    publish(registry, AuthenticationFailed(None, "revoked"))
    publish(registry, RequestRateLimited(None, "auth_failures"))
    recorder = recorder_of(registry)  # what the ingest writer records per group commit
    for outcome, requests, events, seconds in [("succeeded", 3, 120, 0.004), ("failed", 1, 1, 0.2)]:
        recorder.count("ingest_commit_groups", outcome=outcome)
        recorder.observe("ingest_commit_group_requests", requests)
        recorder.observe("ingest_commit_group_events", events)
        recorder.observe("ingest_commit_group_duration_seconds", seconds)
    after = scrape(testapp)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("sensorhub_sensor_authentications_total") == 1
    assert delta("sensorhub_auth_failures_total", reason="revoked") == 1
    assert delta("sensorhub_rate_limited_requests_total", scope="auth_failures") == 1
    assert delta("sensorhub_ingest_commit_groups_total", outcome="succeeded") == 1
    assert delta("sensorhub_ingest_commit_groups_total", outcome="failed") == 1
    assert delta("sensorhub_ingest_commit_group_events_sum") == 121
    assert delta("sensorhub_ingest_commit_group_requests_count") == 2
    assert delta("sensorhub_ingest_commit_group_duration_seconds_bucket", le="0.005") == 1


def test_a_plugins_own_figures_are_exported_under_the_sensorhub_prefix(testapp):
    recorder = recorder_of(testapp.app.registry)
    recorder.count("probe_widgets_made", 2, colour="blue")
    recorder.observe("probe_widget_seconds", 0.03)
    # Another kind or other label names than the first use: dropped, never raised.
    recorder.observe("probe_widgets_made", 1)
    recorder.count("probe_widgets_made", 1, shape="round")
    recorder.count("probe_widgets_made", -1, colour="blue")
    recorder.count("probe widgets", 1)  # not a Prometheus name
    recorder.count("http_requests", 1)  # clashes with a series this plugin exports
    samples = scrape(testapp)
    assert value(samples, "sensorhub_probe_widgets_made_total", colour="blue") == 2
    assert value(samples, "sensorhub_probe_widget_seconds_count") == 1
    assert value(samples, "sensorhub_probe_widget_seconds_bucket", le="0.05") == 1


def ingestion_deltas(before, after) -> dict:
    names = [
        ("sensorhub_events_ingested_total", {"outcome": outcome})
        for outcome in ("accepted", "duplicate", "rejected")
    ]
    names += [
        ("sensorhub_events_rejected_total", {"reason": "bad_value"}),
        ("sensorhub_ingest_batch_size_events_count", {}),
    ]
    return {
        name + str(sorted(labels.values())): value(after, name, **labels)
        - value(before, name, **labels)
        for name, labels in names
    }


def test_events_ingested_in_a_committed_request_are_counted_by_outcome(committing_testapp):
    before = scrape(committing_testapp)
    committing_testapp.get("/test/ingested")
    deltas = ingestion_deltas(before, scrape(committing_testapp))
    assert deltas == {
        "sensorhub_events_ingested_total['accepted']": 2,
        "sensorhub_events_ingested_total['duplicate']": 1,
        "sensorhub_events_ingested_total['rejected']": 1,
        "sensorhub_events_rejected_total['bad_value']": 1,
        "sensorhub_ingest_batch_size_events_count[]": 1,
    }


@pytest.mark.parametrize(
    "path, status",
    [("/test/ingested_then_aborted", 409), ("/test/ingested_then_commit_fails", 500)],
)
def test_a_rolled_back_request_moves_no_domain_counter(committing_testapp, path, status):
    before = scrape(committing_testapp)
    committing_testapp.get(path, status=status)
    after = scrape(committing_testapp)
    assert set(ingestion_deltas(before, after).values()) == {0}
    route = path.rsplit("/", 1)[1]
    assert (
        value(
            after,
            "sensorhub_http_requests_total",
            method="GET",
            route=f"test.{route}",
            status=str(status),
        )
        == value(
            before,
            "sensorhub_http_requests_total",
            method="GET",
            route=f"test.{route}",
            status=str(status),
        )
        + 1
    )


def test_database_transactions_are_timed_from_begin_to_commit(committing_testapp):
    before = scrape(committing_testapp)
    committing_testapp.get("/test/write")
    after = scrape(committing_testapp)
    name = "sensorhub_db_transaction_duration_seconds_count"
    assert value(after, name, outcome="commit") - value(before, name, outcome="commit") >= 1


def test_apps_sharing_an_engine_each_time_its_transactions_until_closed(app_factory):
    first, second = app_factory(["metrics"]), app_factory(["metrics"])
    engine = first.registry["dbengine"]
    assert second.registry["dbengine"] is engine
    name = "sensorhub_db_transaction_duration_seconds_count"

    def commits(app) -> float:
        return value(scrape(webtest.TestApp(app)), name, outcome="commit")

    before = commits(first), commits(second)
    with engine.begin():
        pass
    assert (commits(first), commits(second)) == (before[0] + 1, before[1] + 1)

    close_app(first.registry)
    with engine.begin():
        pass
    assert (commits(first), commits(second)) == (before[0] + 1, before[1] + 2)


# --- USE


def test_the_connection_pool_reports_connections_checked_out(testapp):
    engine = testapp.app.registry["dbengine"]
    idle = value(scrape(testapp), "sensorhub_db_pool_checked_out_connections")
    with engine.connect():
        held = value(scrape(testapp), "sensorhub_db_pool_checked_out_connections")
    assert held == idle + 1
    assert value(scrape(testapp), "sensorhub_db_pool_size") == engine.pool.size()


def test_the_in_flight_limit_is_reported_as_the_server_threads(testapp):
    registry = testapp.app.registry
    samples = scrape(testapp)
    assert value(samples, "sensorhub_server_threads") == registry.settings["sensorhub.threads"]


def test_process_metrics_are_exported(testapp):
    samples = scrape(testapp)
    assert value(samples, "process_resident_memory_bytes") > 0
    assert value(samples, "process_open_fds") > 0


# --- protection, separate port, multi-process misconfiguration


def test_a_metrics_token_protects_the_endpoint(app_factory):
    app = webtest.TestApp(app_factory(["metrics"], {"sensorhub.metrics.token": "scrape-me"}))
    refused = app.get("/metrics", status=401)
    assert refused.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert refused.content_type == "application/problem+json"
    app.get("/metrics", headers={"Authorization": "Bearer wrong"}, status=401)
    assert (
        "sensorhub_http_requests_total"
        in app.get("/metrics", headers={"Authorization": "Bearer scrape-me"}).text
    )


def test_scraping_with_the_metrics_token_is_not_an_authentication_failure(app_factory):
    # pyramid_tm's annotate_user would otherwise hand every request's bearer token to the auth
    # plugin, which counts the scraper's token as a refused credential (and feeds its guard).
    app = webtest.TestApp(
        app_factory(
            ["auth", "metrics"],
            {
                "sensorhub.metrics.token": "scrape-me",
                "sensorhub.auth.admin_token": ADMIN_TOKEN,
                "tm.annotate_user": "false",
            },
        )
    )
    for _ in range(3):
        samples = scrape(app, Authorization="Bearer scrape-me")
    assert (
        sum(v for (name, _), v in samples.items() if name == "sensorhub_auth_failures_total") == 0
    )


def test_metrics_can_move_to_their_own_loopback_port(app_factory):
    port = free_port()
    app = app_factory(["metrics"], {"sensorhub.metrics.port": str(port)})
    server, thread = app.registry[SERVER_KEY]
    try:
        webtest.TestApp(app).get("/metrics", status=404)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            assert b"sensorhub_build_info" in answer.read()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_multiprocess_dir_the_process_did_not_start_with_stops_start_up(app_factory, tmp_path):
    with pytest.raises(StartupError, match="PROMETHEUS_MULTIPROC_DIR.*before Python starts"):
        app_factory(["metrics"], environ={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)})
