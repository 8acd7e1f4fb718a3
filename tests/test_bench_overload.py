"""``make bench-overload`` keeps working: a one-second run at the in-flight limit and a drain
under load must store exactly the acknowledged events (speed is not asserted here)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# The bench serves its own SQLite files whatever the suite's database.
pytestmark = pytest.mark.database_independent


def test_a_short_overload_run_stores_exactly_what_it_acknowledged():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.overload",
            "--seconds",
            "1",
            "--multiples",
            "2",
            "--workers",
            "1",
            "--threads",
            "2",
            "--queue-timeout",
            "50ms",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("PASS exactly the acknowledged events") == 2
    assert "SIGTERM under load" in result.stdout and "exit 0" in result.stdout
