"""Fixtures for the client's tests: the real SensorHub, started as an operator would.

``hub`` starts ``pserve`` (waitress, one process) on a free 127.0.0.1 port, on an SQLite
database built once per session with ``sensorhub-admin migrate``; a test can SIGKILL it and
start it again on the same port and database. Each server runs in a process group of its own
and is stopped (the whole group) when the test ends, passed or failed.

The client never imports the server; these tests only start it and read its database.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sensorhub_client.transport import ConnectionFailed, Transport

BIN = Path(sys.executable).parent
ADMIN_TOKEN = "client-test-admin-token-0123456789"


def pytest_collection_modifyitems(items):
    # The client's behaviour does not depend on the server's database: its tests run once, in
    # the suite's SQLite pass, not again in the PostgreSQL one.
    if os.environ.get("SENSORHUB_TEST_DATABASE_URL"):
        skip = pytest.mark.skip(reason="the client's tests run in the SQLite pass")
        for item in items:
            if Path(item.fspath).is_relative_to(Path(__file__).parent):
                item.add_marker(skip)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(port, method, path, body=None, token=ADMIN_TOKEN):
    """(status, JSON) of one request to a server on loopback, through the client's own HTTP."""
    transport = Transport(f"http://127.0.0.1:{port}", token)
    try:
        answer = transport.request(
            method,
            path,
            json.dumps(body).encode() if body is not None else None,
            {"Content-Type": "application/json"},
        )
    finally:
        transport.close()
    return answer.status, answer.json()


def stop_group(process: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 15) -> None:
    """Signal the process's whole group (it was started in a session of its own) and wait;
    SIGKILL what is left after ``timeout``."""
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


@pytest.fixture(scope="session")
def hub_database(tmp_path_factory) -> Path:
    """An SQLite file with SensorHub's schema, made by ``sensorhub-admin migrate``."""
    workdir = tmp_path_factory.mktemp("hub")
    path = workdir / "hub.sqlite"
    ini = workdir / "migrate.ini"
    ini.write_text(
        f"[app:main]\nuse = egg:sensorhub\nsensorhub.plugins = auth ingest\n"
        f"sensorhub.database.url = sqlite:///{path}\n"
    )
    subprocess.run(
        [str(BIN / "sensorhub-admin"), "migrate", str(ini)],
        env=server_environ({}),
        check=True,
        capture_output=True,
        timeout=120,
    )
    return path


def server_environ(settings: dict[str, str]) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SENSORHUB_")}
    environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    environ["SENSORHUB_ADMIN_TOKEN"] = ADMIN_TOKEN
    return {**environ, **settings}


class Hub:
    """One SensorHub server on a fixed port, startable again after a kill: ``pserve``
    (waitress, one process) or ``sensorhub-serve`` (the production pre-fork server).

    ``settings`` are environment variables (``SENSORHUB_…``), as an operator sets them."""

    def __init__(self, workdir: Path, database: Path, program: str, settings: dict[str, str]):
        self.program = program
        self.database = database
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.settings = {
            "SENSORHUB_AUTH_SENSOR_RATE": "0",  # these tests post faster than a sensor should
            **settings,
        }
        self.ini = workdir / f"hub-{self.port}.ini"
        self.ini.write_text(
            "[app:main]\nuse = egg:sensorhub\nsensorhub.plugins = auth ingest\n"
            f"sensorhub.database.url = sqlite:///{database}\nsensorhub.port = {self.port}\n"
            "\n[server:main]\nuse = egg:sensorhub\n"
        )
        self.log_path = workdir / f"hub-{self.port}.log"
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> Hub:
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                [str(BIN / self.program), str(self.ini)],
                env=server_environ(self.settings),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1
        deadline = time.monotonic() + 30
        while True:
            try:
                if call(self.port, "GET", "/healthz")[0] == 200:
                    return self
            except ConnectionFailed:
                pass
            assert self.process.poll() is None, self.log_path.read_text()
            assert time.monotonic() < deadline, self.log_path.read_text()
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no drain, no goodbye; what was committed stays committed."""
        assert self.process is not None
        stop_group(self.process, signal.SIGKILL)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_group(self.process)

    def new_sensor(self, name: str = "client-test") -> dict:
        status, sensor = call(self.port, "POST", "/api/v1/sensors", {"name": name})
        assert status == 201, sensor
        return sensor

    def counters(self, token: str) -> dict:
        """The sensor's own figures (``GET /api/v1/sensor``), waiting out an overload."""
        for _ in range(20):
            status, sensor = call(self.port, "GET", "/api/v1/sensor", token=token)
            if status not in (429, 503):
                break
            time.sleep(1)
        assert status == 200, sensor
        return sensor

    def stored(self, sensor_id: str) -> list[tuple[str, float]]:
        """Every stored row of the sensor, (eventId, value), read from the database itself."""
        db = sqlite3.connect(self.database)
        try:
            return db.execute(
                "SELECT event_id, value FROM ingest_events WHERE sensor_id = ?", (sensor_id,)
            ).fetchall()
        finally:
            db.close()


@pytest.fixture(scope="session")
def default_hub(tmp_path_factory, hub_database) -> Iterator[Hub]:
    """A server with the default settings, shared by the tests that do not stop or reconfigure
    it (one start, not one per test); each test makes a sensor of its own."""
    server = Hub(tmp_path_factory.mktemp("default-hub"), hub_database, "pserve", {})
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def hub(tmp_path, hub_database) -> Iterator:
    """``hub(program="pserve", **env)``: a started server; every one is stopped (its whole
    process group) when the test ends."""
    started: list[Hub] = []

    def start(program: str = "pserve", **settings: str) -> Hub:
        server = Hub(tmp_path, hub_database, program, settings)
        started.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in started:
            server.stop()


class FakeHub:
    """A scripted stand-in for the server, for answers the real one gives only under rare
    conditions (a 413 after its limits shrank, a 5xx, a Retry-After on the first request).

    By default it advertises ``limits`` at ``GET /api/v1/`` and answers each POSTed batch 201,
    ``accepted`` (``duplicate`` for an ``eventId`` it has seen). ``answers`` is a list of
    (status, headers, body) to give, in order, instead, before going back to the default.
    Every POST is recorded: (monotonic time, headers, the events)."""

    def __init__(self, max_events: int = 1000, max_body_bytes: int = 1 << 20):
        self.limits: dict | None = {"maxEvents": max_events, "maxBodyBytes": max_body_bytes}
        self.answers: list[tuple[int, dict, object]] = []
        self.posts: list[tuple[float, dict, list[dict]]] = []
        self.stored: dict[str, dict] = {}
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                capabilities = {"ingest": fake.limits} if fake.limits else {}
                self.answer(200, {}, {"name": "sensorhub", "capabilities": capabilities})

            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    raw = gzip.decompress(raw)
                events = json.loads(raw)["events"]
                with fake.lock:
                    fake.posts.append((time.monotonic(), dict(self.headers), events))
                    scripted = fake.answers.pop(0) if fake.answers else None
                    if scripted is None:
                        scripted = (201, {}, fake.accept(events))
                self.answer(*scripted)

            def answer(self, status, headers, body):
                payload = json.dumps(body).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def accept(self, events: list[dict]) -> dict:
        results = []
        for event in events:
            seen = event["eventId"] in self.stored
            self.stored.setdefault(event["eventId"], event)
            results.append(
                {"status": "duplicate" if seen else "accepted", "eventId": event["eventId"]}
            )
        accepted = sum(result["status"] == "accepted" for result in results)
        return {
            "accepted": accepted,
            "duplicates": len(events) - accepted,
            "rejected": 0,
            "results": results,
        }

    def batch_sizes(self) -> list[int]:
        return [len(events) for _, _, events in self.posts]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_hub() -> Iterator:
    """``fake_hub(**limits)``: a :class:`FakeHub`, shut down when the test ends."""
    made: list[FakeHub] = []

    def make(**limits: int) -> FakeHub:
        made.append(FakeHub(**limits))
        return made[-1]

    try:
        yield make
    finally:
        for fake in made:
            fake.close()
