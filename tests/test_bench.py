"""The benchmarks keep working: a tiny load run must find nothing lost or extra, the in-process
breakdown must time every piece, and without wrk the bench must say how to get it. Speed is not
asserted here (docs/benchmarks.md).

The load run needs Debian's ``wrk`` (``make test`` installs it); a test of its own checks the
bench's documented answer when wrk is missing (exit 2 with the install command).
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# The bench serves its own SQLite files whatever the suite's database.
pytestmark = pytest.mark.database_independent
LOAD_RUN = [
    "bench",
    "--runs",
    "1",
    "--duration",
    "1",
    "--warmup",
    "0",
    "--no-decoders",
    "--sensors",
    "4",
    "--scenarios",
    "ingest_single,ingest_batch100",
    "--skip",
    "scaling",
]


def run_module(*args, environ=None):
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=180,
    )


def assert_says_how_to_install_wrk(result):
    assert result.returncode == 2, result.stdout + result.stderr
    assert "wrk is not installed" in result.stderr
    assert "apt-get install wrk" in result.stderr


def assert_a_short_load_run_passes(result, tmp_path):
    if shutil.which("wrk") is None:
        pytest.fail("wrk is not installed: apt-get install wrk (`make test` installs it)")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert target_row(result.stdout, "no lost or extra events").endswith("PASS")
    assert target_row(result.stdout, "no errors").endswith("PASS")
    assert list(tmp_path.glob("*.json")), "the run's results file was not written"


def target_row(output: str, target: str) -> str:
    """The line of the printed targets table that holds ``target``."""
    table = output.split("targets (issue 14", 1)[1]
    return next(line for line in table.splitlines() if target in line).rstrip()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_short_load_run_acknowledges_exactly_what_it_stored(tmp_path, workers):
    result = run_module(*LOAD_RUN, "--workers", workers, "--results-dir", str(tmp_path))
    assert_a_short_load_run_passes(result, tmp_path)


@pytest.mark.parametrize("server", ["gunicorn", "granian"])
def test_a_short_load_run_on_two_workers_of_each_prefork_server(tmp_path, server):
    result = run_module(
        *LOAD_RUN, "--server", server, "--workers", "2", "--results-dir", str(tmp_path)
    )
    assert_a_short_load_run_passes(result, tmp_path)
    if result.returncode == 0:
        assert f"{server} 8 threads x 2 worker process(es)" in result.stdout


def test_the_scaling_and_stored_passes_check_every_event_and_fill_the_targets_table(tmp_path):
    """Both extra passes in one short run: 1 vs 2 gunicorn workers, and ingest on a database
    pre-filled with events (then reused: the second run removes the first one's events)."""
    scaling_and_stored = [
        *LOAD_RUN[: LOAD_RUN.index("--skip")],
        "--stored",
        "3000",
        "--stored-dir",
        str(tmp_path / "stored"),
    ]
    result = run_module(*scaling_and_stored, "--json", str(tmp_path / "first.json"))
    assert_a_short_load_run_passes(result, tmp_path)
    if result.returncode != 0:
        return  # no wrk: the bench said so
    assert "gunicorn x 1 vs gunicorn x 2" in result.stdout
    assert target_row(result.stdout, "ingest_single x2 workers").split()[-1] in ("PASS", "FAIL")
    assert target_row(result.stdout, "ingest_batch100 stored").split()[-1] in ("PASS", "FAIL")
    assert "run make bench-stored" not in result.stdout
    figures = json.loads((tmp_path / "first.json").read_text())
    assert {row["verdict"] for row in figures["targets"]} <= {"PASS", "FAIL", "not run"}
    assert figures["memory"]["peak"]["largest_mb"] >= figures["memory"]["start"]["largest_mb"]

    again = run_module(
        *scaling_and_stored, "--skip", "main,scaling", "--results-dir", str(tmp_path)
    )
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "reusing" in again.stdout
    assert target_row(again.stdout, "no lost or extra events").endswith("PASS")
    assert target_row(again.stdout, "api_root x2 workers").endswith("not run")


def test_the_framework_and_logging_floors_are_measured_beside_api_root(tmp_path):
    """A bare Pyramid app, and SensorHub without a log line and with one through structlog's
    documented fast path, on the same server in the same run: the floors say what Pyramid alone
    leaves of the transport and what a log line per request costs; the cost table what each
    adds."""
    scenarios = "api_root,pyramid_hello,api_root-logging,api_root-structlog_fast"
    floor_run = [*LOAD_RUN[: LOAD_RUN.index("--scenarios") + 1], scenarios]
    result = run_module(*floor_run, "--skip", "scaling", "--results-dir", str(tmp_path))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert target_row(result.stdout, "no errors").endswith("PASS")
    floors = result.stdout.split("floors measured in the same run:", 1)[1].splitlines()

    def floor(name: str) -> str:
        row = next(line for line in floors if name in line)
        return row.split(name, 1)[1].split()[0]

    assert float(floor("pyramid_hello vs hello").rstrip("x")) > 0
    assert float(floor("api_root-logging vs hello").rstrip("x")) > 0
    assert floor("structlog fast-path line tax").endswith("%")
    assert "SensorHub's stack over bare Pyramid" in result.stdout
    assert "structlog fast-path line, no database" in result.stdout
    assert "bare Pyramid app" in result.stdout  # the servers list says what it ran
    assert "sensorhub plugins: bench.fast_path_logging metrics auth ingest" in result.stdout


def test_each_endpoint_has_a_floor_from_the_same_work_on_the_bare_driver(tmp_path):
    """The framework-less bare-driver app runs each endpoint's storage work on the main server's
    database and sensors: its writes are checked like SensorHub's (nothing lost or extra, the
    sensors' counters equal to the rows), and each endpoint gets a floor: api_root plus that
    work, against the endpoint's target."""
    bare = "bare_sensor_self,bare_ingest_single,bare_events_read,bare_ingest_batch100"
    floor_run = [*LOAD_RUN[: LOAD_RUN.index("--scenarios") + 1], f"api_root,ingest_single,{bare}"]
    result = run_module(*floor_run, "--skip", "scaling", "--results-dir", str(tmp_path))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "framework-less app on the bare sqlite3 driver" in result.stdout
    assert "sensorhub plugins: logging metrics auth ingest" in result.stdout  # its database
    assert target_row(result.stdout, "no errors").endswith("PASS")
    assert "every check passed (3 ingest scenarios)" in target_row(result.stdout, "no lost")
    floors = result.stdout.split("floors measured in the same run:", 1)[1]
    for name, unit in (
        ("sensor_self", "x"),
        ("ingest_single", "x"),
        ("events_read", "x"),
        ("ingest_batch100", " events/s"),
    ):
        row = next(line for line in floors.splitlines() if f"{name}: api_root + bare" in line)
        figure = row.split("bare driver", 1)[1].split("the same storage work")[0].strip()
        assert figure.endswith(unit) and float(figure.removesuffix(unit).replace(",", "")) > 0
        assert "above this floor, out of reach" in row or "the gap is SensorHub's own work" in row
        # How near SensorHub came, for the endpoints it ran beside its floor.
        assert ("SensorHub reached" in row) == (name == "ingest_single"), row


def test_the_bare_driver_stores_a_single_event_in_one_statement(tmp_path):
    """The floor's single-event write: after the token's lookup, the row and its count in one
    statement; a resent key is a duplicate and an unknown token a 401, with nothing stored."""
    from webtest import TestApp

    from bench.bare_driver import make_app
    from bench.breakdown import build

    path = tmp_path / "bare.db"
    sensorhub = build(f"sqlite:///{path}")  # migrated, one sensor with its token
    bare = TestApp(make_app(str(path)))
    own = {"Authorization": f"Bearer {sensorhub.token}"}
    event = {"eventId": "e-1", "type": "temperature", "value": 21.5, "ts": 1_765_000_000_000}

    stored = bare.post_json("/api/v1/events", event, headers=own, status=201)
    resent = bare.post_json("/api/v1/events", event, headers=own, status=201)
    stranger = {"Authorization": "Bearer shs_" + "0" * 38}
    bare.post_json("/api/v1/events", {**event, "eventId": "e-2"}, headers=stranger, status=401)

    assert (stored.json, resent.json) == (
        {"accepted": 1, "duplicates": 0},
        {"accepted": 0, "duplicates": 1},
    )
    counters = bare.get("/api/v1/sensor", headers=own).json
    assert (counters["eventCount"], counters["duplicateCount"]) == (1, 1)
    page = bare.get("/api/v1/events?limit=10", headers=own).json["events"]
    assert [event["eventId"] for event in page] == ["e-1"]


def test_the_bare_driver_scenarios_are_skipped_on_another_database(tmp_path):
    result = run_module(
        *LOAD_RUN[: LOAD_RUN.index("--scenarios") + 1],
        "bare_sensor_self",
        "--database-url",
        "postgresql+psycopg://nobody@127.0.0.1:9/none",
        "--skip",
        "main,scaling",
        "--results-dir",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "skip bare_sensor_self: the bare-driver app speaks sqlite3 only" in result.stdout


def test_waitress_is_refused_more_than_one_process(tmp_path):
    result = run_module(
        *LOAD_RUN, "--server", "waitress", "--workers", "2", "--results-dir", str(tmp_path)
    )
    assert result.returncode == 2
    assert "waitress serves in one process" in result.stderr


def test_without_wrk_the_bench_says_how_to_install_it(tmp_path):
    empty_path = tmp_path / "bin"
    empty_path.mkdir()
    result = run_module(
        *LOAD_RUN, "--results-dir", str(tmp_path), environ={**os.environ, "PATH": str(empty_path)}
    )
    assert_says_how_to_install_wrk(result)
    assert not list(tmp_path.glob("*.json")), "a run that could not start wrote results"


def test_the_breakdown_prints_a_budget_row_for_every_piece_and_compares_runs(tmp_path):
    from bench.breakdown import BUDGET_LABELS, WHOLE_LABELS

    after = tmp_path / "after.json"
    baseline = ROOT / "bench" / "baselines" / "breakdown-befe05e.json"
    result = run_module(
        "bench.breakdown",
        *("--number", "3", "--repeats", "1"),
        *("--json", str(after), "--compare", str(baseline)),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "{" not in result.stdout, "the logging plugin's lines belong in the sink file"
    rows = {}
    for line in result.stdout.splitlines():
        for label in (*BUDGET_LABELS, *WHOLE_LABELS):
            if line[2:].startswith(label + " "):
                rows[label] = line[2 + len(label) :].split()
    assert set(rows) == {*BUDGET_LABELS, *WHOLE_LABELS}
    for label, (before, now, ratio) in rows.items():
        assert float(before) > 0 and ratio.endswith("x"), label  # the baseline has every row
        assert label.startswith("unaccounted") or float(now) > 0, label
    figures = json.loads(after.read_text())
    assert set(figures) >= {*BUDGET_LABELS, *WHOLE_LABELS}


def test_a_ratio_next_to_its_threshold_shows_which_side_it_is_on():
    from bench.report import _ratio

    assert _ratio(0.4958, 0.5) == "0.496x"  # FAIL: "0.50x" would read as a pass
    assert _ratio(0.5049, 0.5) == "0.505x"
    assert _ratio(0.5312, 0.6) == "0.53x"
    assert _ratio(1.7, 1.7) == "1.700x"


def worktrees() -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "list"], capture_output=True, text=True, check=True
    ).stdout


COMPARE_RUN = ["bench.compare", "HEAD", "--rounds", "1", "--duration", "1", "--sensors", "2"]
needs_git = pytest.mark.skipif(
    not (ROOT / ".git").exists(), reason="bench.compare checks out a git revision"
)


@needs_git
def test_compare_serves_the_base_revision_from_its_own_checkout_beside_the_work_tree():
    result = run_module(*COMPARE_RUN, "--scenarios", "api_root,sensor_self")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    # Where each server really ran, as /proc saw it: the code it imported.
    base_dir = re.search(r"^base: serving from (\S+)$", out, re.M).group(1)
    this_dir = re.search(r"^this: serving from (\S+)$", out, re.M).group(1)
    assert Path(this_dir) == ROOT
    assert "sensorhub-compare-base-" in base_dir
    assert not Path(base_dir).exists(), "the base checkout was left behind"
    assert base_dir not in worktrees(), "the base worktree was left registered"
    for scenario in ("api_root", "sensor_self"):
        for tree in ("base", "this"):
            assert re.search(rf"^{scenario}\s+{tree}\s+[\d,]+\s+[\d,]+\s+[\d.]+", out, re.M)
    assert re.search(r"sensor_self\s+this\s+.*\s\d+\.\d{3}\s", out), "no ratio to api_root"
    assert "work tree ÷ base, CPU a request (medians): api_root " in out


@needs_git
def test_compare_applies_a_setting_to_the_work_tree_only_and_fails_on_refusals():
    # One request a second per sensor, no burst: the work tree's sensors get 429s, BASE's none
    # (however slowly the servers run, as under coverage).
    result = run_module(
        *COMPARE_RUN,
        "--scenarios",
        "sensor_self",
        "--setting",
        "sensorhub.auth.sensor_rate=1",
        "--setting",
        "sensorhub.auth.sensor_burst=1",
    )
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    verdict = result.stdout.strip().splitlines()[-1]
    assert verdict.startswith("answers that were not a 2xx, or socket errors: this: ")
    assert "base" not in verdict


@needs_git
def test_compare_names_a_revision_it_cannot_check_out():
    result = run_module("bench.compare", "no-such-revision-anywhere")
    assert result.returncode == 2
    assert "could not check out 'no-such-revision-anywhere'" in result.stderr
