"""Start, provision and stop the benchmark's server processes.

Each server is its own ``python -m bench.serve`` subprocess on 127.0.0.1 with a free port; its
stdout and stderr go to a file in the run's temp directory (the logging plugin writes one JSON
line per request to stdout, which would otherwise flood the terminal and cost a tty's speed).
SensorHub servers get a temp ini and, unless ``--database-url`` is given, a fresh SQLite file
migrated with ``sensorhub.migrations.upgrade``.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ADMIN_TOKEN = "bench-admin-" + secrets.token_hex(16)


def migrate(settings: dict) -> None:
    """Create or upgrade the schema of the database ``settings`` name.

    Core only: every built-in plugin's branch lives in the core's versions folder and "upgrade
    heads" runs them all; loading the logging plugin here would reconfigure this process's
    output."""
    from sensorhub import make_app, migrations

    app = make_app({**settings, "sensorhub.plugins": ""}, environ={}, process="admin")
    engine = app.registry["dbengine"]
    try:
        migrations.upgrade(engine)
    finally:
        engine.dispose()


class BenchError(Exception):
    """The benchmark cannot go on; the message says why and what to do."""


@dataclass
class Sensor:
    sensor_id: str
    token: str


@dataclass
class Server:
    name: str
    plugins: list[str] | None  # None: the hello app
    workdir: Path
    threads: int
    database_url: str | None = None
    workers: int = 1
    port: int = 0
    process: subprocess.Popen | None = None
    sensors: list[Sensor] = field(default_factory=list)

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def sensors_file(self) -> Path:
        return self.workdir / f"{self.name}.sensors"

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def describe(self) -> str:
        if self.plugins is None:
            return "bare WSGI hello app"
        return "sensorhub plugins: " + (" ".join(self.plugins) or "(none)")

    # -- lifecycle

    def start(self, timeout: float = 60.0) -> None:
        target = "hello" if self.plugins is None else str(self._write_ini())
        if self.plugins is not None:
            self._migrate()
        ready = self.workdir / f"{self.name}.port"
        ready.unlink(missing_ok=True)
        command = [
            sys.executable,
            "-m",
            "bench.serve",
            target,
            "--threads",
            str(self.threads),
            "--workers",
            str(self.workers),
            "--ready",
            str(ready),
        ]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self._environ(),
                cwd=Path(__file__).resolve().parent.parent,
            )
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if self.process.poll() is not None:
                raise BenchError(
                    f"server {self.name} ({self.describe()}) exited with code "
                    f"{self.process.returncode} at start-up; its output:\n"
                    f"{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise BenchError(
                    f"server {self.name} did not listen within {timeout:.0f}s; "
                    f"its output:\n{self.log_tail()}"
                )
            time.sleep(0.05)
        self.port = int(ready.read_text())
        status, _ = self.request("GET", "/" if self.plugins is None else "/healthz")
        if status != 200:
            raise BenchError(
                f"server {self.name} answers {status} on its health URL; "
                f"its output:\n{self.log_tail()}"
            )

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no output)"
        return "\n".join(text.splitlines()[-lines:]) or "(no output)"

    def _environ(self) -> dict[str, str]:
        # SENSORHUB_* from the caller's shell would override the temp ini (env wins over ini);
        # the bench must measure exactly the configuration it prints.
        environ = {k: v for k, v in os.environ.items() if not k.startswith("SENSORHUB_")}
        environ["SENSORHUB_ADMIN_TOKEN"] = ADMIN_TOKEN
        if self.workers > 1 and self.plugins and "metrics" in self.plugins:
            # Several workers: the metrics plugin requires its multi-process mode.
            directory = self.workdir / f"{self.name}.prometheus"
            directory.mkdir(exist_ok=True)
            environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
        return environ

    def settings(self) -> dict[str, str]:
        assert self.plugins is not None
        settings = {
            "sensorhub.plugins": " ".join(self.plugins),
            "sensorhub.database.url": self.database_url
            or f"sqlite:///{self.workdir / (self.name + '.sqlite')}",
            "sensorhub.threads": str(self.threads),
            "sensorhub.workers": str(self.workers),
        }
        if "logging" in self.plugins:
            settings["sensorhub.logging.format"] = "json"  # the production renderer
        return settings

    def _write_ini(self) -> Path:
        lines = ["[app:main]", "use = egg:sensorhub"]
        lines += [f"{key} = {value}" for key, value in self.settings().items()]
        # pserve-like start-up logging until a logging plugin takes over: warnings only.
        lines += [
            "",
            "[loggers]",
            "keys = root",
            "",
            "[handlers]",
            "keys = console",
            "",
            "[formatters]",
            "keys = plain",
            "",
            "[logger_root]",
            "level = WARN",
            "handlers = console",
            "",
            "[handler_console]",
            "class = StreamHandler",
            "args = (sys.stderr,)",
            "level = NOTSET",
            "formatter = plain",
            "",
            "[formatter_plain]",
            "format = %(asctime)s %(levelname)s [%(name)s] %(message)s",
            "",
        ]
        path = self.workdir / f"{self.name}.ini"
        path.write_text("\n".join(lines))
        return path

    def _migrate(self) -> None:
        migrate(self.settings())

    # -- HTTP

    def request(
        self, method: str, path: str, body=None, token: str | None = None, timeout: float = 30.0
    ) -> tuple[int, object]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        headers = {"Accept": "application/json"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = raw.decode(errors="replace")
        return response.status, data

    def provision_sensors(self, count: int) -> None:
        """Create ``count`` sensors through the admin API and write the wrk sensors file."""
        for index in range(count):
            status, data = self.request(
                "POST",
                "/api/v1/sensors",
                token=ADMIN_TOKEN,
                body={"name": f"bench-{self.name}-{index:03d}", "metadata": {"bench": True}},
            )
            if status != 201 or not isinstance(data, dict) or "token" not in data:
                raise BenchError(
                    f"creating a sensor on {self.name} answered {status}: "
                    f"{data!r}; server output:\n{self.log_tail()}"
                )
            self.sensors.append(Sensor(data["sensorId"], data["token"]))
        self.sensors_file.write_text("".join(f"{s.sensor_id} {s.token}\n" for s in self.sensors))
