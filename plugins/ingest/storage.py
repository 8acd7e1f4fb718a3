"""Writing and reading events with SQLAlchemy Core (no ORM object per event).

:func:`write_jobs` stores the rows of one or more :class:`WriteJob` (a request's validated
events) in the caller's transaction: multi-row ``INSERT … ON CONFLICT (sensor_id, event_id) DO
NOTHING`` statements for the rows with an ``eventId`` (how each database learns which were new
is with its functions below), plain inserts for the rest, then an upsert of the sensors'
counters. It fills each job's per-row outcome (accepted or
duplicate): a duplicate is an ``eventId`` already stored for that sensor, or one seen earlier
in the same write (the same request or another request in the same group commit).

Exactness of the counters: they change only in the transaction that changes the events, and
the prune decrements them in the transaction that deletes. On SQLite a group whose events are
all new is one autocommitted statement (:func:`insert_all_new`): each sqlite3 call gives up the
GIL, which the single writer thread then waits to get back behind the request threads. It
inserts into a temporary view whose trigger stores each event and counts it in the same
statement; each connection makes the view the first time it writes that way (``TEMP``: per
connection, not in the schema, so nothing changes for other code or older releases).
"""

from __future__ import annotations

import base64
import functools
import itertools
import operator
import sqlite3
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
from sqlalchemy import (
    and_,
    bindparam,
    case,
    column,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    table,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from sensorhub.db import DriverRead
from sensorhub.sensor_info import SENSOR_ID

from .models import events_table, stats_table


@dataclass
class WriteJob:
    """One request's work: its valid rows (in request order) and how many items it rejected."""

    sensor_id: str
    rows: list[dict]
    rejected: int = 0
    accepted_flags: list[bool] = field(default_factory=list)  # per row, filled by write_jobs
    # Positions of rows not stored because their eventId is stored (or earlier in the same
    # write) with a different payload: the sender learns its resend is not what it first sent.
    conflicts: set[int] = field(default_factory=set)

    @property
    def accepted(self) -> int:
        return sum(self.accepted_flags)

    @property
    def duplicates(self) -> int:
        return len(self.rows) - self.accepted


EVENT_COLUMNS = ("sensor_id", "event_id", "type", "value", "unit", "ts", "received_at", "data")


def _unnest_rows():
    """PostgreSQL: the rows as one array parameter per column, ``unnest``-ed back into rows.
    One short statement whatever the batch size: a multi-row ``VALUES`` of 100 events has 800
    placeholders, which psycopg re-parses on every execution and the server re-plans (what that
    cost is in docs/benchmarks.md)."""
    columns = events_table.c
    arrays = [bindparam(name, type_=postgresql.ARRAY(columns[name].type)) for name in EVENT_COLUMNS]
    rows = func.unnest(*arrays).table_valued(*EVENT_COLUMNS).render_derived(name="batch")
    return select(*(rows.c[name] for name in EVENT_COLUMNS))


# SQLite statements come in a few fixed row counts: any number of rows is written as a handful
# of multi-row statements, the powers of two from 512 down to 16, then one statement of exactly
# the rows left (fewer than 16). SQLAlchemy does not cache the compiled form of a multi-row
# VALUES (it recompiles it on every call), so each size is compiled once here, to its SQL text
# and the order of its positional parameters, and run as that text. Each statement costs the
# single writer thread a round trip for the GIL under load, so a group of a few single-event
# requests is one statement, not one per bit of its row count (docs/benchmarks.md); the sizes
# stay few enough for the driver's statement cache (128 per connection).
_CHUNK_SIZES = tuple(2**exponent for exponent in range(9, 3, -1))


def _is_one_chunk(count: int) -> bool:
    """Whether ``count`` rows are a single statement of :func:`_chunks`."""
    return count < _CHUNK_SIZES[-1] or count in _CHUNK_SIZES


def _chunks(rows: list[dict]):
    start = 0
    for size in _CHUNK_SIZES:
        while len(rows) - start >= size:
            yield rows[start : start + size]
            start += size
    if start < len(rows):
        yield rows[start:]


@dataclass(frozen=True)
class _MultiRow:
    sql: str
    columns: tuple[str, ...]
    row_values: Callable[[dict], tuple] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.columns) < 2:
            raise ValueError("itemgetter of one column gives a value, not a tuple")
        object.__setattr__(self, "row_values", operator.itemgetter(*self.columns))

    def parameters(self, rows: list[dict]) -> tuple:
        # Built in C, not one Python step per value: ~5 % of the writer's instructions on a
        # 1000-event batch (docs/benchmarks.md).
        return tuple(itertools.chain.from_iterable(map(self.row_values, rows)))

    def execute(self, connection, rows: list[dict]):
        """Run this statement on ``rows`` (exactly its size) as its compiled text."""
        return connection.exec_driver_sql(self.sql, self.parameters(rows))


def _compiled_multi_row(statement, columns: tuple[str, ...], size: int) -> _MultiRow:
    compiled = statement.compile(dialect=sqlite.dialect())
    expected = tuple(f"{name}_{index}" for index in range(size) for name in columns)
    assert tuple(compiled.positiontup) == expected, "parameters out of row order"
    return _MultiRow(str(compiled), columns)


def _numbered_values(table, columns: tuple[str, ...], size: int) -> list[dict]:
    return [
        {name: bindparam(f"{name}_{index}", type_=table.c[name].type) for name in columns}
        for index in range(size)
    ]


@functools.cache
def _sqlite_insert_events(size: int) -> _MultiRow:
    statement = (
        sqlite.insert(events_table)
        .values(_numbered_values(events_table, EVENT_COLUMNS, size))
        .on_conflict_do_nothing(index_elements=["sensor_id", "event_id"])
    )
    return _compiled_multi_row(statement, EVENT_COLUMNS, size)


# SQLite: a temporary view over the events, whose trigger stores a row inserted into it and adds
# it to its sensor's counters; last_event_at keeps the newest ts (an event arriving late does not
# move it back), as the counters upsert below does. Without a conflict clause, a key already
# stored (or a sensor deleted meanwhile) fails the statement, and SQLite backs all of it out.
_NEW_EVENTS_VIEW = "ingest_new_events"
_NEW_EVENTS_DDL = (
    """
    CREATE TEMP VIEW IF NOT EXISTS ingest_new_events AS
    SELECT sensor_id, event_id, type, value, unit, ts, received_at, data FROM main.ingest_events
    """,
    """
    CREATE TEMP TRIGGER IF NOT EXISTS ingest_store_and_count_new_event
    INSTEAD OF INSERT ON ingest_new_events
    BEGIN
        INSERT INTO ingest_events (sensor_id, event_id, type, value, unit, ts, received_at, data)
        VALUES (NEW.sensor_id, NEW.event_id, NEW.type, NEW.value, NEW.unit, NEW.ts,
                NEW.received_at, NEW.data);
        INSERT INTO ingest_sensor_stats
            (sensor_id, event_count, duplicate_count, rejected_count, last_event_at)
        VALUES (NEW.sensor_id, 1, 0, 0, NEW.ts)
        ON CONFLICT (sensor_id) DO UPDATE SET
            event_count = event_count + 1,
            last_event_at = max(coalesce(last_event_at, excluded.last_event_at),
                                excluded.last_event_at);
    END
    """,
)
_HAS_NEW_EVENTS_VIEW = "ingest.new_events_view"  # key in a pooled connection's info


@functools.cache
def _sqlite_insert_new_events(size: int) -> _MultiRow:
    view = table(_NEW_EVENTS_VIEW, *(column(name) for name in EVENT_COLUMNS))
    statement = insert(view).values(_numbered_values(events_table, EVENT_COLUMNS, size))
    return _compiled_multi_row(statement, EVENT_COLUMNS, size)


def insert_all_new(engine, jobs: list[WriteJob]) -> bool:
    """SQLite: store and count ``jobs`` in one autocommitted statement if every row is new;
    False, with nothing written, when they need :func:`write_jobs` in a transaction instead.

    That is the common group under load (a few requests, every row keyed, none rejected, none
    repeated). A group of more rows than one statement takes, on another database, or on
    connections not in autocommit, also goes to write_jobs. A connection makes the view the
    first time it is used here."""
    if engine.dialect.name != "sqlite":
        return False
    count = sum(len(job.rows) for job in jobs)
    if not count or not _is_one_chunk(count):
        return False
    rows = []
    keys = set()
    for job in jobs:
        if job.rejected:
            return False
        for row in job.rows:
            key = (job.sensor_id, row["event_id"])
            if key[1] is None or key in keys:
                return False
            keys.add(key)
            rows.append({**row, "sensor_id": job.sensor_id})
    pooled = engine.raw_connection()
    try:
        driver = pooled.driver_connection
        if driver.isolation_level is not None:
            # The driver would open a transaction the pool then rolls back: this path needs the
            # autocommit connections sensorhub.db's engine makes.
            return False
        if not pooled.info.get(_HAS_NEW_EVENTS_VIEW):
            for ddl in _NEW_EVENTS_DDL:
                driver.execute(ddl)
            pooled.info[_HAS_NEW_EVENTS_VIEW] = True
        statement = _sqlite_insert_new_events(len(rows))
        try:
            driver.execute(statement.sql, statement.parameters(rows))
        except sqlite3.IntegrityError:
            return False
    finally:
        pooled.close()
    for job in jobs:
        job.accepted_flags = [True] * len(job.rows)
    return True


@functools.cache
def _sqlite_upsert_counters(size: int) -> _MultiRow:
    statement = _counters_upsert(
        sqlite.insert(stats_table).values(_numbered_values(stats_table, COUNTER_COLUMNS, size))
    )
    return _compiled_multi_row(statement, COUNTER_COLUMNS, size)


def _execute_multi_row(connection, make, rows: list[dict]) -> None:
    """Run ``rows`` through the cached statements ``make(size)``, a chunk at a time."""
    for chunk in _chunks(rows):
        make(len(chunk)).execute(connection, chunk)


KEY_COLUMNS = ("sensor_id", "event_id")


@functools.cache
def _sqlite_stored_ids(size: int) -> _MultiRow:
    columns = events_table.c
    # An OR of (sensor_id, event_id) pairs: SQLite searches the unique index once per pair,
    # where a row-value IN scans it whole.
    statement = select(columns.sensor_id, columns.event_id, columns.id).where(
        or_(
            *(
                and_(
                    *(
                        columns[name] == bindparam(f"{name}_{index}", type_=columns[name].type)
                        for name in KEY_COLUMNS
                    )
                )
                for index in range(size)
            )
        )
    )
    return _compiled_multi_row(statement, KEY_COLUMNS, size)


def _insert_keyed_sqlite(connection, rows: list[dict]) -> set[tuple[str, str]]:
    """Insert the rows whose key is not stored yet (``ON CONFLICT DO NOTHING``); return the keys
    inserted.

    A chunk whose row count is its size had no duplicate: nothing is read, the common case.
    When the count falls short, the chunk's keys are read back with their ids: SQLite gives each
    new row the largest rowid so far plus one, so the rows one statement inserted are exactly the
    ``rowcount`` ids ending at its ``lastrowid`` (the writer's transaction holds SQLite's write
    lock, ``BEGIN IMMEDIATE``, so no other writer interleaves). Ids that disagree raise, which
    rolls the group back: never a wrong answer. ``RETURNING`` would cost a driver call per row,
    and every sqlite3 call gives up the GIL, which the single writer thread then queues to get
    back behind the request threads."""
    inserted: set[tuple[str, str]] = set()
    for chunk in _chunks(rows):
        result = _sqlite_insert_events(len(chunk)).execute(connection, chunk)
        count = result.rowcount
        if count == len(chunk):
            inserted.update((row["sensor_id"], row["event_id"]) for row in chunk)
        elif count:
            inserted |= _keys_inserted_sqlite(connection, chunk, count, result.lastrowid)
    return inserted


def _keys_inserted_sqlite(
    connection, chunk: list[dict], count: int, last_id: int
) -> set[tuple[str, str]]:
    found = _sqlite_stored_ids(len(chunk)).execute(connection, chunk)
    new = {(sensor_id, event_id) for sensor_id, event_id, id_ in found if id_ > last_id - count}
    if len(new) != count:
        raise RuntimeError(
            f"a multi-row insert stored {count} events but {len(new)} have its new ids: "
            "were rowids given out of order, or is the transaction missing BEGIN IMMEDIATE?"
        )
    return new


def _insert_unkeyed_sqlite(connection, rows: list[dict]) -> None:
    _execute_multi_row(connection, _sqlite_insert_events, rows)


def _upsert_counters_sqlite(connection, rows: list[dict]) -> None:
    _execute_multi_row(connection, _sqlite_upsert_counters, rows)


_POSTGRESQL_INSERT_KEYED = (
    postgresql.insert(events_table)
    .from_select(EVENT_COLUMNS, _unnest_rows())
    .on_conflict_do_nothing(index_elements=["sensor_id", "event_id"])
    .returning(events_table.c.sensor_id, events_table.c.event_id)
)


def _insert_keyed_postgresql(connection, rows: list[dict]) -> set[tuple[str, str]]:
    """One statement whatever the batch size; ``RETURNING`` says which rows were new, exact
    under concurrent writers (psycopg fetches the result in one go)."""
    return set(map(tuple, connection.execute(_POSTGRESQL_INSERT_KEYED, _as_columns(rows))))


def _insert_unkeyed_postgresql(connection, rows: list[dict]) -> None:
    connection.execute(insert(events_table), rows)


def _upsert_counters_postgresql(connection, rows: list[dict]) -> None:
    connection.execute(_POSTGRESQL_UPSERT_COUNTERS, rows)


COUNTER_COLUMNS = ("sensor_id", "event_count", "duplicate_count", "rejected_count", "last_event_at")


def _counters_upsert(statement):
    """Add the new counts to the sensor's row (or create it): an increment, never a recount."""
    excluded, current = statement.excluded, stats_table.c
    return statement.on_conflict_do_update(
        index_elements=["sensor_id"],
        set_={
            "event_count": current.event_count + excluded.event_count,
            "duplicate_count": current.duplicate_count + excluded.duplicate_count,
            "rejected_count": current.rejected_count + excluded.rejected_count,
            "last_event_at": case(
                (excluded.last_event_at.is_(None), current.last_event_at),
                (current.last_event_at.is_(None), excluded.last_event_at),
                (current.last_event_at >= excluded.last_event_at, current.last_event_at),
                else_=excluded.last_event_at,
            ),
        },
    )


_POSTGRESQL_UPSERT_COUNTERS = _counters_upsert(postgresql.insert(stats_table))

_WRITERS = {  # dialect name -> (insert keyed rows, insert unkeyed rows, upsert counters)
    "sqlite": (_insert_keyed_sqlite, _insert_unkeyed_sqlite, _upsert_counters_sqlite),
    "postgresql": (
        _insert_keyed_postgresql,
        _insert_unkeyed_postgresql,
        _upsert_counters_postgresql,
    ),
}


def write_jobs(connection, jobs: list[WriteJob]) -> None:
    """Insert the jobs' rows and update the counters, in ``connection``'s open transaction."""
    insert_keyed, insert_unkeyed, upsert_counters = _WRITERS[connection.dialect.name]
    seen: set[tuple[str, str]] = set()
    keyed: list[dict] = []
    unkeyed: list[dict] = []
    for job in jobs:
        flags = job.accepted_flags = [True] * len(job.rows)
        sensor_id = job.sensor_id
        for position, row in enumerate(job.rows):
            event_id = row["event_id"]
            params = {**row, "sensor_id": sensor_id}
            if event_id is None:
                unkeyed.append(params)
                continue
            key = (sensor_id, event_id)
            if key in seen:
                flags[position] = False
            else:
                seen.add(key)
                keyed.append(params)
    inserted: set[tuple[str, str]] = set()
    if keyed:
        inserted = insert_keyed(connection, keyed)
    if unkeyed:
        insert_unkeyed(connection, unkeyed)
    if len(inserted) != len(keyed):
        for job in jobs:
            for position, row in enumerate(job.rows):
                if (
                    job.accepted_flags[position]
                    and row["event_id"] is not None
                    and (job.sensor_id, row["event_id"]) not in inserted
                ):
                    job.accepted_flags[position] = False
    if len(inserted) != sum(len(job.rows) for job in jobs) - len(unkeyed):
        _find_conflicts(connection, jobs, keyed)
    counters = _counter_rows(jobs)
    if counters:
        upsert_counters(connection, counters)


PAYLOAD_COLUMNS = ("type", "value", "unit", "ts", "data")


def _find_conflicts(connection, jobs: list[WriteJob], keyed: list[dict]) -> None:
    """Mark each duplicate whose payload differs from the one stored (or written first in this
    write). Only runs when there are duplicates: one read of their stored rows."""
    first_written = {(row["sensor_id"], row["event_id"]): row for row in keyed}
    wanted: dict[str, set[str]] = defaultdict(set)
    for job in jobs:
        for position, row in enumerate(job.rows):
            if not job.accepted_flags[position] and row["event_id"] is not None:
                wanted[job.sensor_id].add(row["event_id"])
    stored: dict[tuple[str, str], tuple] = {}
    columns = events_table.c
    for sensor_id, event_ids in wanted.items():
        ordered = sorted(event_ids)
        for start in range(0, len(ordered), 500):  # bound the IN list
            result = connection.execute(
                select(columns.event_id, *(columns[name] for name in PAYLOAD_COLUMNS)).where(
                    columns.sensor_id == sensor_id,
                    columns.event_id.in_(ordered[start : start + 500]),
                )
            )
            for event_id, *payload in result:
                stored[(sensor_id, event_id)] = tuple(payload)
    for job in jobs:
        for position, row in enumerate(job.rows):
            key = (job.sensor_id, row["event_id"])
            if job.accepted_flags[position] or row["event_id"] is None:
                continue
            reference = stored.get(key)
            if reference is None:  # written earlier in this same write, not stored before
                first = first_written.get(key)
                reference = tuple(first[name] for name in PAYLOAD_COLUMNS) if first else None
            if reference is not None and not _same_payload(reference, row):
                job.conflicts.add(position)


def _same_payload(stored: tuple, row: dict) -> bool:
    type_, value, unit, ts, data = stored
    if (type_, value, unit) != (row["type"], row["value"], row["unit"]):
        return False
    # An event sent without ts gets its arrival time (to the microsecond, which no sensor's
    # ts matches): a resend of it arrives later, and is still the same event.
    if row["ts"] != row["received_at"] and ts != row["ts"]:
        return False
    if data == row["data"]:
        return True
    # The same object may be written with its keys in another order.
    return (
        data is not None
        and row["data"] is not None
        and orjson.loads(data) == orjson.loads(row["data"])
    )


def _as_columns(rows: list[dict]) -> dict[str, list]:
    return {name: [row[name] for row in rows] for name in EVENT_COLUMNS}


def _counter_rows(jobs: list[WriteJob]) -> list[dict]:
    totals: dict[str, list] = defaultdict(lambda: [0, 0, 0, None])
    for job in jobs:
        total = totals[job.sensor_id]
        total[2] += job.rejected
        for row, accepted in zip(job.rows, job.accepted_flags, strict=True):
            if accepted:
                total[0] += 1
                if total[3] is None or row["ts"] > total[3]:
                    total[3] = row["ts"]
            else:
                total[1] += 1
    # Sorted: concurrent writers (several processes) lock the counter rows in the same order.
    return [
        {
            "sensor_id": sensor_id,
            "event_count": t[0],
            "duplicate_count": t[1],
            "rejected_count": t[2],
            "last_event_at": t[3],
        }
        for sensor_id, t in sorted(totals.items())
        if t[0] or t[1] or t[2]
    ]


# A sensor's counters as GET /api/v1/sensor reads them (the core's sensor_info contract): one
# column each, by the sensor's id, NULL while it has no row.
SENSOR_INFO_COLUMNS = tuple(
    select(column).where(stats_table.c.sensor_id == SENSOR_ID).scalar_subquery().label(column.name)
    for column in (
        stats_table.c.event_count,
        stats_table.c.duplicate_count,
        stats_table.c.rejected_count,
        stats_table.c.last_event_at,
    )
)


# --- reads: keyset pagination over (ts, id), newest or oldest first


@dataclass(frozen=True)
class EventQuery:
    sensor_id: str
    types: tuple[str, ...] = ()
    since: int | None = None  # epoch µs, inclusive
    until: int | None = None  # epoch µs, exclusive
    newest_first: bool = True
    after: tuple[int, int] | None = None  # (ts, id) of the last event already returned


def read_events(connection, query: EventQuery, limit: int) -> list:
    """A page of ``query``, in its order: rows of (id, event_id, type, value, unit, ts,
    received_at, data), to be unpacked by position.

    On SQLite the database hands the page over as one JSON array: the driver gives up the GIL
    for every row it steps through, and under load each of those hand-offs between the
    server's threads costs more than the row (what it bought: docs/benchmarks.md). The array
    is parsed by orjson, and SQLite promises no order within an aggregate, so the rows are put
    in the query's order here. PostgreSQL's driver takes a result whole, so its rows are
    fetched as they are.
    """
    parameters, shape = _page(query, limit)
    if connection.dialect.name != "sqlite":
        return connection.execute(_events_statement(*shape), parameters).all()
    page = connection.execute(_events_as_json(*shape), _as_json_parameters(parameters))
    return _in_order(page.scalar_one(), query)


def read_page(request, query: EventQuery, limit: int) -> list:
    """:func:`read_events` for a request's page: on SQLite its one statement runs on the
    driver (the core's ``DriverRead``), without the request's session or SQLAlchemy's
    execution, which under load cost more than the page (docs/benchmarks.md)."""
    if request.registry["dbengine"].dialect.name != "sqlite":
        return read_events(request.dbsession.connection(), query, limit)
    parameters, shape = _page(query, limit)
    [(page,)] = _page_read(*shape).all(request, **_as_json_parameters(parameters))
    return _in_order(page, query)


def _in_order(page: str, query: EventQuery) -> list:
    rows = orjson.loads(page)
    rows.sort(key=row_position, reverse=query.newest_first)
    return rows


# A row's (ts, id): its place in a page's keyset order, what a cursor and ``EventQuery.after``
# carry.
row_position = operator.itemgetter(5, 0)


def _page(query: EventQuery, limit: int) -> tuple[dict, tuple]:
    """The parameters of a page of ``query`` and the shape of its statement."""
    parameters = {"sensor_id": query.sensor_id, "limit": limit}
    if query.types:
        parameters["types"] = list(query.types)
    if query.since is not None:
        parameters["since"] = query.since
    if query.until is not None:
        parameters["until"] = query.until
    if query.after is not None:
        parameters["after_ts"], parameters["after_id"] = query.after
    shape = (
        query.newest_first,
        bool(query.types),
        query.since is not None,
        query.until is not None,
        query.after is not None,
    )
    return parameters, shape


@functools.cache
def _events_statement(
    newest_first: bool,
    types: bool,
    since: bool,
    until: bool,
    after: bool,
    types_as_json: bool = False,
):
    """One statement per shape of query (at most 32), its values bound at execution: building a
    select and its cache key costs more than running it on a small page. With
    ``types_as_json`` (SQLite) the types are one parameter, a JSON array, instead of an
    expanding ``IN`` that SQLAlchemy renders anew for each call."""
    columns = events_table.c
    conditions = [columns.sensor_id == bindparam("sensor_id")]
    if types and types_as_json:
        each = func.json_each(bindparam("types")).table_valued("value")
        conditions.append(columns.type.in_(select(each.c.value)))
    elif types:
        conditions.append(columns.type.in_(bindparam("types", expanding=True)))
    if since:
        conditions.append(columns.ts >= bindparam("since"))
    if until:
        conditions.append(columns.ts < bindparam("until"))
    if after:
        position = tuple_(columns.ts, columns.id)
        bound = tuple_(bindparam("after_ts"), bindparam("after_id"))
        conditions.append(position < bound if newest_first else position > bound)
    order = (
        (columns.ts.desc(), columns.id.desc())
        if newest_first
        else (columns.ts.asc(), columns.id.asc())
    )
    return (
        select(
            columns.id,
            columns.event_id,
            columns.type,
            columns.value,
            columns.unit,
            columns.ts,
            columns.received_at,
            columns.data,
        )
        .where(and_(*conditions))
        .order_by(*order)
        .limit(bindparam("limit"))
    )


@functools.cache
def _events_as_json(*shape: bool):
    """SQLite: the page of :func:`_events_statement` as one JSON array of row arrays. A value is
    written with 18 significant digits (``%!.17e``: SQLite's printf, whose shorter forms and
    ``quote()`` do not give every double back exactly), which orjson reads back as the same
    double."""
    row = _events_statement(*shape, types_as_json=True).subquery().c
    value = func.json(
        case((row.value.is_(None), literal("null")), else_=func.printf("%!.17e", row.value))
    )
    columns = (row.id, row.event_id, row.type, value, row.unit, row.ts, row.received_at, row.data)
    return select(func.json_group_array(func.json_array(*columns)))


@functools.cache
def _page_read(*shape: bool) -> DriverRead:
    return DriverRead(_events_as_json(*shape))


def _as_json_parameters(parameters: dict) -> dict:
    """The parameters of :func:`_events_as_json`: the types as one JSON array."""
    if "types" not in parameters:
        return parameters
    return {**parameters, "types": orjson.dumps(parameters["types"]).decode()}


def encode_cursor(newest_first: bool, ts: int, row_id: int) -> str:
    raw = orjson.dumps(["n" if newest_first else "o", ts, row_id])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str, newest_first: bool) -> tuple[int, int]:
    """``(ts, id)`` from a cursor; ValueError if it is not one we issued for this order."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        order, ts, row_id = orjson.loads(raw)
    except (ValueError, TypeError):
        raise ValueError("cursor is not one this server issued; start again without it")
    if (
        order != ("n" if newest_first else "o")
        or type(ts) is not int
        or type(row_id) is not int
        or not (abs(ts) < 2**63 and abs(row_id) < 2**63)
    ):
        raise ValueError(
            "cursor belongs to another order or is damaged; use the same order "
            "as the request that returned it, or start again without it"
        )
    return ts, row_id


# --- retention


def prune_sensor_chunk(connection, sensor_id: str, cutoff_us: int, chunk: int) -> int:
    """Delete up to ``chunk`` of a sensor's events older than ``cutoff_us`` and decrement its
    counters, in ``connection``'s transaction. Returns how many were deleted."""
    columns = events_table.c
    ids = (
        connection.execute(
            select(columns.id)
            .where(columns.sensor_id == sensor_id, columns.ts < cutoff_us)
            .order_by(columns.ts)
            .limit(chunk)
        )
        .scalars()
        .all()
    )
    if not ids:
        return 0
    deleted = connection.execute(delete(events_table).where(columns.id.in_(ids))).rowcount
    stats = stats_table.c
    remaining = stats.event_count - deleted
    connection.execute(
        update(stats_table)
        .where(stats.sensor_id == sensor_id)
        .values(
            event_count=remaining,
            # Deleting by ts < cutoff removes the newest event only when it removes all.
            last_event_at=case((remaining <= 0, None), else_=stats.last_event_at),
        )
    )
    return deleted


def sensors_with_events(connection) -> list[str]:
    return list(
        connection.execute(
            select(stats_table.c.sensor_id)
            .where(stats_table.c.event_count > 0)
            .order_by(stats_table.c.sensor_id)
        ).scalars()
    )


def count_prunable(connection, sensor_id: str, cutoff_us: int) -> int:
    return connection.execute(
        select(func.count())
        .select_from(events_table)
        .where(events_table.c.sensor_id == sensor_id, events_table.c.ts < cutoff_us)
    ).scalar_one()
