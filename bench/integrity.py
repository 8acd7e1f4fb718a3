"""Nothing lost, nothing extra: stored events against what the server acknowledged.

Two independent counts of what a server stored for its bench sensors:
- through the API, the sum of each sensor's ``eventCount`` (GET /api/v1/sensor), the figure a
  sensor would use to check itself;
- straight from the database, ``count(*)`` on the ingest plugin's event table (found by its
  ``sensor_id`` and ``event_id`` columns, so the bench does not depend on its name).
Both must agree, and the change over a run must equal the events acknowledged with 201, give or
take the requests still in flight when wrk stopped (sent, never answered: the server may have
committed them after the client hung up).

On a database pre-filled with events (the stored pass, ``bench.stored``), only rows above the
fill's largest primary key are counted, and the fill's events are taken off the sensors'
``eventCount``: the same two counts of what the bench stored, without counting millions of rows
after every run.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from sqlalchemy import MetaData, create_engine, func, select

from .servers import BenchError, Server


@dataclass
class Counts:
    api: int | None
    db: int | None

    @property
    def value(self) -> int | None:
        return self.db if self.db is not None else self.api


class EventCounter:
    def __init__(self, server: Server, above_id: int | None = None, prefilled: int = 0):
        self.server = server
        self.above_id = above_id  # the pre-filled maximum primary key; None: no fill
        self.prefilled = prefilled  # events of the fill, in the sensors' eventCount
        self._engine = None
        self._table = None

    def _find_table(self):
        if self._table is not None:
            return self._table
        self._engine = create_engine(self.server.database)
        metadata = MetaData()
        metadata.reflect(bind=self._engine)
        for table in metadata.sorted_tables:
            if {"sensor_id", "event_id"} <= set(table.columns.keys()):
                self._table = table
                return table
        return None

    def db_count(self) -> int | None:
        table = self._find_table()
        if table is None:
            return None
        if self.above_id is not None:
            # A pre-filled database holds the bench's sensors only: every row above the fill is
            # theirs, and the primary key's range is the cheap way to find them.
            where = table.c.id > self.above_id
        else:
            where = table.c.sensor_id.in_([s.sensor_id for s in self.server.sensors])
        with self._engine.connect() as connection:
            return connection.execute(
                select(func.count()).select_from(table).where(where)
            ).scalar_one()

    def api_count(self) -> int | None:
        total = 0
        for sensor in self.server.sensors:
            status, data = self.server.request(
                "GET", f"/api/v1/sensor?sensorId={sensor.sensor_id}", token=sensor.token
            )
            if status != 200 or not isinstance(data, dict):
                raise BenchError(
                    f"GET /api/v1/sensor for {sensor.sensor_id} answered {status}: {data!r}"
                )
            if "eventCount" not in data:
                return None
            total += int(data["eventCount"])
        return total - self.prefilled

    def settle(self, timeout: float = 15.0, quiet: float = 1.0) -> Counts:
        """Counts once the server has finished what was in flight: no change for ``quiet``
        seconds (a server may still be working through queued requests after wrk stops), and
        the same table count before and after the API is asked, so both describe one moment."""
        deadline = time.monotonic() + timeout
        count = self.db_count if self._find_table() is not None else self.api_count
        previous, quiet_since = count(), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.2)
            current = count()
            if current != previous:
                previous, quiet_since = current, time.monotonic()
                continue
            if time.monotonic() - quiet_since < quiet:
                continue
            api, db = self.api_count(), self.db_count()
            if db == current:
                return Counts(api=api, db=db)
            previous, quiet_since = db, time.monotonic()
        return Counts(api=self.api_count(), db=self.db_count())

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


@dataclass
class Check:
    before: int
    after: int
    acked: int
    reported_accepted: int
    in_flight_events: int
    api_after: int | None
    db_after: int | None
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def stored(self) -> int:
        return self.after - self.before

    def line(self) -> str:
        verdict = "OK" if self.ok else "VIOLATION: " + "; ".join(self.problems)
        return (
            f"stored {self.stored} = acked {self.acked} + {self.stored - self.acked} "
            f"(allowed 0..{self.in_flight_events} in flight) -> {verdict}"
        )

    def as_dict(self) -> dict:
        return {**asdict(self), "stored": self.stored, "ok": self.ok}


def check(before: Counts, after: Counts, wrk_result: dict, events_per_request: int) -> Check:
    acked = wrk_result["acked_events"]
    in_flight = (wrk_result["sent"] - wrk_result["completed"]) * events_per_request
    if before.value is None or after.value is None:
        return Check(
            0,
            0,
            acked,
            wrk_result["reported_accepted"],
            in_flight,
            after.api,
            after.db,
            [
                "cannot count stored events: no eventCount in GET "
                "/api/v1/sensor and no table with sensor_id and event_id "
                "columns"
            ],
        )
    stored = after.value - before.value
    problems = []
    if stored < acked:
        problems.append(f"{acked - stored} acknowledged events are not stored (LOST)")
    if stored > acked + in_flight:
        problems.append(
            f"{stored - acked - in_flight} events stored beyond the acknowledged "
            f"and in-flight ones (EXTRA)"
        )
    if wrk_result["reported_accepted"] != acked:
        problems.append(
            f"201 bodies report {wrk_result['reported_accepted']} accepted, the "
            f"requests carried {acked} events"
        )
    if after.api is not None and after.db is not None and after.api != after.db:
        problems.append(
            f"sensors' eventCount sums to {after.api} but the table holds {after.db} rows for them"
        )
    return Check(
        before.value,
        after.value,
        acked,
        wrk_result["reported_accepted"],
        in_flight,
        after.api,
        after.db,
        problems,
    )
