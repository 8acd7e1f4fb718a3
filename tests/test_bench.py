"""The benchmarks keep working: a tiny load run must find nothing lost or extra, and the
in-process breakdown must time every piece. Speed is not asserted here (docs/benchmarks.md).

The load run needs Debian's ``wrk``; without it the test is skipped, unless
``SENSORHUB_REQUIRE_WRK=1`` (CI, which installs it) makes a missing wrk a failure.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_module(*args, timeout=180):
    # SENSORHUB_* of the test environment (a PostgreSQL URL in CI) must not leak into the
    # bench, whose servers build their own settings; the bench drops them for its servers too.
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SENSORHUB_")}
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=timeout)


def test_a_short_load_run_acknowledges_exactly_what_it_stored(tmp_path):
    if shutil.which("wrk") is None:
        if os.environ.get("SENSORHUB_REQUIRE_WRK") == "1":
            pytest.fail("wrk is not installed (apt-get install wrk); CI sets "
                        "SENSORHUB_REQUIRE_WRK=1")
        pytest.skip("wrk is not installed")
    result = run_module("bench", "--runs", "1", "--duration", "1", "--warmup", "0",
                        "--no-decoders", "--sensors", "4",
                        "--scenarios", "ingest_single,ingest_batch100",
                        "--results-dir", str(tmp_path))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "PASS  no lost or extra events" in result.stdout
    assert "PASS  no errors" in result.stdout
    assert list(tmp_path.glob("*.json")), "the run's results file was not written"


def test_the_breakdown_times_every_piece():
    result = run_module("bench.breakdown", "--number", "2", "--repeats", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines()[1:] if line.strip()]
    assert len(lines) == 11
    assert all(float(line.rsplit(None, 1)[1]) > 0 for line in lines)
