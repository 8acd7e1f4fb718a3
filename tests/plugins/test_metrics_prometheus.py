"""The shipped rules and a real Prometheus scraping a real SensorHub.

``promtool`` checks and unit-tests ``deploy/prometheus/``; then SensorHub runs on waitress and
Debian's ``prometheus`` scrapes it every second (both on 127.0.0.1, in temporary directories),
and the RED series and recording rules are read back through Prometheus's HTTP API.

``make test`` installs the binaries; without them these tests fail, saying how to install them.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import binary

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "prometheus"
PROMTOOL, PROMETHEUS = binary("promtool"), binary("prometheus")

# SensorHub with the metrics plugin on waitress, on a port of its own choosing.
APP_SERVER = textwrap.dedent("""
    import sys
    import waitress
    from sensorhub import make_app, migrations
    app = make_app({"sensorhub.database.url": sys.argv[1], "sensorhub.plugins": "metrics",
                    "sensorhub.threads": "4"}, environ={})
    migrations.upgrade(app.registry["dbengine"])
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
    sys.stdout.write(f"{server.effective_port}\\n")
    sys.stdout.flush()
    server.run()
""")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def promtool(*args: str) -> subprocess.CompletedProcess:
    assert PROMTOOL, "promtool is not installed (Debian: apt install prometheus)"
    return subprocess.run(
        [PROMTOOL, *args], cwd=DEPLOY, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.prometheus
def test_promtool_accepts_the_rules_and_the_local_config():
    for args in (["check", "rules", "rules.yml"], ["check", "config", "prometheus.yml"]):
        result = promtool(*args)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.prometheus
def test_each_alert_fires_and_stays_quiet_in_promtools_unit_tests():
    result = promtool("test", "rules", "rules_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def get(url: str, timeout: float = 5) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 (loopback)
        return answer.read()


def wait_for(check, what: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except OSError as error:
            result, last = None, error
        if result:
            return result
        time.sleep(0.25)
    raise AssertionError(f"{what}: not seen within {timeout} s (last error: {last})")


@pytest.fixture
def sensorhub_server(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-c", APP_SERVER, f"sqlite:///{tmp_path / 'app.sqlite'}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        port = int(process.stdout.readline())
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)
        process.stdout.close()


@pytest.fixture
def prometheus(tmp_path, sensorhub_server):
    assert PROMETHEUS, "prometheus is not installed (Debian: apt install prometheus)"
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(
            {  # JSON is YAML
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(DEPLOY / "rules.yml")],
                "scrape_configs": [
                    {"job_name": "sensorhub", "static_configs": [{"targets": [sensorhub_server]}]}
                ],
            }
        )
    )
    address = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address={address}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(
            lambda: process.poll() is None and get(f"http://{address}/-/ready"), "prometheus ready"
        )
        yield f"http://{address}", f"http://{sensorhub_server}"
    finally:
        process.terminate()
        process.wait(15)


def query(prometheus_url: str, promql: str) -> list:
    url = f"{prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    answer = json.loads(get(url))
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


@pytest.mark.prometheus
def test_a_real_prometheus_scrapes_the_red_series_and_evaluates_the_rules(prometheus):
    prometheus_url, app_url = prometheus
    for _ in range(5):
        get(f"{app_url}/healthz")
    for path in ("/no-such-page", "/wp-login.php"):
        try:
            get(f"{app_url}{path}")
        except urllib.error.HTTPError as error:
            assert error.code == 404

    healthz = wait_for(
        lambda: query(
            prometheus_url,
            'sensorhub_http_requests_total{job="sensorhub",route="healthz",status="200"} >= 5',
        ),
        "5 healthz requests in Prometheus",
    )
    assert healthz[0]["metric"]["method"] == "GET"
    unmatched = query(prometheus_url, 'sensorhub_http_requests_total{route="unmatched"}')
    assert [series["metric"]["status"] for series in unmatched] == ["404"]
    assert wait_for(
        lambda: query(
            prometheus_url, 'sensorhub_http_request_duration_seconds_count{route="healthz"}'
        ),
        "the latency histogram",
    )
    assert query(prometheus_url, 'up{job="sensorhub"} == 1')
    assert query(prometheus_url, "sensorhub_server_threads == 4")  # the in-flight limit
    assert wait_for(
        lambda: query(
            prometheus_url, 'job_route_status:sensorhub_http_requests:rate5m{route="healthz"}'
        ),
        "a recording rule evaluated on scraped data",
    )
    firing = query(prometheus_url, 'ALERTS{alertstate="firing"}')
    assert firing == []  # a healthy instance trips nothing
