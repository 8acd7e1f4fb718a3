"""Start, provision and stop the benchmark's server processes.

Each server is its own ``python -m bench.serve`` subprocess on 127.0.0.1 with a free port, on
the HTTP server the run asks for (waitress, gunicorn or granian), in a session and process group
of its own: stopping it signals the whole group (a pre-fork server's arbiter and workers, and
granian's processes under ``bench.serve``), SIGTERM first, SIGKILL after a deadline. Its
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
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url

from .serve import BARE_DRIVER

ADMIN_TOKEN = "bench-admin-" + secrets.token_hex(16)
CODE_DIR = Path(__file__).resolve().parent.parent


def migrate(settings: dict) -> None:
    """Create or upgrade the schema of the database ``settings`` name: the core's revisions and
    the branches the server's plugins register (``config.add_migrations``).

    The core's app alone opens the database; the plugins are asked for their migration folders
    without logging and metrics, which own no tables and would reconfigure this process's
    output and metrics state if loaded here."""
    from sensorhub import make_app, migrations

    app = make_app({**settings, "sensorhub.plugins": ""}, environ={}, process="admin")
    engine = app.registry["dbengine"]
    plugins = settings.get("sensorhub.plugins", "").replace(",", " ").split()
    with_tables = [name for name in plugins if name not in ("logging", "metrics")]
    try:
        migrations.upgrade(engine, migrations.plugin_locations(with_tables, settings))
    finally:
        engine.dispose()


_MIGRATE_IN_CWD = (
    "import json, sys; from bench.servers import migrate; migrate(json.loads(sys.argv[1]))"
)


class BenchError(Exception):
    """The benchmark cannot go on; the message says why and what to do."""


@dataclass
class Sensor:
    sensor_id: str
    token: str


@dataclass
class Server:
    name: str
    plugins: list[str] | None  # None: a bare app, ``app``
    workdir: Path
    threads: int
    database_url: str | None = None
    workers: int = 1
    http_server: str = "waitress"  # bench.serve --server: waitress, gunicorn or granian
    app: str = "hello"  # when plugins is None: bench.serve's 'hello', 'pyramid' or 'bare'
    # The tree whose code the server runs (its working directory; bench.compare's other
    # revision), this one's by default; and settings added to its ini.
    code_dir: Path = CODE_DIR
    extra_settings: dict[str, str] = field(default_factory=dict)
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
            return {
                "pyramid": "bare Pyramid app",
                "bare": "framework-less app on the bare sqlite3 driver",
            }.get(self.app, "bare WSGI hello app")
        return "sensorhub plugins: " + (" ".join(self.plugins) or "(none)")

    def describe_server(self) -> str:
        return f"{self.http_server} {self.threads} threads x {self.workers} process(es)"

    # -- lifecycle

    def start(self, timeout: float = 60.0) -> None:
        """Start the server and wait until it answers its health URL; on any failure, stop
        whatever was started and raise."""
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> None:
        if self.plugins is not None:
            target = str(self._write_ini())
        elif self.app == "bare":
            target = BARE_DRIVER + str(make_url(self.database).database)
        else:
            target = self.app
        if self.plugins is not None:
            self._migrate()
        ready = self.workdir / f"{self.name}.port"
        ready.unlink(missing_ok=True)
        command = [
            sys.executable,
            "-m",
            "bench.serve",
            target,
            "--server",
            self.http_server,
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
                cwd=self.code_dir,
                start_new_session=True,  # its own process group, signalled as a whole
            )
        deadline = time.monotonic() + timeout
        while not ready.exists():
            self._check_alive("at start-up")
            if time.monotonic() > deadline:
                raise BenchError(
                    f"server {self.name} ({self.describe_server()}) did not listen within "
                    f"{timeout:.0f}s; its output:\n{self.log_tail()}"
                )
            time.sleep(0.05)
        self.port = int(ready.read_text())
        # The port accepts connections; a pre-fork server's workers may still be starting
        # (granian's build the app now), so the first answer may take a while.
        health = "/" if self.plugins is None else "/healthz"
        while True:
            try:
                status, _ = self.request(
                    "GET", health, timeout=max(1.0, deadline - time.monotonic())
                )
                break
            except (OSError, http.client.HTTPException) as error:
                self._check_alive("at start-up")
                if time.monotonic() > deadline:
                    raise BenchError(
                        f"server {self.name} ({self.describe_server()}) did not answer "
                        f"{health} within {timeout:.0f}s ({error}); its output:\n"
                        f"{self.log_tail()}"
                    ) from error
                time.sleep(0.1)
        if status != 200:
            raise BenchError(
                f"server {self.name} answers {status} on its health URL; "
                f"its output:\n{self.log_tail()}"
            )

    def _check_alive(self, when: str) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise BenchError(
                f"server {self.name} ({self.describe()}, {self.describe_server()}) exited "
                f"with code {self.process.returncode} {when}; its output:\n{self.log_tail()}"
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM to the server's process group, then SIGKILL to what is left of it after
        ``timeout`` seconds. Idempotent; also ends workers that outlived their parent."""
        if self.process is None:
            return
        group = self.process.pid  # start_new_session: the group's id is the leader's pid
        if self.process.poll() is None:
            _signal_group(group, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        # The leader is gone (or stuck): wait for the rest of the group, then kill it all.
        while _group_alive(group) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _group_alive(group) or self.process.poll() is None:
            _signal_group(group, signal.SIGKILL)
            self.process.wait(timeout=10)
            kill_deadline = time.monotonic() + 5
            while _group_alive(group) and time.monotonic() < kill_deadline:
                time.sleep(0.05)

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

    @property
    def database(self) -> str:
        """The URL of the database this server serves: --database-url, another server's (the
        bare-driver app's), or a SQLite file of its own in the run's temp directory."""
        return self.database_url or f"sqlite:///{self.workdir / (self.name + '.sqlite')}"

    def settings(self) -> dict[str, str]:
        assert self.plugins is not None
        settings = {
            "sensorhub.plugins": " ".join(self.plugins),
            "sensorhub.database.url": self.database,
            "sensorhub.threads": str(self.threads),
            "sensorhub.workers": str(self.workers),
            # The bench's few sensors post far faster than the per-sensor limit allows.
            "sensorhub.auth.sensor_rate": "0",
        }
        if "logging" in self.plugins:
            settings["sensorhub.logging.format"] = "json"  # the production renderer
        return {**settings, **self.extra_settings}

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
        if self.code_dir == CODE_DIR:
            migrate(self.settings())
            return
        # Another tree's server: its own code makes its schema.
        result = subprocess.run(
            [sys.executable, "-c", _MIGRATE_IN_CWD, json.dumps(self.settings())],
            cwd=self.code_dir,
            env=self._environ(),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode:
            raise BenchError(
                f"migrating {self.name}'s database with {self.code_dir}'s code failed:\n"
                f"{result.stdout}{result.stderr}"
            )

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
        self.use_sensors(self.sensors)

    def use_sensors(self, sensors: list[Sensor]) -> None:
        """Load as these sensors, already in the database (provisioned, or a kept fill's), and
        write the wrk sensors file."""
        self.sensors = list(sensors)
        self.sensors_file.write_text("".join(f"{s.sensor_id} {s.token}\n" for s in self.sensors))


def _signal_group(group: int, signum: int) -> None:
    try:
        os.killpg(group, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(group: int) -> bool:
    """Whether any process of the group is left (a zombie awaiting its parent counts)."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def open_for_bulk_fill(path: Path) -> sqlite3.Connection:
    """A connection for filling a throwaway SQLite file once, fast: no journal, no fsync (the
    server later opens the file in WAL mode), 1 GB of page cache for the index builds."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = OFF")
    connection.execute("PRAGMA synchronous = OFF")
    connection.execute("PRAGMA cache_size = -1000000")
    return connection
