"""The deployment story's harness: releases built by ``deploy/release.py``, the playbook run by
``ansible-playbook`` against the ``development`` inventory (this machine, connection local,
everything under a temporary folder), a throwaway PostgreSQL (``.ci/with-postgresql``, which
``make deploy-test`` wraps around pytest) and nginx started from the config the playbook renders.

These tests take minutes, so they run only in ``make deploy-test`` (``SENSORHUB_DEPLOY_TEST=1``;
``.ci/run`` calls it); elsewhere they are skipped, saying so. Every process they start (the app
nodes' servers, nginx) is stopped at the end, whatever happened.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import ROOT, binary, worker_database

BIN = Path(sys.executable).parent
NODES = ("node1", "node2")
RECAP = re.compile(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def pytest_collection_modifyitems(config, items):
    if os.environ.get("SENSORHUB_DEPLOY_TEST") == "1":
        return
    here = Path(__file__).parent
    skip = pytest.mark.skip(reason="the deployment story runs in `make deploy-test` (minutes)")
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(skip)


@dataclass
class Result:
    returncode: int
    output: str

    def changed(self) -> dict[str, int]:
        """Each host's changed=N from the play recap."""
        return {host: int(changed) for host, changed, *_ in RECAP.findall(self.output)}


def play_window(log: str, play: str) -> tuple[float, float]:
    """When ``play`` began and when the run's recap came, in the last run in ansible's log."""
    stamps = {}
    for line in log.splitlines():
        for key, marker in (("start", f"PLAY [{play}"), ("end", "PLAY RECAP")):
            if marker in line:
                stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
                stamps[key] = stamp.timestamp()
    return stamps["start"], stamps["end"]


@dataclass
class Deployment:
    """One environment on this machine: two app nodes and an nginx, under ``root``."""

    root: Path
    port_base: int
    database_url: str
    admin_token: str
    vault_password: str
    releases: dict[str, Path] = field(default_factory=dict)
    nginx: subprocess.Popen | None = None
    timings: dict[str, float] = field(default_factory=dict)

    # --- releases and the playbook

    def build_release(self, version: str) -> subprocess.CompletedProcess:
        """``make release`` for this tree as ``version``, into the environment's folder."""
        return subprocess.run(
            [sys.executable, str(ROOT / "deploy" / "release.py"), "--out", str(self.root)],
            env={**os.environ, "SENSORHUB_RELEASE_VERSION": version},
            capture_output=True,
            text=True,
            timeout=300,
        )

    def release(self, version: str) -> Path:
        """The artifact of ``version``, built the first time it is asked for."""
        if version not in self.releases:
            started = time.monotonic()
            result = self.build_release(version)
            assert result.returncode == 0, result.stderr
            self.releases[version] = Path(result.stdout.strip())
            self.timings[f"release {version}"] = time.monotonic() - started
        return self.releases[version]

    def playbook_dir(self, version: str) -> Path:
        """The release's own copy of deploy/ansible: a deploy runs the files it ships."""
        unpacked = self.root / "unpacked" / version
        if not unpacked.exists():
            with tarfile.open(self.release(version)) as tar:
                tar.extractall(unpacked, filter="data")
        return unpacked / f"sensorhub-{version}" / "deploy" / "ansible"

    def deploy(self, version: str, *extra: str, timeout: float = 600) -> Result:
        playbooks = self.playbook_dir(version)
        started = time.monotonic()
        result = subprocess.run(
            [
                str(BIN / "ansible-playbook"),
                "-i",
                "inventories/development",
                "site.yml",
                "-e",
                f"sensorhub_release_archive={self.release(version)}",
                "-e",
                f"@{self.root / 'vault.yml'}",
                "--vault-password-file",
                "vault-password-from-env",
                *extra,
            ],
            cwd=playbooks,
            env=self.ansible_environ(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )
        label = f"deploy {version}" + (" (again)" if f"deploy {version}" in self.timings else "")
        self.timings[label] = time.monotonic() - started
        (self.root / f"{label.replace(' ', '-')}.log").write_text(result.stdout)
        return Result(result.returncode, result.stdout)

    def ansible_environ(self) -> dict[str, str]:
        # No SENSORHUB_* secret from this process reaches the deploy: they come from the vault.
        environ = {k: v for k, v in os.environ.items() if not k.startswith("SENSORHUB_")}
        environ.update(
            PATH=f"{BIN}:{environ.get('PATH', '/usr/bin:/bin')}",
            ANSIBLE_HOME=str(self.root / "ansible-home"),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_FORCE_COLOR="0",
            # Timestamped lines: when each play and task began (figures of the switch).
            ANSIBLE_LOG_PATH=str(self.root / "ansible.log"),
            # Through a symlink, as a root under a linked /srv would be: the deploy must still
            # recognise the release it installed (the re-run asserts changed=0).
            SENSORHUB_DEPLOY_ROOT=str(self.root / "env-link"),
            SENSORHUB_DEPLOY_PORT_BASE=str(self.port_base),
            # The interpreter the release's wheels were built for (this venv's base Python).
            SENSORHUB_DEPLOY_PYTHON=os.path.realpath(sys.executable),
            SENSORHUB_VAULT_PASSWORD=self.vault_password,
        )
        return environ

    def write_vault(self, version: str) -> None:
        """The secrets, encrypted with ansible-vault under a password from the environment."""
        plain = self.root / "vault-plain.yml"
        plain.write_text(
            f"sensorhub_database_url: '{self.database_url}'\n"
            f"sensorhub_admin_token: '{self.admin_token}'\n"
        )
        playbooks = self.playbook_dir(version)
        result = subprocess.run(
            [
                str(BIN / "ansible-vault"),
                "encrypt",
                "--vault-password-file",
                str(playbooks / "vault-password-from-env"),
                "--output",
                str(self.root / "vault.yml"),
                str(plain),
            ],
            env=self.ansible_environ(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        plain.unlink()
        assert result.returncode == 0, result.stderr

    # --- where things are

    def port(self, node: str) -> int:
        return self.port_base + 1 + NODES.index(node)

    @property
    def nginx_port(self) -> int:
        return self.port_base + 80

    def node_dir(self, node: str) -> Path:
        return self.root / "env" / node

    @property
    def nginx_dir(self) -> Path:
        return self.root / "env" / "lb" / "nginx"

    def unit(self, node: str) -> Path:
        return self.node_dir(node) / "shared" / "sensorhub.service"

    def serving(self, node: str) -> str:
        """The release the node's ``current`` link points at."""
        return os.readlink(self.node_dir(node) / "current").rsplit("/", 1)[-1]

    def app_log(self, node: str) -> str:
        return (self.node_dir(node) / "shared" / "log" / "sensorhub.log").read_text()

    # --- processes

    def start_nginx(self) -> None:
        """nginx as a master of its own (not a daemon), from the config the playbook rendered."""
        self.nginx = subprocess.Popen(
            [
                binary("nginx") or "/usr/sbin/nginx",
                "-p",
                str(self.nginx_dir),
                "-c",
                "nginx.conf",
                "-e",
                "logs/error.log",
                "-g",
                "daemon off;",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.nginx.poll() is None, (self.nginx_dir / "logs/error.log").read_text()
            if (self.nginx_dir / "nginx.pid").exists() and port_open(self.nginx_port):
                return
            time.sleep(0.05)
        raise AssertionError("nginx did not start listening within 15 s")

    def stop_everything(self) -> None:
        for node in NODES:
            if self.unit(node).exists():
                control = self.node_dir(node) / "shared" / "sensorhub-service"
                subprocess.run(
                    [str(control), "stop", str(self.unit(node))],
                    capture_output=True,
                    timeout=60,
                )
        if self.nginx is not None and self.nginx.poll() is None:
            self.nginx.send_signal(signal.SIGQUIT)  # graceful: finish requests, then exit
            try:
                self.nginx.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.nginx.pid, signal.SIGKILL)
                self.nginx.wait(5)


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def free_port_base() -> int:
    """A base whose +1, +2 (the nodes) and +80 (nginx) are free on loopback, below the kernel's
    ephemeral range: a port in it can be taken, while a node restarts, as the local end of one
    of the many client connections (nginx's, the test's) and the node could not bind again."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(200):
        base = 10000 + secrets.randbelow(max(1, low - 10000 - 100))
        if not any(port_open(base + offset) for offset in (1, 2, 80)):
            return base
    raise AssertionError("no free loopback ports for the deploy test")


def http_request(
    port: int,
    method: str,
    path: str,
    body=None,
    token: str | None = None,
    source: str | None = None,
    timeout: float = 30,
    raw: bytes | None = None,
) -> tuple[int, dict, dict]:
    """One request on a connection of its own: (status, JSON body or {}, headers)."""
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=timeout, source_address=(source, 0) if source else None
    )
    headers = {"Content-Type": "application/json", "Connection": "close"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        payload = raw if raw is not None else (json.dumps(body) if body is not None else None)
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        data = response.read()
        try:
            parsed = json.loads(data) if data else {}
        except ValueError:
            parsed = {"raw": data.decode(errors="replace")}
        return response.status, parsed, dict(response.getheaders())
    finally:
        connection.close()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    missing = [tool for tool in ("nginx",) if binary(tool) is None]
    server_url = os.environ.get("SENSORHUB_TEST_DATABASE_URL", "")
    if missing or not server_url.startswith("postgresql"):
        pytest.fail(
            f"the deploy test needs nginx (missing: {missing}) and a PostgreSQL server: run it "
            "as `make deploy-test`, which installs both (.ci/debian-packages) and starts one "
            "(.ci/with-postgresql)"
        )
    # A database of the deploy test's own on the throwaway server, dropped at the end.
    databases = worker_database(server_url, "deploy")
    root = tmp_path_factory.mktemp("deploy")
    os.chmod(root, 0o755)  # noqa: S103 - nginx's workers read below it (secret files keep their own modes)
    (root / "env").mkdir()
    (root / "env-link").symlink_to(root / "env")
    deployment = Deployment(
        root=root,
        port_base=free_port_base(),
        database_url=next(databases),
        admin_token="deploy-test-admin-" + secrets.token_hex(16),
        vault_password=secrets.token_hex(16),
    )
    try:
        yield deployment
    finally:
        deployment.stop_everything()
        next(databases, None)
        figures = ROOT / "build" / "deploy-test"
        figures.mkdir(parents=True, exist_ok=True)
        (figures / "timings.json").write_text(json.dumps(deployment.timings, indent=2) + "\n")
        for log in root.glob("deploy-*.log"):
            shutil.copy(log, figures / log.name)
