"""``make bench-overload``: what ``sensorhub-serve`` answers when offered more than it can do.

Starts the production server (gunicorn, ``--workers`` processes, all four plugins, a fresh
SQLite file) on 127.0.0.1, then runs closed-loop clients posting single events (each with its own
``eventId``) at several concurrencies: at the server's in-flight limit (workers x threads) and at
multiples of it. For each step it prints the answers by status, the rate and latency of the
admitted (201) requests, how fast the refusals (503) came, and checks that exactly the
acknowledged events are stored. Then it sends SIGTERM under load and reports the drain the same
way. The client is Python threads on the same machine: read the figures as ratios within one run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ADMIN_TOKEN = "overload-admin-" + secrets.token_hex(16)


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Server:
    def __init__(self, workdir: Path, workers: int, threads: int, queue_timeout: str):
        self.database = workdir / "overload.sqlite"
        ini = workdir / "overload.ini"
        ini.write_text(
            "[app:main]\nuse = egg:sensorhub\n"
            "sensorhub.plugins = logging metrics auth ingest\n"
            f"sensorhub.database.url = sqlite:///{self.database}\n"
            f"sensorhub.port = 0\nsensorhub.workers = {workers}\nsensorhub.threads = {threads}\n"
            "sensorhub.logging.format = json\nsensorhub.logging.level = WARNING\n"
            "sensorhub.auth.sensor_rate = 0\n"
            f"sensorhub.queue_timeout = {queue_timeout}\n"
        )
        environ = {k: v for k, v in os.environ.items() if not k.startswith("SENSORHUB_")}
        environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        environ["SENSORHUB_ADMIN_TOKEN"] = ADMIN_TOKEN
        bin_dir = Path(sys.executable).parent
        subprocess.run(
            [bin_dir / "sensorhub-admin", "migrate", str(ini)],
            env=environ,
            check=True,
            capture_output=True,
        )
        self.log_path = workdir / "serve.log"
        self.log = open(self.log_path, "w+")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [bin_dir / "sensorhub-serve", str(ini)],
            env=environ,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            match = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", self.log_path.read_text())
            if match:
                self.port = int(match[1])
                try:
                    if self.call("GET", "/readyz")[0] == 200:
                        return
                except OSError:
                    pass
            time.sleep(0.1)
        raise SystemExit(f"sensorhub-serve did not start:\n{self.log_path.read_text()[-3000:]}")

    def call(self, method, path, body=None, token=ADMIN_TOKEN):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request(
                method,
                path,
                body=json.dumps(body) if body is not None else None,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def stored(self) -> set[str]:
        with sqlite3.connect(self.database) as connection:
            return {row[0] for row in connection.execute("SELECT event_id FROM ingest_events")}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()


class Load:
    """Closed-loop clients posting single events until stopped; every answer is recorded."""

    def __init__(self, server: Server, token: str, clients: int, prefix: str):
        self.server, self.token, self.prefix = server, token, prefix
        self.answers: list[tuple[str, str, float]] = []  # event id, outcome, seconds
        self._stop = threading.Event()
        self._counter = iter(range(10**9))
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client) for _ in range(clients)]

    def _client(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                event_id = f"{self.prefix}-{next(self._counter)}"
            event = {"type": "load", "value": 1, "eventId": event_id}
            started = time.monotonic()
            try:
                outcome = str(self.server.call("POST", "/api/v1/events", event, self.token)[0])
            except ConnectionRefusedError:
                outcome = "refused"
                time.sleep(0.01)
            except (OSError, http.client.HTTPException) as error:
                outcome = f"cut ({type(error).__name__})"
            with self._lock:
                self.answers.append((event_id, outcome, time.monotonic() - started))

    def run(self, seconds: float | None = None) -> None:
        for thread in self._threads:
            thread.start()
        if seconds is not None:
            time.sleep(seconds)
            self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(120)


def report(title: str, load: Load, stored: set[str], seconds: float) -> bool:
    outcomes = Counter(outcome for _, outcome, _ in load.answers)
    admitted = [took for _, outcome, took in load.answers if outcome == "201"]
    refused = [took for _, outcome, took in load.answers if outcome == "503"]
    acknowledged = {event_id for event_id, outcome, _ in load.answers if outcome == "201"}
    ours = {event_id for event_id in stored if event_id.startswith(load.prefix + "-")}
    exact = ours == acknowledged
    print(f"\n{title}")
    print(f"  answers      {dict(sorted(outcomes.items()))}")
    for status, times in (("201", admitted), ("503", refused)):
        if times:
            p50, p99 = percentile(times, 0.5) * 1000, percentile(times, 0.99) * 1000
            rate = len(times) / seconds
            print(f"  {status}          {rate:8.0f} /s   p50 {p50:6.1f} ms   p99 {p99:6.1f} ms")
    print(
        f"  stored       {len(ours)} of {len(acknowledged)} acknowledged"
        f"  {'PASS exactly the acknowledged events' if exact else 'FAIL'}"
    )
    return exact


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.overload", description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8, help="sensorhub.threads per worker")
    parser.add_argument("--seconds", type=float, default=10.0, help="per step")
    parser.add_argument("--multiples", default="1,2,4", help="concurrency / in-flight limit")
    parser.add_argument("--queue-timeout", default="500ms", help="sensorhub.queue_timeout")
    args = parser.parse_args(argv)
    limit = args.workers * args.threads
    ok = True
    with tempfile.TemporaryDirectory(prefix="sensorhub-overload-") as workdir:
        server = Server(Path(workdir), args.workers, args.threads, args.queue_timeout)
        try:
            status, body = server.call("POST", "/api/v1/sensors", {"name": "overload"})
            token = json.loads(body)["token"]
            print(
                f"sensorhub-serve: {args.workers} workers x {args.threads} threads "
                f"(in-flight limit {limit}), queue_timeout {args.queue_timeout}, SQLite, all "
                f"plugins; {args.seconds:g} s per step"
            )
            for multiple in [float(m) for m in args.multiples.split(",")]:
                clients = max(1, round(limit * multiple))
                load = Load(server, token, clients, f"x{multiple:g}")
                load.run(args.seconds)
                ok &= report(
                    f"{clients} clients ({multiple:g}x the in-flight limit)",
                    load,
                    server.stored(),
                    args.seconds,
                )
            # The drain: SIGTERM while 2x the limit keeps posting.
            load = Load(server, token, 2 * limit, "drain")
            load.run()
            time.sleep(2)
            sent = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            code = server.process.wait(60)
            drained = time.monotonic() - sent
            time.sleep(0.3)
            load.stop()
            ok &= report(
                f"SIGTERM under load ({2 * limit} clients): exit {code} after {drained:.2f} s",
                load,
                server.stored(),
                2 + drained,
            )
            ok &= code == 0
        finally:
            server.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
