"""How fast the dashboard's pages answer on a big fleet: ``make bench-dashboard``.

Fills a SQLite file with ``--sensors`` sensors (10,000) and ``--events`` events (10M) straight
through SQLite (``INSERT … SELECT`` over a recursive CTE, no Python per row, in key order so
every index is appended to), then serves it with the dashboard (``auth ingest dashboard`` on
waitress, through ``bench.serve`` as ``make bench`` does) and times each page: the median, p90
and max of ``--requests`` sequential requests after one warm-up, as an admin script (bearer
header), with the ratio to ``/healthz`` measured in the same run (the transport's own cost).

The fill is kept (``--database``, default ``var/bench-dashboard-<sensors>-<events>.sqlite``)
and reused when it already holds that many sensors and events: filling 10M events takes
minutes, timing the pages seconds. ``--fresh`` fills again.

The data: each sensor has ``events / sensors`` events (three types, one every
``--spacing``, newest now), a counters row as the ingest plugin keeps it, and a last-seen time
(every tenth sensor stale). ``--hot-events`` more events in the last hour go to the first
sensor, so the first overview page shows what the per-sensor count cap bounds.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from .servers import ADMIN_TOKEN, BenchError, Server, open_for_bulk_fill

ROOT = Path(__file__).resolve().parent.parent
SESSION_SECRET = secrets.token_urlsafe(32)


class DashboardServer(Server):
    def settings(self) -> dict[str, str]:
        return {
            **super().settings(),
            "sensorhub.dashboard.session_secret": SESSION_SECRET,
            "sensorhub.dashboard.secure_cookie": "false",
        }


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__)
    parser.add_argument("--sensors", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--hot-events", type=int, default=50_000)
    parser.add_argument("--spacing", type=float, default=300.0, help="seconds between events")
    parser.add_argument("--requests", type=int, default=15, help="timed requests per page")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--database", type=Path, default=None)
    parser.add_argument("--fresh", action="store_true", help="fill again even if it exists")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    return parser.parse_args(argv)


def say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


# --- the fill


def sensor_id(index: int) -> str:
    return f"sen_bench{index:07d}"


def filled(path: Path, sensors: int, events: int) -> bool:
    if not path.exists():
        return False
    with sqlite3.connect(path) as connection:
        try:
            (count,) = connection.execute("SELECT count(*) FROM sensors").fetchone()
            (stored,) = connection.execute(
                "SELECT coalesce(sum(event_count), 0) FROM ingest_sensor_stats"
            ).fetchone()
        except sqlite3.OperationalError:
            return False
    return count == sensors and stored == events


def fill(path: Path, sensors: int, events: int, hot_events: int, spacing: float) -> None:
    """Sensors, their counters and their events, in primary-key and index order."""
    per_sensor, extra = divmod(events - hot_events, sensors)
    if per_sensor < 1 or extra:
        raise BenchError(
            f"--events minus --hot-events ({events - hot_events}) must be a multiple of "
            f"--sensors ({sensors}) and at least as large"
        )
    now_us = int(datetime.now(UTC).timestamp() * 1_000_000)
    step_us = int(spacing * 1_000_000)
    now_text = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    connection = open_for_bulk_fill(path)
    try:
        connection.execute("BEGIN")
        started = time.monotonic()
        connection.execute(
            """
            WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < :count)
            INSERT INTO sensors (id, name, metadata, created_at, last_seen_at, disabled)
            SELECT printf('sen_bench%07d', i), printf('bench sensor %d', i), NULL, :now,
                   -- every tenth sensor last seen two hours ago: stale
                   datetime(:now, CASE WHEN i % 10 = 9 THEN '-2 hours'
                                       ELSE printf('-%d seconds', i % 300) END),
                   0
            FROM n
            """,
            {"count": sensors, "now": now_text},
        )
        connection.execute(
            """
            INSERT INTO ingest_events (sensor_id, event_id, type, value, unit, ts, received_at)
            SELECT s.id, NULL,
                   CASE n.i % 3 WHEN 0 THEN 'temperature' WHEN 1 THEN 'humidity'
                                ELSE 'pressure' END,
                   round(20 + (abs(random()) % 1000) / 100.0, 2), 'u',
                   :now - (:per - 1 - n.i) * :step, :now - (:per - 1 - n.i) * :step
            FROM sensors AS s
            JOIN (WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n
                                          WHERE i + 1 < :per) SELECT i FROM n) AS n
            ORDER BY s.id, n.i
            """,
            {"now": now_us, "per": per_sensor, "step": step_us},
        )
        if hot_events:
            hot_step = max(1, 3_600_000_000 // hot_events)
            connection.execute(
                """
                WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < :k)
                INSERT INTO ingest_events (sensor_id, event_id, type, value, unit, ts,
                                           received_at)
                SELECT :sensor, NULL, 'vibration', (abs(random()) % 1000) / 10.0, 'mm/s',
                       :now - 1 - (:k - n.i) * :step, :now - 1 - (:k - n.i) * :step
                FROM n
                """,
                {"k": hot_events, "now": now_us, "step": hot_step, "sensor": sensor_id(0)},
            )
        connection.execute(
            """
            INSERT INTO ingest_sensor_stats
                (sensor_id, event_count, duplicate_count, rejected_count, last_event_at)
            SELECT sensor_id, count(*), abs(random()) % 5, abs(random()) % 3, max(ts)
            FROM ingest_events GROUP BY sensor_id
            """
        )
        connection.execute("COMMIT")
        connection.execute("ANALYZE")
        say(f"  filled in {time.monotonic() - started:.0f} s")
    finally:
        connection.close()


def plans(path: Path) -> list[str]:
    """SQLite's plan for the per-sensor queries: they must search the (sensor_id, ts) index."""
    statements = {
        "window count": (
            "SELECT count(*) FROM (SELECT ts FROM ingest_events WHERE sensor_id = ? "
            "AND ts >= ? ORDER BY ts DESC LIMIT 10001)",
            (sensor_id(1), 0),
        ),
        "latest events": (
            "SELECT type, value FROM ingest_events WHERE sensor_id = ? "
            "ORDER BY ts DESC, id DESC LIMIT 500",
            (sensor_id(1),),
        ),
    }
    lines = []
    with sqlite3.connect(path) as connection:
        for name, (sql, parameters) in statements.items():
            plan = connection.execute(f"EXPLAIN QUERY PLAN {sql}", parameters).fetchall()
            lines.append(f"  {name}: " + "; ".join(row[-1] for row in plan))
    return lines


# --- the timing


def time_page(server: Server, path: str, requests: int, expect: str) -> dict:
    status, body = server.request("GET", path, token=ADMIN_TOKEN, timeout=120)  # warm-up
    if status != 200 or expect not in str(body):
        raise BenchError(f"GET {path} answered {status} without {expect!r}: {str(body)[:300]}")
    durations = []
    for _ in range(requests):
        started = time.perf_counter()
        status, _ = server.request("GET", path, token=ADMIN_TOKEN, timeout=120)
        durations.append((time.perf_counter() - started) * 1000)
        if status != 200:
            raise BenchError(f"GET {path} answered {status}")
    durations.sort()
    return {
        "median_ms": statistics.median(durations),
        "p90_ms": durations[max(0, int(len(durations) * 0.9) - 1)],
        "max_ms": durations[-1],
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    database = (
        args.database or ROOT / "var" / f"bench-dashboard-{args.sensors}-{args.events}.sqlite"
    )
    database.parent.mkdir(parents=True, exist_ok=True)
    say(f"dashboard bench: {args.sensors} sensors, {args.events} events, {database}")
    with tempfile.TemporaryDirectory(prefix="sensorhub-bench-dashboard-") as workdir:
        server = DashboardServer(
            name="dashboard",
            plugins=["auth", "ingest", "dashboard"],
            workdir=Path(workdir),
            threads=args.threads,
            database_url=f"sqlite:///{database}",
        )
        if args.fresh or not filled(database, args.sensors, args.events):
            for leftover in database.parent.glob(database.name + "*"):
                leftover.unlink()
            say("  migrating and filling (minutes for 10M events) ...")
            server._migrate()
            fill(database, args.sensors, args.events, args.hot_events, args.spacing)
        else:
            say("  reusing the filled database (--fresh to fill again)")
        say("\n".join(plans(database)))
        pages = {
            "/healthz (baseline)": ("/healthz", "ok"),
            "sign-in form (no database)": ("/dashboard/sign-in", "Admin token"),
            "overview, page 1 (hot sensor)": ("/dashboard/", "Sensors, page 1 of"),
            "overview, middle page": (
                f"/dashboard/?page={max(1, args.sensors // 200)}",
                "Sensors, page",
            ),
            "overview, last page": (f"/dashboard/?page={-(-args.sensors // 100)}", "Sensors"),
            "sensor page": (f"/dashboard/sensors/{sensor_id(args.sensors // 2)}", "<svg"),
            "sensor page (hot sensor)": (f"/dashboard/sensors/{sensor_id(0)}", "<svg"),
        }
        figures = {}
        try:
            server.start()
            for label, (path, expect) in pages.items():
                figures[label] = time_page(server, path, args.requests, expect)
        finally:
            server.stop()
    baseline = figures["/healthz (baseline)"]["median_ms"]
    say(f"\n  {'page':34} {'median':>9} {'p90':>9} {'max':>9} {'x healthz':>10}")
    for label, figure in figures.items():
        say(
            f"  {label:34} {figure['median_ms']:7.1f}ms {figure['p90_ms']:7.1f}ms "
            f"{figure['max_ms']:7.1f}ms {figure['median_ms'] / baseline:9.1f}x"
        )
    worst = max(figure["median_ms"] for figure in figures.values())
    say(f"\n  slowest page median: {worst:.1f} ms (target: at most 200 ms)")
    if args.json:
        args.json.write_text(
            json.dumps({"sensors": args.sensors, "events": args.events, "pages": figures}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
