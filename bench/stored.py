"""A database pre-filled with many events, for the stored pass (``--stored N``, ``make
bench-stored``): does ingest slow down when the table and its indexes are big?

The fill is kept in ``var/bench/stored-<events>-<sensors>.sqlite`` (``--stored-dir``) beside
a record (``.json``: the bench's sensors and their tokens, the fill's largest primary key, each
sensor's counters) and reused by later runs: filling 10M events takes minutes. Before each use
the rows a previous run added (above the fill's largest key) are deleted and the counters set
back, so every run starts from the same N events; ``--fresh-fill`` fills again.

The sensors are provisioned through the API of a server on the new database (the same plugins
as the bench's), so they and their tokens are what the ingest path expects. The events then go
in straight through SQLite: one ``INSERT … SELECT`` over a recursive CTE per sensor (no Python
per row), each sensor's events in ``ts`` order with zero-padded event ids, so both indexes are
appended to; one transaction, no journal, no fsync (a throwaway file: the server reopens it in
WAL mode with its own ``synchronous``). The counters row of each sensor equals its rows, as the
ingest plugin keeps it (``plugins/ingest/models.py``).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .servers import Sensor, Server, open_for_bulk_fill

ROOT = Path(__file__).resolve().parent.parent
STORE_DIR = ROOT / "var" / "bench"
SPAN_US = 20 * 86_400 * 1_000_000  # the fill's events are spread over 20 days, inside retention

STATS_UPSERT = """
    INSERT INTO ingest_sensor_stats
        (sensor_id, event_count, duplicate_count, rejected_count, last_event_at)
    VALUES (?, ?, 0, 0, ?)
    ON CONFLICT (sensor_id) DO UPDATE SET event_count = excluded.event_count,
        duplicate_count = 0, rejected_count = 0, last_event_at = excluded.last_event_at
"""


@dataclass
class Fill:
    database: Path
    events: int
    max_id: int  # the fill's largest primary key: the bench's own events come above it
    sensors: list[Sensor]
    counters: dict[str, tuple[int, int]]  # sensor id: (event_count, last_event_at)

    @property
    def url(self) -> str:
        return f"sqlite:///{self.database}"

    @property
    def record(self) -> Path:
        return self.database.with_suffix(".json")

    def save(self) -> None:
        self.record.write_text(
            json.dumps(
                {
                    "events": self.events,
                    "max_id": self.max_id,
                    "sensors": [[s.sensor_id, s.token] for s in self.sensors],
                    "counters": self.counters,
                }
            )
        )


def prepare(
    events: int,
    sensors: int,
    plugins: list[str],
    directory: Path,
    workdir: Path,
    threads: int,
    fresh: bool,
    say: Callable[[str], None],
) -> Fill:
    """The filled database of ``events`` events over ``sensors`` sensors, as the fill left it."""
    database = directory / f"stored-{events}-{sensors}.sqlite"
    fill = None if fresh else _reusable(database, events, sensors)
    if fill is not None:
        started = time.monotonic()
        removed = _reset(fill)
        say(
            f"  reusing {_shown(database)} (--fresh-fill to fill again); {removed:,} events of "
            f"an earlier run removed in {time.monotonic() - started:.0f} s"
        )
        return fill
    say(f"  filling {_shown(database)} with {events:,} events (minutes for 10M) ...")
    directory.mkdir(parents=True, exist_ok=True)
    for leftover in directory.glob(database.stem + ".*"):
        leftover.unlink()
    provisioned = _provision(database, sensors, plugins, workdir, threads)
    started = time.monotonic()
    fill = _fill(database, events, provisioned)
    fill.save()
    say(f"  filled in {time.monotonic() - started:.0f} s")
    return fill


def _shown(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def _reusable(database: Path, events: int, sensors: int) -> Fill | None:
    """The kept fill, if its record matches and the database still holds the fill's rows."""
    record = database.with_suffix(".json")
    if not (database.exists() and record.exists()):
        return None
    data = json.loads(record.read_text())
    if data["events"] != events or len(data["sensors"]) != sensors:
        return None
    with sqlite3.connect(database) as connection:
        try:
            (kept,) = connection.execute(
                "SELECT count(*) FROM ingest_events WHERE id <= ?", (data["max_id"],)
            ).fetchone()
        except sqlite3.OperationalError:  # no such table: not a finished fill
            return None
    if kept != events:
        return None
    return Fill(
        database,
        events,
        data["max_id"],
        [Sensor(sensor_id, token) for sensor_id, token in data["sensors"]],
        {key: (count, last) for key, (count, last) in data["counters"].items()},
    )


def _reset(fill: Fill) -> int:
    """Delete what earlier runs added above the fill and set the counters back; the number of
    events removed."""
    connection = sqlite3.connect(fill.database, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        removed = connection.execute(
            "DELETE FROM ingest_events WHERE id > ?", (fill.max_id,)
        ).rowcount
        connection.executemany(
            STATS_UPSERT, [(key, count, last) for key, (count, last) in fill.counters.items()]
        )
        connection.execute("COMMIT")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()
    return removed


def _provision(
    database: Path, sensors: int, plugins: list[str], workdir: Path, threads: int
) -> list[Sensor]:
    server = Server("stored-fill", plugins, workdir, threads, database_url=f"sqlite:///{database}")
    try:
        server.start()
        server.provision_sensors(sensors)
    finally:
        server.stop()
    return server.sensors


def _fill(database: Path, events: int, sensors: list[Sensor]) -> Fill:
    now_us = int(time.time() * 1_000_000)
    per_sensor, extra = divmod(events, len(sensors))
    counters = {}
    connection = open_for_bulk_fill(database)
    try:
        connection.execute("BEGIN")
        for index, sensor_id in enumerate(sorted(s.sensor_id for s in sensors)):
            count = per_sensor + (1 if index < extra else 0)
            if not count:
                continue
            step = SPAN_US // count
            oldest = now_us - SPAN_US
            connection.execute(
                """
                WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < :k)
                INSERT INTO ingest_events
                    (sensor_id, event_id, type, value, unit, ts, received_at, data)
                SELECT :sensor, printf('fill-%010d', i),
                       CASE i % 4 WHEN 0 THEN 'temperature' WHEN 1 THEN 'humidity'
                                  WHEN 2 THEN 'pressure' ELSE 'battery' END,
                       20 + (i % 1000) / 100.0,
                       CASE i % 4 WHEN 0 THEN 'Cel' WHEN 1 THEN '%RH'
                                  WHEN 2 THEN 'hPa' ELSE 'V' END,
                       :oldest + i * :step, :oldest + i * :step,
                       printf('{"fw":"1.4.2","rssi":%d}', -40 - i % 50)
                FROM n
                """,
                {"k": count, "sensor": sensor_id, "oldest": oldest, "step": step},
            )
            counters[sensor_id] = (count, oldest + (count - 1) * step)
        connection.executemany(
            STATS_UPSERT, [(key, count, last) for key, (count, last) in counters.items()]
        )
        connection.execute("COMMIT")
        (max_id,) = connection.execute("SELECT coalesce(max(id), 0) FROM ingest_events").fetchone()
        connection.execute("PRAGMA journal_mode = WAL")
    finally:
        connection.close()
    return Fill(database, events, max_id, sensors, counters)
