"""What the pages read, and the start-up check that it can be read at all.

The dashboard owns no table. It reads the core's ``sensors`` and the ingest plugin's
``ingest_events`` and ``ingest_sensor_stats`` by name from the shared metadata
(``Base.metadata.tables``), never by importing that plugin. Every query is bounded by what a
page shows, so a page costs the same at 10 sensors and at 10,000 with 10M events:

- the overview: one page of sensor ids on the primary key alone (``LIMIT``/``OFFSET`` skip
  index entries, not joined rows), joined to their counters row (``ingest_sensor_stats``:
  accepted, duplicate and rejected counts and the newest ``ts``, kept by the ingest plugin in
  the same transaction as the events, so nothing is counted per request); then one statement
  per 100 shown sensors reads, for each, its events of the last day newest first on the
  ``(sensor_id, ts, id)`` index, capped at ``count_cap + 1`` rows, which gives both the hour
  and the day count from one index range. Fleet totals read the two per-sensor tables only.
- a sensor's page: its row and counters by key, and its ``chart_events`` newest events on the
  same index (the charts and the latest-events list come from that one read).

Event times are the sensors' own ``ts`` (epoch microseconds, UTC): that is what the index
orders. ``sensors.last_seen_at`` is when the sensor last authenticated (refreshed at most once
per ``sensorhub.auth.touch_interval``), which is what "stale" is measured by.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pyramid.interfaces import ISecurityPolicy
from sqlalchemy import Table, bindparam, case, func, literal, select, union_all
from sqlalchemy.orm import Session

from sensorhub.identity import DenyAllSecurityPolicy
from sensorhub.models import Base
from sensorhub.settings import StartupError

INGEST_TABLES = ("ingest_events", "ingest_sensor_stats")
HOUR_US = 3600 * 1_000_000
DAY_US = 24 * HOUR_US


def check_dependencies(registry) -> None:
    """Refuse to serve (one line, what to load) when the tables or the admin identity the
    pages need are not provided by a loaded plugin.

    Runs when the app is created, i.e. after every plugin was included, so the order of
    ``sensorhub.plugins`` does not matter. A table counts only if a *loaded* plugin defines it
    (another app in the same process may have imported the module that defines it)."""
    loaded = [plugin.module for plugin in registry["sensorhub.plugins"]]
    owners = {
        mapper.local_table.name: mapper.class_.__module__
        for mapper in Base.registry.mappers
        if isinstance(mapper.local_table, Table)
    }
    missing = [
        name
        for name in INGEST_TABLES
        if not any(_belongs(owners.get(name, ""), module) for module in loaded)
    ]
    if missing:
        raise StartupError(
            f"the dashboard plugin reads the tables {', '.join(missing)}, which no loaded "
            "plugin defines: load the ingest plugin too "
            "(sensorhub.plugins = auth ingest dashboard, env SENSORHUB_PLUGINS)"
        )
    policy = registry.queryUtility(ISecurityPolicy)
    if policy is None or isinstance(policy, DenyAllSecurityPolicy):
        raise StartupError(
            "the dashboard plugin signs admins in through the security policy of an auth "
            "plugin, and none is loaded: load one (sensorhub.plugins = auth ingest dashboard, "
            "env SENSORHUB_PLUGINS)"
        )


def _belongs(module: str, package: str) -> bool:
    return bool(module) and (module == package or module.startswith(package + "."))


@dataclass(frozen=True)
class SensorRow:
    id: str
    name: str
    disabled: bool
    last_seen_at: datetime | None
    event_count: int
    duplicate_count: int
    rejected_count: int
    last_event_at: datetime | None
    stale: bool
    last_hour: int | None = None
    last_day: int | None = None


@dataclass(frozen=True)
class Event:
    type: str
    value: float | None
    unit: str | None
    ts: datetime
    event_id: str | None


class Queries:
    """The statements, built once per app from the tables found at start-up."""

    def __init__(self, *, stale_after: float, count_cap: int, chart_events: int) -> None:
        tables = Base.metadata.tables
        self.sensors = tables["sensors"]
        self.events = tables["ingest_events"]
        self.stats = tables["ingest_sensor_stats"]
        self.stale_after = timedelta(seconds=stale_after)
        self.count_cap = count_cap
        s, st, e = self.sensors.c, self.stats.c, self.events.c
        # The page's keys first, on the primary key alone: OFFSET then skips index entries,
        # not joined rows (the last page of 10,000 cost twice the first one otherwise).
        keys = (
            select(s.id)
            .order_by(s.id)
            .limit(bindparam("limit"))
            .offset(bindparam("offset"))
            .subquery("page")
        )
        columns = (
            s.id,
            s.name,
            s.disabled,
            s.last_seen_at,
            func.coalesce(st.event_count, 0),
            func.coalesce(st.duplicate_count, 0),
            func.coalesce(st.rejected_count, 0),
            st.last_event_at,
        )
        with_counters = self.sensors.outerjoin(self.stats, st.sensor_id == s.id)
        self._page = (
            select(*columns).select_from(keys.join(with_counters, s.id == keys.c.id)).order_by(s.id)
        )
        self._one = (
            select(*columns).select_from(with_counters).where(s.id == bindparam("sensor_id"))
        )
        self._windows = _window_counts(self.events, count_cap)
        self._fleet = select(
            func.count(),
            func.coalesce(
                func.sum(
                    case(
                        (s.last_seen_at.is_(None), 1),
                        (s.last_seen_at < bindparam("stale_before"), 1),
                        else_=0,
                    )
                ),
                0,
            ),
        ).select_from(self.sensors)
        self._counters = select(
            func.coalesce(func.sum(st.event_count), 0),
            func.coalesce(func.sum(st.duplicate_count), 0),
            func.coalesce(func.sum(st.rejected_count), 0),
        )
        self._latest = (
            select(e.type, e.value, e.unit, e.ts, e.event_id)
            .where(e.sensor_id == bindparam("sensor_id"))
            .order_by(e.ts.desc(), e.id.desc())
            .limit(chart_events)
        )

    def fleet(self, session: Session, now: datetime) -> dict[str, int]:
        sensors, stale = session.execute(
            self._fleet, {"stale_before": now - self.stale_after}
        ).one()
        events, duplicates, rejected = session.execute(self._counters).one()
        return {
            "sensors": sensors,
            "stale": stale,
            "events": events,
            "duplicates": duplicates,
            "rejected": rejected,
        }

    def page(self, session: Session, now: datetime, limit: int, offset: int) -> list[SensorRow]:
        rows = session.execute(self._page, {"limit": limit, "offset": offset}).all()
        now_us = _epoch_us(now)
        counts: dict[str, tuple[int, int]] = {}
        for start in range(0, len(rows), WINDOW_BATCH):
            batch = [row[0] for row in rows[start : start + WINDOW_BATCH]]
            batch += [""] * (WINDOW_BATCH - len(batch))  # no sensor has the empty id
            parameters = {f"s{i}": sensor_id for i, sensor_id in enumerate(batch)}
            parameters.update(day_ago=now_us - DAY_US, hour_ago=now_us - HOUR_US)
            for index, day, hour in session.execute(self._windows, parameters):
                if batch[index]:
                    counts[batch[index]] = (day, hour)
        return [
            self._sensor(row, now, last_day=counts[row[0]][0], last_hour=counts[row[0]][1])
            for row in rows
        ]

    def sensor(self, session: Session, now: datetime, sensor_id: str) -> SensorRow | None:
        row = session.execute(self._one, {"sensor_id": sensor_id}).one_or_none()
        return None if row is None else self._sensor(row, now)

    def latest_events(self, session: Session, sensor_id: str) -> list[Event]:
        rows = session.execute(self._latest, {"sensor_id": sensor_id}).all()
        return [Event(r.type, r.value, r.unit, _from_epoch_us(r.ts), r.event_id) for r in rows]

    def _sensor(self, row: Any, now: datetime, **windows: int) -> SensorRow:
        last_seen = row[3]
        return SensorRow(
            id=row[0],
            name=row[1],
            disabled=bool(row[2]),
            last_seen_at=last_seen,
            event_count=row[4],
            duplicate_count=row[5],
            rejected_count=row[6],
            last_event_at=None if row[7] is None else _from_epoch_us(row[7]),
            stale=last_seen is None or now - last_seen > self.stale_after,
            **windows,
        )


WINDOW_BATCH = 100  # sensors per window-count statement (SQLite allows 500 compound terms)


def _window_counts(events: Table, cap: int):
    """One statement for the hour and day counts of ``WINDOW_BATCH`` sensors (bind ``s0`` …):
    per sensor, its events since ``day_ago`` newest first on the ``(sensor_id, ts, id)``
    index, at most ``cap + 1`` of them, counted whole and since ``hour_ago``. One statement
    instead of one per sensor: the per-execution cost, not SQLite's, dominated."""
    e = events.c
    parts = []
    for index in range(WINDOW_BATCH):
        recent = (
            select(e.ts)
            .where(e.sensor_id == bindparam(f"s{index}"), e.ts >= bindparam("day_ago"))
            .order_by(e.ts.desc())
            .limit(cap + 1)
            .subquery(f"w{index}")
        )
        parts.append(
            select(
                literal(index),
                func.count(),
                func.coalesce(
                    func.sum(case((recent.c.ts >= bindparam("hour_ago"), 1), else_=0)), 0
                ),
            ).select_from(recent)
        )
    return union_all(*parts)


def _epoch_us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def _from_epoch_us(value: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=value)
