"""Run wrk with one of the bench's Lua scripts and return what its ``done()`` printed."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from .servers import BenchError

LUA_DIR = Path(__file__).resolve().parent / "lua"
WRK_MISSING = (
    "wrk is not installed: install it with `sudo apt-get install wrk` (Debian/Ubuntu "
    "package) and run `make bench` again"
)


def find_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise BenchError(WRK_MISSING)
    return path


def wrk_version(wrk: str) -> str:
    result = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
    return (result.stdout + result.stderr).splitlines()[0].strip()


def script_path(name: str, workdir: Path) -> Path:
    """wrk loads one file: the shared counters and ``done()`` followed by the scenario's part."""
    combined = workdir / f"{name}.lua"
    if not combined.exists():
        combined.write_text(
            (LUA_DIR / "common.lua").read_text() + "\n" + (LUA_DIR / f"{name}.lua").read_text()
        )
    return combined


def run(
    wrk: str,
    url: str,
    script: Path,
    args: dict[str, str],
    *,
    duration: int,
    connections: int,
    threads: int,
    timeout: float = 30.0,
) -> dict:
    command = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        f"--timeout={timeout:g}s",
        "--latency",
        "-s",
        str(script),
        url,
        "--",
        f"threads={threads}",
        *(f"{key}={value}" for key, value in args.items()),
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=duration + timeout + 30
    )
    for line in result.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            data = json.loads(line[len("BENCH_JSON ") :])
            data["statuses"] = {int(k): v for k, v in data["statuses"].items()}
            return data
    raise BenchError(
        f"wrk gave no result (exit {result.returncode}) for {url}:\n"
        f"{result.stdout}\n{result.stderr}"
    )
