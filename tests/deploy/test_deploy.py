"""Build once, deploy many, for real: release N is deployed by the playbook to two app nodes
behind nginx on one PostgreSQL; N+1 replaces it node by node while a client keeps posting;
a broken N+2 is rolled back by the deploy itself; the same deploy run again changes nothing.

The tests run in file order and share one environment (``deployment``): each step starts from
where the one before left it. Figures go to build/deploy-test/.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import ROOT, binary

from .conftest import NODES, http_request, play_window

pytestmark = pytest.mark.deploy

# Three releases of the same tree, told apart by a local version label (deploy/release.py).
BASE = "0.1.0"
N, N_PLUS_1, N_PLUS_2 = (f"{BASE}+deploytest.{n}" for n in (1, 2, 3))
# The broken release: its group_vars name a bind address this machine does not have (a
# documentation address: nothing is ever sent to it). The app builds and migrates (nothing there
# binds a socket) but its server cannot listen, so it never becomes ready.
BROKEN_SETTING = "sensorhub_listen_host=192.0.2.1"
FIGURES = ROOT / "build" / "deploy-test"


def stored_rows(database_url: str, sensor_id: str) -> Counter:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT event_id FROM ingest_events WHERE sensor_id = :sensor"),
                {"sensor": sensor_id},
            )
            return Counter(rows.scalars())
    finally:
        engine.dispose()


def new_sensor(deployment, port: int, name: str) -> dict:
    status, sensor, _ = http_request(
        port, "POST", "/api/v1/sensors", {"name": name}, token=deployment.admin_token
    )
    assert status == 201, sensor
    return sensor


def post_event(port: int, token: str, event_id: str, value: float = 1.0):
    return http_request(
        port,
        "POST",
        "/api/v1/events",
        {"type": "deploy.test", "value": value, "eventId": event_id},
        token=token,
        timeout=30,
    )


def version_served(port: int) -> str:
    status, body, _ = http_request(port, "GET", "/api/v1/")
    assert status == 200, body
    return body["version"]


@pytest.fixture(scope="module")
def first_deploy(deployment):
    """Release N deployed to both nodes, nginx started in front of them."""
    deployment.release(N)
    deployment.write_vault(N)
    result = deployment.deploy(N)
    assert result.returncode == 0, result.output[-6000:]
    deployment.start_nginx()
    return result


@pytest.fixture(scope="module")
def sensor(deployment, first_deploy):
    return new_sensor(deployment, deployment.nginx_port, "deploy-story")


def test_a_release_is_one_checksummed_artifact_with_its_pins_and_deploy_files(deployment):
    archive = deployment.release(N)
    digest, name = archive.with_name(archive.name + ".sha256").read_text().split()
    assert name == archive.name
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == digest
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        top = f"sensorhub-{N}"
        release = json.load(tar.extractfile(f"{top}/RELEASE.json"))
        sums = tar.extractfile(f"{top}/SHA256SUMS").read().decode()
    assert release["version"] == N
    assert f"{top}/{release['wheel']}" in names
    for shipped in (
        "constraints.txt",
        "CHANGELOG.md",
        "deploy/ansible/site.yml",
        "deploy/systemd/sensorhub.service.j2",
        "deploy/nginx/sensorhub.conf.j2",
    ):
        assert f"{top}/{shipped}" in names, shipped
    assert any(n.startswith(f"{top}/wheelhouse/psycopg_binary-") for n in names)
    listed = {line.split("  ", 1)[1] for line in sums.splitlines()}
    assert {"constraints.txt", release["wheel"], "deploy/ansible/site.yml"} <= listed


def test_a_version_is_built_once(deployment):
    deployment.release(N)
    result = deployment.build_release(N)
    assert result.returncode == 1
    assert "a version is built once" in result.stderr


def test_the_first_deploy_serves_both_nodes_through_nginx(deployment, first_deploy, sensor):
    for node in NODES:
        assert deployment.serving(node) == N
        assert version_served(deployment.port(node)) == N
        assert http_request(deployment.port(node), "GET", "/readyz")[0] == 200
    assert version_served(deployment.nginx_port) == N
    status, body, _ = post_event(deployment.nginx_port, sensor["token"], "first-1")
    assert (status, body["accepted"]) == (201, 1)


def test_the_database_is_migrated_once_per_deploy_from_the_first_node(first_deploy):
    migrations = first_deploy.output.split("TASK [sensorhub : Migrate the database")[1:]
    assert len(migrations) == 1
    assert migrations[0].split("TASK [")[0].strip().splitlines()[-1] == "changed: [node1]"


def test_secrets_reach_the_nodes_from_the_vault_and_stay_out_of_the_output(
    deployment, first_deploy
):
    assert (deployment.root / "vault.yml").read_text().startswith("$ANSIBLE_VAULT;")
    assert deployment.admin_token not in first_deploy.output
    env_file = deployment.node_dir("node1") / "shared" / "sensorhub.env"
    assert oct(env_file.stat().st_mode & 0o777) == "0o640"
    assert f"SENSORHUB_ADMIN_TOKEN='{deployment.admin_token}'" in env_file.read_text()


@pytest.mark.systemd
def test_the_systemd_unit_passes_systemd_analyze_verify(deployment, first_deploy):
    analyze = binary("systemd-analyze")
    # The deployed unit names paths that exist here: the release's sensorhub-serve, the env file.
    unit = deployment.unit("node1")
    text_ = unit.read_text()
    node1 = deployment.root / "env-link" / "node1"
    assert f"ExecStart={node1}/current/venv/bin/sensorhub-serve" in text_
    assert "TimeoutStopSec=15" in text_  # development's 10 s drain plus the 5 s margin
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sensorhub.service" not in result.stderr, result.stderr  # no warning about it


def test_nginx_tells_the_app_the_client_address(deployment, sensor):
    # The client connects from 127.0.0.2; nginx from 127.0.0.1, the app's trusted proxy.
    status, _, _ = http_request(
        deployment.nginx_port, "GET", "/api/v1/sensor", token=sensor["token"], source="127.0.0.2"
    )
    assert status == 200
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [
            json.loads(line)
            for node in NODES
            for line in deployment.app_log(node).splitlines()
            if line.startswith("{") and '"request_finished"' in line
        ]
        if any(line.get("client_addr") == "127.0.0.2" for line in lines):
            return
        time.sleep(0.2)
    raise AssertionError("no node logged the client address 127.0.0.2 behind nginx")


def test_nginx_refuses_a_body_above_its_limit_before_any_node_reads_it(deployment, sensor):
    status, body, _ = http_request(
        deployment.nginx_port,
        "POST",
        "/api/v1/events",
        raw=b" " * (1024 * 1024 + 1),
        token=sensor["token"],
    )
    assert status == 413
    assert "1m" in body["detail"]


def test_maintenance_mode_answers_503_with_retry_after(deployment, sensor):
    flag = deployment.nginx_dir / "maintenance"
    flag.touch()
    try:
        status, body, headers = http_request(
            deployment.nginx_port, "GET", "/api/v1/sensor", token=sensor["token"]
        )
    finally:
        flag.unlink()
    assert status == 503
    assert headers["Retry-After"] == "2"
    assert "maintenance" in body["detail"]
    assert http_request(deployment.nginx_port, "GET", "/readyz")[0] == 200


def test_resends_through_both_nodes_store_each_event_once_with_exact_counters(deployment):
    sensor = new_sensor(deployment, deployment.port("node1"), "two-nodes")
    event_ids = [f"both-{n}" for n in range(60)]
    # Every event sent four times, twice through each node, all at once.
    sends = [(deployment.port(node), event_id) for event_id in event_ids for node in NODES * 2]

    def send(target):
        port, event_id = target
        for _ in range(20):
            status, body, headers = post_event(port, sensor["token"], event_id)
            if status == 503 and "Retry-After" in headers:  # shed under load: resend
                time.sleep(float(headers["Retry-After"]))
                continue
            return status, body
        raise AssertionError(f"{event_id} kept getting 503 from port {port}")

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, sends))

    assert {status for status, _ in answers} == {201}
    assert sum(body["accepted"] for _, body in answers) == len(event_ids)
    assert stored_rows(deployment.database_url, sensor["sensorId"]) == Counter(event_ids)
    for node in NODES:
        status, itself, _ = http_request(
            deployment.port(node), "GET", "/api/v1/sensor", token=sensor["token"]
        )
        assert status == 200
        assert (itself["eventCount"], itself["duplicateCount"]) == (60, 180)


def test_a_token_revoked_on_one_node_is_refused_by_the_other_at_once(deployment):
    sensor = new_sensor(deployment, deployment.port("node1"), "revoked")
    token, node1, node2 = sensor["token"], deployment.port("node1"), deployment.port("node2")
    # node2 has looked the token up and remembers it (sensorhub.auth.token_cache_ttl, 2 s here),
    # but checks the credential generation in PostgreSQL on every request.
    for _ in range(3):
        assert http_request(node2, "GET", "/api/v1/sensor", token=token)[0] == 200
    status, _, _ = http_request(
        node1,
        "DELETE",
        f"/api/v1/sensors/{sensor['sensorId']}/tokens/{sensor['tokenId']}",
        token=deployment.admin_token,
    )
    assert status == 200
    assert http_request(node2, "GET", "/api/v1/sensor", token=token)[0] == 401
    assert http_request(node1, "GET", "/api/v1/sensor", token=token)[0] == 401


class Poster:
    """Sensors posting through nginx with a new eventId each time, as long as a deploy runs.

    A 503 with Retry-After is honoured: wait, then resend the same eventId (safe: a resend is a
    duplicate). Anything else that is not a 201 is a failure."""

    def __init__(self, port: int, token: str, threads: int = 2, pause: float = 0.02):
        self.port, self.token, self.threads, self.pause = port, token, threads, pause
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.statuses: Counter = Counter()
        self.failures: Counter = Counter()
        self.acknowledged: set[str] = set()
        self.requests = 0
        self.sent_at: list[float] = []  # wall-clock time of each request, for the switch window
        self.workers = [
            threading.Thread(target=self.run, args=(n,), daemon=True) for n in range(threads)
        ]

    def __enter__(self):
        for worker in self.workers:
            worker.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for worker in self.workers:
            worker.join(60)

    def run(self, thread: int) -> None:
        sent = 0
        # Bounded in count and time whatever happens to the deploy.
        deadline = time.monotonic() + 600
        while not self.stop.is_set() and sent < 50_000 and time.monotonic() < deadline:
            event_id = f"switch-{thread}-{sent}"
            self.send_until_acknowledged(event_id, sent)
            sent += 1
            time.sleep(self.pause)  # a fleet of sensors, not a benchmark (the deploy needs CPU)

    def send_until_acknowledged(self, event_id: str, value: int) -> None:
        for _ in range(100):
            try:
                status, _, headers = post_event(self.port, self.token, event_id, value)
            except OSError as error:
                self.record(f"connection: {type(error).__name__}", failure=True)
                time.sleep(0.2)
                continue
            retry_after = headers.get("Retry-After")
            self.record(status, failure=status != 201 and not (status == 503 and retry_after))
            if status == 201:
                with self.lock:
                    self.acknowledged.add(event_id)
                return
            if status == 503 and retry_after:
                time.sleep(float(retry_after))
                continue
            return  # a failure, recorded; this eventId is given up (never acknowledged)

    def record(self, status, failure: bool) -> None:
        with self.lock:
            self.requests += 1
            self.sent_at.append(time.time())
            self.statuses[status] += 1
            if failure:
                self.failures[status] += 1


def test_upgrading_node_by_node_loses_no_acknowledged_event(deployment, first_deploy, sensor):
    deployment.release(N_PLUS_1)
    with Poster(deployment.nginx_port, sensor["token"]) as poster:
        time.sleep(1)  # traffic flows before the deploy starts
        result = deployment.deploy(N_PLUS_1)
        time.sleep(1)  # and after it ended
    assert result.returncode == 0, result.output[-6000:]
    stored = stored_rows(deployment.database_url, sensor["sensorId"])
    switch_rows = Counter({k: v for k, v in stored.items() if k.startswith("switch-")})
    start, end = play_window(
        (deployment.root / "ansible.log").read_text(), "App nodes - migrate once, then switch"
    )
    figures = {
        "requests_during_deploy": poster.requests,
        "requests_during_switch": sum(1 for t in poster.sent_at if start <= t <= end),
        "switch_seconds": round(end - start, 1),
        "status_counts": {str(k): v for k, v in poster.statuses.items()},
        "failures_by_status": {str(k): v for k, v in poster.failures.items()},
        "events_acknowledged": len(poster.acknowledged),
        "events_stored": sum(switch_rows.values()),
        "events_stored_more_than_once": sum(1 for n in switch_rows.values() if n > 1),
        "deploy_seconds": round(deployment.timings[f"deploy {N_PLUS_1}"], 1),
    }
    FIGURES.mkdir(parents=True, exist_ok=True)
    (FIGURES / "zero-downtime.json").write_text(json.dumps(figures, indent=2) + "\n")
    sys.stdout.write(f"\nzero-downtime switch {N} -> {N_PLUS_1}: {json.dumps(figures)}\n")

    assert poster.requests > 50, "the client sent too little to show anything"
    assert poster.failures == Counter(), figures
    assert set(switch_rows) == poster.acknowledged, figures
    assert max(switch_rows.values()) == 1, figures
    for node in NODES:
        assert deployment.serving(node) == N_PLUS_1
        assert version_served(deployment.port(node)) == N_PLUS_1


def test_a_release_that_cannot_become_ready_is_rolled_back_by_the_deploy(deployment, sensor):
    deployment.release(N_PLUS_2)
    result = deployment.deploy(N_PLUS_2, "-e", BROKEN_SETTING)

    assert result.returncode != 0, result.output[-6000:]
    assert "ROLLED BACK: release " + N_PLUS_2 in result.output
    # node1 tried N+2 and went back; the deploy stopped before node2.
    for node in NODES:
        assert deployment.serving(node) == N_PLUS_1
        assert version_served(deployment.port(node)) == N_PLUS_1
    assert version_served(deployment.nginx_port) == N_PLUS_1
    status, _, _ = post_event(deployment.nginx_port, sensor["token"], "after-rollback")
    assert status == 201


def test_running_the_same_deploy_again_changes_nothing(deployment):
    result = deployment.deploy(N_PLUS_1)
    assert result.returncode == 0, result.output[-6000:]
    assert result.changed() == {"lb": 0, "node1": 0, "node2": 0}, result.output[-3000:]
    for node in NODES:
        assert deployment.serving(node) == N_PLUS_1
    sys.stdout.write(f"\ndeploy timings (s): {json.dumps(deployment.timings)}\n")
