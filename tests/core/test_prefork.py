"""``sensorhub-serve``: the production server, run for real on loopback as an operator would.

Each test starts gunicorn's master with its workers from an ini, talks HTTP to it, sends it
signals, and checks what clients were answered against what the database holds. Every process
is stopped at the end (the session's subreaper check fails the run otherwise).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from sensorhub import migrations
from tests.conftest import empty_all_tables, living_children, postgresql_bin

SERVE = str(Path(sys.executable).parent / "sensorhub-serve")
ADMIN = str(Path(sys.executable).parent / "sensorhub-admin")
ADMIN_TOKEN = "prefork-test-admin-token-0123456789"


def request(port, method, path, body=None, token=ADMIN_TOKEN, timeout=30, connection=None):
    own = connection is None
    connection = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    try:
        connection.request(
            method, path, body=json.dumps(body) if body is not None else None, headers=headers
        )
        response = connection.getresponse()
        payload = response.read()
        return response.status, json.loads(payload or b"null"), dict(response.getheaders())
    finally:
        if own:
            connection.close()


def process_state(pid: int) -> str | None:
    """'R', 'S', … for a live process, None when it is gone (a zombie is reaped and gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return None
    if state == "Z":
        try:
            os.waitpid(pid, os.WNOHANG)  # ours to reap: this process is the subreaper
        except ChildProcessError:
            pass
        return None
    return state


def children_of(pid: int) -> set[int]:
    return set(living_children(pid))


class Served:
    """``sensorhub-serve`` on a port of its own choosing, with the auth and ingest plugins."""

    def __init__(
        self, workdir: Path, database_url: str, metrics_dir: Path | None = None, **settings
    ):
        self.workdir = workdir
        self.database_url = database_url
        self.log_path = workdir / "serve.log"
        values = {
            "sensorhub.plugins": "logging metrics auth ingest",
            "sensorhub.database.url": database_url,
            "sensorhub.port": "0",
            "sensorhub.workers": "2",
            "sensorhub.threads": "4",
            "sensorhub.logging.format": "json",
            "sensorhub.auth.sensor_rate": "0",  # clients here post faster than a sensor should
            **settings,
        }
        ini = workdir / "serve.ini"
        ini.write_text(
            "[app:main]\nuse = egg:sensorhub\n"
            + "".join(f"{key} = {value}\n" for key, value in values.items())
        )
        environ = {k: v for k, v in os.environ.items() if not k.startswith("SENSORHUB_")}
        environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        if metrics_dir is not None:  # the operator's; else a temp dir the master removes at exit
            environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        environ["SENSORHUB_ADMIN_TOKEN"] = ADMIN_TOKEN
        self.log = open(self.log_path, "w+")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [SERVE, str(ini)], env=environ, stdout=self.log, stderr=subprocess.STDOUT
        )
        self.port = self._wait_until_listening(int(values["sensorhub.workers"]))

    def _wait_until_listening(self, workers: int) -> int:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            match = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", self.output())
            if match and len(self.workers()) == workers:
                port = int(match[1])
                try:
                    if request(port, "GET", "/healthz")[0] == 200:
                        return port
                except OSError:
                    pass
            time.sleep(0.05)
        raise AssertionError(f"sensorhub-serve did not start:\n{self.output()}")

    def workers(self) -> set[int]:
        return children_of(self.process.pid)

    def output(self) -> str:
        return self.log_path.read_text()

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.output().splitlines() if line.startswith("{")]

    def stop(self) -> None:
        workers = self.workers()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        for pid in workers:
            if process_state(pid) is not None:
                os.kill(pid, signal.SIGKILL)
        self.log.close()


@pytest.fixture
def serve(tmp_path, database_url, dbengine):
    started = []

    def start(database=None, metrics_dir=None, **settings) -> Served:
        served = Served(tmp_path, database or database_url, metrics_dir, **settings)
        started.append(served)
        return served

    yield start
    for served in started:
        served.stop()
    empty_all_tables(dbengine)


def new_sensor(port: int, name: str = "prefork") -> str:
    status, sensor, _ = request(port, "POST", "/api/v1/sensors", {"name": name})
    assert status == 201, sensor
    return sensor["token"]


def stored_event_ids(database_url: str) -> Counter:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT event_id FROM ingest_events")).scalars().all()
    finally:
        engine.dispose()
    return Counter(rows)


def test_workers_share_the_port_and_store_each_event_exactly_once(serve):
    # Not a test of shedding: on a busy machine, let requests wait for a slot.
    served = serve(**{"sensorhub.queue_timeout": "10s"})
    token = new_sensor(served.port)
    events = [{"type": "t", "value": n, "eventId": f"e{n}"} for n in range(200)]

    def post(event):
        return request(served.port, "POST", "/api/v1/events", event, token=token)

    with ThreadPoolExecutor(8) as pool:
        first = list(pool.map(post, events))
        again = list(pool.map(post, events))  # every one a resend, to any worker

    assert {status for status, _, _ in first + again} == {201}
    assert sum(body["accepted"] for _, body, _ in first) == 200
    assert sum(body["duplicates"] for _, body, _ in again) == 200
    _, itself, _ = request(served.port, "GET", "/api/v1/sensor", token=token)
    assert (itself["eventCount"], itself["duplicateCount"]) == (200, 200)


def refused_from_another_process_while_posting(served, *action: str):
    """A client keeps posting events with a fresh sensor's token (each on a new connection, so
    both workers serve it and remember its lookup) while ``sensorhub-admin sensor <action>``,
    another process, takes the token away. Returns the statuses of the requests sent before
    the command returned, those of the requests sent after it, and the sensor."""
    _, sensor, _ = request(served.port, "POST", "/api/v1/sensors", {"name": "refused"})
    answers: list[tuple[float, int]] = []  # (sent at, status)
    stop = threading.Event()

    def post():
        n = 0
        while not stop.is_set():
            n += 1
            event = {"type": "t", "value": n, "eventId": f"r{n}"}
            sent = time.monotonic()
            status, _, _ = request(
                served.port, "POST", "/api/v1/events", event, token=sensor["token"]
            )
            answers.append((sent, status))

    with ThreadPoolExecutor(1) as pool:
        posting = pool.submit(post)
        try:
            time.sleep(1.0)  # both workers have served the token and remember its lookup
            name, *rest = action
            command = subprocess.run(
                [ADMIN, "sensor", name, str(served.workdir / "serve.ini"), sensor["sensorId"]]
                + [argument.format(**sensor) for argument in rest],
                capture_output=True,
                text=True,
                timeout=60,
            )
            returned = time.monotonic()
            assert command.returncode == 0, command.stderr
            time.sleep(1.0)
        finally:
            stop.set()
        posting.result()
    before = [status for sent, status in answers if sent < returned]
    after = [status for sent, status in answers if sent > returned]
    return before, after, sensor


@pytest.mark.parametrize(
    "action", [("revoke", "--token", "{tokenId}"), ("disable",)], ids=["revoke", "disable"]
)
def test_a_token_taken_away_by_sensorhub_admin_is_refused_by_every_worker_at_once(
    serve, database_url, action
):
    # Two workers and the admin command: three processes. Remembered lookups (5 s by default)
    # are checked against the credential generation, so none outlives the change.
    # No brute-force guard here: every refusal stays a 401 that says why.
    served = serve(**{"sensorhub.queue_timeout": "10s", "sensorhub.auth.failure_threshold": "0"})
    before, after, _ = refused_from_another_process_while_posting(served, *action)

    assert set(before) <= {201, 401} and before.count(201) >= 10, Counter(before)
    assert after and set(after) == {401}, Counter(after)
    stored = stored_event_ids(database_url)
    assert sum(stored.values()) == before.count(201)  # nothing sent after it was stored


def scrape(port: int) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/metrics")
        return connection.getresponse().read().decode()
    finally:
        connection.close()


def test_one_scrape_adds_up_every_worker(serve):
    served = serve()
    for _ in range(40):  # a connection each: the kernel spreads them over the workers
        assert request(served.port, "GET", "/healthz")[0] == 200
    body = scrape(served.port)
    counted = re.findall(
        r'^sensorhub_http_requests_total\{[^}]*route="healthz"[^}]*status="200"[^}]*\} (\S+)$',
        body,
        re.M,
    )
    assert sum(float(value) for value in counted) >= 40, body[:3000]
    assert "pid=" not in body  # one server-wide series, not one per worker


def test_sigterm_drains_under_load_every_acknowledged_event_is_stored_once(serve, database_url):
    served = serve(**{"sensorhub.shutdown_grace": "20s"})
    token = new_sensor(served.port)
    answers: dict[str, object] = {}
    stop_posting = threading.Event()
    counter = iter(range(10**9))
    lock = threading.Lock()

    def client():
        while not stop_posting.is_set():
            with lock:
                event_id = f"drain-{next(counter)}"
            event = {"type": "t", "value": 1, "eventId": event_id}
            try:
                status, _, headers = request(
                    served.port, "POST", "/api/v1/events", event, token=token, timeout=30
                )
                answers[event_id] = (status, headers.get("Retry-After"))
            except ConnectionRefusedError:
                answers[event_id] = "refused"  # never reached the server
                time.sleep(0.01)
            except (ConnectionError, http.client.HTTPException) as error:
                answers[event_id] = f"cut: {type(error).__name__}"

    clients = [threading.Thread(target=client) for _ in range(12)]
    for thread in clients:
        thread.start()
    time.sleep(1.5)
    started = time.monotonic()
    served.process.send_signal(signal.SIGTERM)
    exit_code = served.process.wait(30)
    drained_in = time.monotonic() - started
    time.sleep(0.3)
    stop_posting.set()
    for thread in clients:
        thread.join(60)

    stored = stored_event_ids(database_url)
    acknowledged = {e for e, answer in answers.items() if answer == (201, None)}
    cut = {e for e, answer in answers.items() if str(answer).startswith("cut")}
    outcomes = Counter(str(answer) for answer in answers.values())
    assert exit_code == 0, served.output()[-3000:]
    assert drained_in < 20, drained_in
    assert len(acknowledged) > 50, outcomes
    not_once = {e: stored[e] for e in acknowledged if stored[e] != 1}
    assert not not_once, f"acknowledged but not stored once: {not_once}; {outcomes}"
    untold = {e: answers.get(e) for e in set(stored) - acknowledged}
    assert not untold, f"stored, but the client was told otherwise: {untold}; {outcomes}"
    assert not cut & set(stored), f"processed, then the connection cut: {cut & set(stored)}"
    assert all(
        answer in ((201, None), (503, "1"), "refused") or str(answer).startswith("cut")
        for answer in answers.values()
    ), outcomes
    assert not any(process_state(pid) for pid in served.workers())
    assert "Shutting down: Master" in served.output()


def eventually(check, seconds: float = 10.0, every: float = 0.1):
    """``check()``'s first truthy result within ``seconds`` (the last result otherwise):
    for what a server does asynchronously after a signal."""
    deadline = time.monotonic() + seconds
    while not (result := check()) and time.monotonic() < deadline:
        time.sleep(every)
    return result


def test_readyz_turns_503_as_soon_as_draining_begins_and_late_requests_are_told_to_go(serve):
    served = serve(**{"sensorhub.workers": "1"})
    kept_alive = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    assert request(served.port, "GET", "/readyz", connection=kept_alive)[0] == 200
    served.process.send_signal(signal.SIGTERM)
    # On the kept-alive connection (the listener is closed by now): 200 until the signal has
    # reached the worker, then 503 at once.
    answer = eventually(
        lambda: (
            (reply := request(served.port, "GET", "/readyz", connection=kept_alive))[0] == 503
            and reply
        ),
        seconds=1.5,
        every=0.02,
    )
    assert answer, "/readyz never turned 503 while the worker drained"
    status, problem, headers = answer
    assert problem["detail"] == "not ready: the server is shutting down (draining)"
    assert headers.get("Connection") == "close"
    kept_alive.close()
    assert served.process.wait(30) == 0


def test_a_dead_worker_is_replaced_and_counted(serve):
    served = serve()
    before = served.workers()
    os.kill(min(before), signal.SIGKILL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        now = served.workers()
        if len(now) == 2 and now != before:
            break
        time.sleep(0.1)
    assert len(served.workers()) == 2 and served.workers() != before
    assert request(served.port, "GET", "/healthz")[0] == 200
    counted = eventually(
        lambda: re.search(
            r"^sensorhub_server_worker_restarts_total 1\.0$", scrape(served.port), re.M
        )
    )
    assert counted, scrape(served.port)[:3000]
    assert eventually(
        lambda: any("Replacing a worker" in line.get("event", "") for line in served.lines())
    )


def test_when_the_master_is_killed_every_worker_exits_within_seconds(serve, tmp_path):
    # A killed master cannot remove a temp metrics directory: give it one in the test's tmp.
    served = serve(metrics_dir=tmp_path / "metrics")
    workers = served.workers()
    served.process.kill()
    served.process.wait(10)
    killed_at = time.monotonic()
    while any(process_state(pid) for pid in workers) and time.monotonic() - killed_at < 10:
        time.sleep(0.05)
    gone_after = time.monotonic() - killed_at
    assert not any(process_state(pid) for pid in workers)
    # Idle workers are gone in ~0.2 s; on a loaded 2-core machine it has taken 4 s. The
    # promise is that none is left behind, long before gunicorn's own once-a-second check of
    # its parent or the 25 s drain would matter.
    assert gone_after < 6.0, gone_after


@contextlib.contextmanager
def writes_stalled(database_url: str):
    """Another client holds the lock every event write needs (SQLite: the database's write
    lock; PostgreSQL: the events table), until the block ends."""
    if database_url.startswith("sqlite"):
        blocker = sqlite3.connect(make_url(database_url).database, timeout=0)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            blocker.rollback()
            blocker.close()
        return
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            connection.execute(text("LOCK TABLE ingest_events IN ACCESS EXCLUSIVE MODE"))
            yield
            connection.rollback()
    finally:
        engine.dispose()


def test_a_stalled_database_is_answered_503_within_the_deadline_and_health_stays_up(serve):
    served = serve(
        **{
            "sensorhub.workers": "1",
            "sensorhub.threads": "2",
            "sensorhub.request_timeout": "2s",
            "sensorhub.queue_timeout": "100ms",
        },
    )
    token = new_sensor(served.port)

    def post(n):
        started = time.monotonic()
        event = {"type": "t", "value": n, "eventId": f"stall-{n}"}
        status, _, headers = request(served.port, "POST", "/api/v1/events", event, token=token)
        return status, headers.get("Retry-After"), time.monotonic() - started

    with writes_stalled(served.database_url), ThreadPoolExecutor(16) as pool:
        posts = pool.map(post, range(16))
        time.sleep(0.3)
        health_started = time.monotonic()
        health = request(served.port, "GET", "/healthz")[0]
        health_took = time.monotonic() - health_started
        answers = list(posts)
    assert health == 200 and health_took < 0.5, health_took
    assert {status for status, _, _ in answers} == {503}
    assert all(retry for _, retry, _ in answers), "a 503 without Retry-After"
    assert max(took for _, _, took in answers) < 2 + 1.0  # the deadline, plus scheduling
    # Past the stall, the same server accepts again.
    event = {"type": "t", "value": 1, "eventId": "after-the-stall"}
    assert request(served.port, "POST", "/api/v1/events", event, token=token)[0] == 201


def test_overload_is_shed_with_503_and_retry_after_while_admitted_requests_stay_fast(serve):
    served = serve(
        **{"sensorhub.workers": "1", "sensorhub.threads": "2", "sensorhub.queue_timeout": "50ms"}
    )
    token = new_sensor(served.port)
    results = []

    def read(_):
        started = time.monotonic()
        status, _, headers = request(served.port, "GET", "/api/v1/events?limit=100", token=token)
        return status, headers.get("Retry-After"), time.monotonic() - started

    with ThreadPoolExecutor(48) as pool:
        results = list(pool.map(read, range(600)))
    statuses = Counter(status for status, _, _ in results)
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[503] > 0, f"48 concurrent clients on 2 slots were never shed: {statuses}"
    assert all(retry == "1" for status, retry, _ in results if status == 503)


@pytest.fixture
def own_postgresql():
    """A PostgreSQL server of this test's own (Debian's binaries), to stop and start."""
    pg_bin = postgresql_bin()
    assert pg_bin is not None  # the postgresql marker checked it
    workdir = Path(tempfile.mkdtemp(prefix="sensorhub-own-pg-"))
    run_as = []
    if os.getuid() == 0:  # initdb refuses root
        shutil.chown(workdir, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    data = workdir / "data"

    def pg(*args):
        subprocess.run([*run_as, *args], check=True, capture_output=True, timeout=60)

    def start():
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {workdir} -c fsync=off"
        pg(pg_bin / "pg_ctl", "-D", data, "-l", workdir / "log", "-w", "-o", options, "start")

    def stop():
        pg(pg_bin / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop")

    pg(pg_bin / "initdb", "-D", data, "-U", "sensorhub", "--auth=trust", "-E", "UTF8")
    start()
    try:
        url = f"postgresql+psycopg://sensorhub@127.0.0.1:{port}/postgres"
        engine = create_engine(url)
        migrations.upgrade(engine, migrations.plugin_locations(["auth", "ingest"]))
        engine.dispose()
        yield url, start, stop
    finally:
        subprocess.run(
            [*run_as, pg_bin / "pg_ctl", "-D", data, "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.postgresql
def test_postgresql_stopped_mid_load_is_answered_503_and_recovers_by_itself(serve, own_postgresql):
    url, start, stop = own_postgresql
    served = serve(url, **{"sensorhub.workers": "1", "sensorhub.request_timeout": "2s"})
    token = new_sensor(served.port)

    def post(event_id):
        started = time.monotonic()
        event = {"type": "t", "value": 1, "eventId": event_id}
        status, _, headers = request(served.port, "POST", "/api/v1/events", event, token=token)
        return status, headers.get("Retry-After"), time.monotonic() - started

    assert post("before")[0] == 201
    stop()
    during = [post(f"during-{n}") for n in range(5)]
    assert {status for status, _, _ in during} == {503}, during
    assert all(retry for _, retry, _ in during)
    assert max(took for _, _, took in during) < 2 + 1.0
    assert request(served.port, "GET", "/readyz")[0] == 503
    assert request(served.port, "GET", "/healthz")[0] == 200
    start()
    deadline = time.monotonic() + 20
    while (status := post("after")[0]) != 201 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert status == 201
    assert request(served.port, "GET", "/readyz")[0] == 200


def test_a_request_with_both_content_length_and_transfer_encoding_is_refused_and_closed(serve):
    served = serve(**{"sensorhub.workers": "1"})
    smuggled = (
        b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /readyz HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
        sock.sendall(smuggled)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    lines = answer.decode().splitlines()
    assert lines[0] == "HTTP/1.1 400 Bad Request"
    assert sum(line.startswith("HTTP/") for line in lines) == 1  # the smuggled GET never ran


def test_a_request_whose_client_hung_up_while_it_waited_is_not_started(serve):
    served = serve(
        **{
            "sensorhub.workers": "1",
            "sensorhub.threads": "1",
            "sensorhub.request_timeout": "6s",
            "sensorhub.queue_timeout": "5s",
        }
    )
    token = new_sensor(served.port)
    first = {"type": "t", "value": 1, "eventId": "waited-for"}
    body = json.dumps({"type": "t", "value": 2, "eventId": "given-up"}).encode()
    with ThreadPoolExecutor(1) as pool:
        with writes_stalled(served.database_url):
            holding_the_slot = pool.submit(
                request, served.port, "POST", "/api/v1/events", first, token
            )
            time.sleep(0.3)
            with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
                sock.sendall(
                    b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                    + f"\r\nAuthorization: Bearer {token}\r\nContent-Length: {len(body)}"
                    f"\r\n\r\n".encode()
                    + body
                )
            time.sleep(0.5)  # the client has gone; its request waits for the only slot
        assert holding_the_slot.result()[0] == 201
    time.sleep(0.5)
    stored = stored_event_ids(served.database_url)
    assert stored["waited-for"] == 1
    assert "given-up" not in stored
    assert any(line.get("status") == 499 for line in served.lines()), served.output()[-2000:]


def test_idle_and_trickling_connections_do_not_keep_sensors_or_health_checks_out(serve):
    served = serve(**{"sensorhub.workers": "1", "sensorhub.threads": "8"})
    token = new_sensor(served.port)
    idle = [socket.create_connection(("127.0.0.1", served.port)) for _ in range(120)]
    tricklers = [socket.create_connection(("127.0.0.1", served.port)) for _ in range(8)]
    try:
        for sock in tricklers:
            sock.sendall(b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\n")  # and then slowly
        time.sleep(0.5)
        timings = []
        for n in range(5):
            started = time.monotonic()
            event = {"type": "t", "value": n, "eventId": f"legit-{n}"}
            status = request(served.port, "POST", "/api/v1/events", event, token=token)[0]
            health = request(served.port, "GET", "/healthz")[0]
            timings.append((status, health, time.monotonic() - started))
            for sock in tricklers:
                sock.sendall(b"X")  # a header byte now and then: never finishing the request
    finally:
        for sock in idle + tricklers:
            sock.close()
    assert [(status, health) for status, health, _ in timings] == [(201, 200)] * 5
    assert max(took for _, _, took in timings) < 1.0, timings


def test_a_worker_over_its_memory_bound_is_recycled_after_its_request(serve):
    served = serve(**{"sensorhub.workers": "1", "sensorhub.max_worker_memory": "1"})
    [before] = served.workers()
    assert request(served.port, "GET", "/api/v1/")[0] == 200  # answered, then it recycles
    deadline = time.monotonic() + 15
    while served.workers() in (set(), {before}) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert served.workers() and before not in served.workers()
    assert any("resident memory above 1 MiB" in line.get("event", "") for line in served.lines())


def test_a_client_that_stops_sending_mid_request_is_closed_after_the_read_timeout(serve):
    served = serve(**{"sensorhub.workers": "1", "sensorhub.read_timeout": "1s"})
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\n")  # and nothing more
        started = time.monotonic()
        leftover = sock.recv(65536)
        closed_after = time.monotonic() - started
    assert leftover == b"" or leftover.startswith(b"HTTP/1.1 4"), leftover
    assert 0.5 < closed_after < 5, closed_after
    assert request(served.port, "GET", "/healthz")[0] == 200
    logged = eventually(
        lambda: any("read timeout" in line.get("event", "") for line in served.lines())
    )
    assert logged, served.output()[-2000:]
    assert "Traceback" not in served.output() and "TimeoutError" not in served.output()
