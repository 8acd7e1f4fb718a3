"""Metrics across processes: pre-fork workers sharing a multi-process directory, and one-off
admin commands pushing to a Pushgateway.

prometheus-client reads ``PROMETHEUS_MULTIPROC_DIR`` when it is imported, so the multi-process
tests run each "worker" as a fresh Python process started with it, as a launcher would.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sensorhub.scripts import admin

ROOT = Path(__file__).resolve().parents[2]
PUSHGATEWAY = "/usr/bin/prometheus-pushgateway"

# A pre-fork server in miniature: the parent imports, a worker forks off, serves 3 requests
# and exits; then the parent serves 2 as a second worker and answers the scrape.
PREFORK_SERVER = textwrap.dedent("""
    import os, sys, webtest
    from sensorhub import make_app

    def worker(requests):
        app = webtest.TestApp(make_app({"sensorhub.database.url": sys.argv[1],
                                        "sensorhub.plugins": "metrics"}, environ=os.environ))
        for _ in range(requests):
            app.get("/healthz")
        return app

    pid = os.fork()
    if pid == 0:
        worker(3)
        os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    sys.stdout.write(worker(2).get("/metrics").text)
""")


def run_prefork_server(directory: Path, database_url: str) -> str:
    environ = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    result = subprocess.run(
        [sys.executable, "-c", PREFORK_SERVER, database_url],
        env=environ,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def samples_of(text: str) -> list:
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def test_workers_sharing_a_multiprocess_dir_are_scraped_as_one(tmp_path):
    directory = tmp_path / "prometheus-multiproc"
    directory.mkdir()
    database_url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    exposition = run_prefork_server(directory, database_url)

    healthz = [
        sample
        for sample in samples_of(exposition)
        if sample.name == "sensorhub_http_requests_total"
        and sample.labels.get("route") == "healthz"
    ]
    assert [sample.value for sample in healthz] == [5.0]  # both workers, each counted once
    names = {sample.name for sample in samples_of(exposition)}
    assert "sensorhub_build_info" in names and "sensorhub_server_threads" in names
    # Per-process collectors cannot be merged across workers: not served in this mode.
    assert "process_resident_memory_bytes" not in names
    assert any(path.suffix == ".db" for path in directory.iterdir())


# --- Pushgateway


class RecordingGateway(BaseHTTPRequestHandler):
    received: list = []

    def do_PUT(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        self.received.append((self.command, self.path, body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def gateway_stub():
    RecordingGateway.received = []
    server = HTTPServer(("127.0.0.1", 0), RecordingGateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", RecordingGateway.received
    server.shutdown()
    server.server_close()
    thread.join(5)


def write_ini(tmp_path: Path, plugins: str = "metrics") -> Path:
    ini = tmp_path / "admin.ini"
    ini.write_text(
        textwrap.dedent(f"""
        [app:main]
        use = egg:sensorhub
        sensorhub.plugins = {plugins}
        sensorhub.database.url = sqlite:///{tmp_path / "admin.sqlite"}
    """)
    )
    return ini


def test_an_admin_command_pushes_its_duration_outcome_and_rows(
    tmp_path, monkeypatch, gateway_stub, capsys
):
    url, received = gateway_stub
    monkeypatch.setenv("SENSORHUB_PUSHGATEWAY_URL", url)
    assert admin.main(["migrate", str(write_ini(tmp_path))]) == 0
    [(method, path, body)] = received
    assert (method, path) == ("PUT", "/metrics/job/sensorhub_admin/command/migrate")
    pushed = {sample.name: sample.value for sample in samples_of(body)}
    assert pushed["sensorhub_admin_command_succeeded"] == 1
    assert pushed["sensorhub_admin_command_duration_seconds"] > 0
    assert abs(pushed["sensorhub_admin_command_last_run_timestamp_seconds"] - time.time()) < 60


def test_an_unreachable_pushgateway_never_fails_the_command(tmp_path, monkeypatch):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("SENSORHUB_PUSHGATEWAY_URL", f"http://127.0.0.1:{port}")
    assert admin.main(["migrate", str(write_ini(tmp_path))]) == 0


@pytest.mark.prometheus
def test_the_real_pushgateway_keeps_what_an_admin_command_pushed(tmp_path, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [PUSHGATEWAY, f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(f"{url}/-/ready", process)
        monkeypatch.setenv("SENSORHUB_PUSHGATEWAY_URL", url)
        assert admin.main(["migrate", str(write_ini(tmp_path))]) == 0
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as answer:  # noqa: S310
            exposed = samples_of(answer.read().decode())
        [succeeded] = [
            sample for sample in exposed if sample.name == "sensorhub_admin_command_succeeded"
        ]
        assert succeeded.labels == {"job": "sensorhub_admin", "command": "migrate", "instance": ""}
        assert succeeded.value == 1
    finally:
        process.terminate()
        process.wait(10)


def wait_until_up(url: str, process, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{url}: the process exited"
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 (loopback)
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout} s")
