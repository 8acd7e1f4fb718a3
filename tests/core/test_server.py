"""``pserve`` (waitress, one process, for development); the production server is tested in
test_prefork.py, except for the start-up mistakes both servers answer alike (below).

Real processes on 127.0.0.1, on the suite's database (SQLite or PostgreSQL).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import empty_all_tables, living_children

PSERVE = str(Path(sys.executable).parent / "pserve")
SERVE = str(Path(sys.executable).parent / "sensorhub-serve")
ADMIN_TOKEN = "server-test-admin-token-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request(port, method, path, body=None, token=ADMIN_TOKEN):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    try:
        connection.request(
            method, path, body=json.dumps(body) if body is not None else None, headers=headers
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


def children_of(pid: int) -> set[int]:
    return set(living_children(pid))


@pytest.fixture
def pserve(tmp_path, database_url, dbengine):
    """``pserve`` (waitress, one process) on a free loopback port, as ``make run`` starts it."""
    port = free_port()
    ini = tmp_path / "pserve.ini"
    ini.write_text(
        textwrap.dedent(f"""
        [app:main]
        use = egg:sensorhub
        sensorhub.plugins = auth ingest
        sensorhub.database.url = {database_url}
        sensorhub.port = {port}
        sensorhub.threads = 4

        [server:main]
        use = egg:sensorhub
    """)
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SENSORHUB_")}
    environ["SENSORHUB_ADMIN_TOKEN"] = ADMIN_TOKEN
    log = open(tmp_path / "pserve.log", "w+")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [PSERVE, str(ini)], env=environ, stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            if request(port, "GET", "/healthz")[0] == 200:
                break
        except OSError:
            pass
        assert process.poll() is None, (tmp_path / "pserve.log").read_text()
        assert time.monotonic() < deadline, (tmp_path / "pserve.log").read_text()
        time.sleep(0.1)
    yield process, port
    if process.poll() is None:
        process.terminate()
        process.wait(15)
    log.close()
    empty_all_tables(dbengine)


def test_pserve_serves_in_one_process_and_stops_cleanly_on_sigterm(pserve):
    process, port = pserve
    status, sensor = request(port, "POST", "/api/v1/sensors", {"name": "dev"})
    assert status == 201
    event = {"type": "t", "value": 1, "eventId": "dev-1"}
    assert request(port, "POST", "/api/v1/events", event, token=sensor["token"])[0] == 201
    assert children_of(process.pid) == set()
    process.send_signal(signal.SIGTERM)
    assert process.wait(20) == 0


# --- start-up mistakes: one line on stderr that says what to do, and a non-zero exit


def start(server, ini, cwd, **environ):
    """Run a server that is expected to refuse to start (killed if it outlives the timeout)."""
    environ = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SENSORHUB_")},
        **environ,
    }
    environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return subprocess.run(
        [server, str(ini)], cwd=cwd, env=environ, capture_output=True, text=True, timeout=120
    )


def operator_line(result) -> str:
    """The one line stderr holds besides pserve's own "Starting server in PID n." (logs go to
    stdout); never a traceback."""
    assert "Traceback" not in result.stderr
    [line] = [
        line for line in result.stderr.splitlines() if not line.startswith("Starting server in")
    ]
    return line


@pytest.fixture
def site_ini(tmp_path):
    """development.ini's plugins, on a database of the test's own."""
    ini = tmp_path / "site.ini"
    ini.write_text(
        textwrap.dedent(f"""
        [app:main]
        use = egg:sensorhub
        sensorhub.plugins = logging metrics auth ingest
        sensorhub.database.url = sqlite:///{tmp_path / "site.sqlite"}

        [server:main]
        use = egg:sensorhub
    """)
    )
    return ini


@pytest.mark.parametrize(("server", "prefix"), [(PSERVE, "sensorhub"), (SERVE, "sensorhub-serve")])
def test_a_port_in_use_is_named_with_the_setting_that_moves_it(site_ini, server, prefix):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = start(server, site_ini, site_ini.parent, SENSORHUB_PORT=str(port))
    assert result.returncode == 1
    assert operator_line(result) == (
        f"{prefix}: 127.0.0.1:{port} is already in use (another server, or a SensorHub still "
        "running?): stop what holds it, or choose another port with sensorhub.port in the ini "
        "or env SENSORHUB_PORT (the address: sensorhub.host, env SENSORHUB_HOST)"
    )


def test_sensorhub_serve_names_a_missing_ini(tmp_path):
    result = start(SERVE, "production.ini", tmp_path)
    assert result.returncode == 2
    assert operator_line(result) == (
        "sensorhub-serve: production.ini: no such ini file; give the path of one, "
        "e.g. sensorhub-serve production.ini"
    )
