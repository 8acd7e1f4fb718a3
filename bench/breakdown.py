"""Where one request's time goes, in one process: ``make bench-breakdown``.

The load benchmark says *how fast*; this says *what costs*. One thread, no HTTP (WebTest calls
the WSGI app directly), a fresh SQLite file (or ``--database-url``), plugins ``auth ingest``:
each piece of an authenticated request's path is timed alone, median µs per call over several
repeats, so the pieces can be compared with each other and with the whole requests below them.
It is a profile in numbers, not a target: absolute figures move with the machine.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

from .servers import ADMIN_TOKEN, migrate


def build(database_url: str):
    import webtest

    from sensorhub import make_app

    settings = {
        "sensorhub.database.url": database_url,
        "sensorhub.plugins": "auth ingest",
        "sensorhub.auth.admin_token": ADMIN_TOKEN,
    }
    migrate(settings)
    app = make_app(settings, environ={})
    testapp = webtest.TestApp(app, extra_environ={"HTTP_HOST": "localhost"})
    created = testapp.post_json(
        "/api/v1/sensors", {"name": "breakdown"}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ).json
    return app, testapp, created


def measure(fn, number: int, repeats: int) -> float:
    """Median µs per call of ``fn`` over ``repeats`` rounds of ``number`` calls."""
    fn()
    rounds = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(number):
            fn()
        rounds.append((time.perf_counter() - started) / number * 1e6)
    return statistics.median(rounds)


def pieces(app, testapp, created):
    import orjson
    import transaction

    from plugins.auth.security import _TOKEN_LOOKUP
    from plugins.auth.service import _SENSOR_PROFILE
    from plugins.ingest.parsing import Limits, parse_body
    from plugins.ingest.storage import _READ_COUNTERS, WriteJob, write_jobs
    from sensorhub.db import get_tm_session

    registry = app.registry
    engine = registry["dbengine"]
    reader = registry["dbsession_factory.reader"]
    sensor_id, token = created["sensorId"], created["token"]
    digest = hashlib.sha256(token.encode()).digest()
    bearer = {"Authorization": f"Bearer {token}"}

    def in_a_session(depth: int):
        """A request's session alone (0), with its first statement (1), with auth's and the
        profile's three reads (2): each adds to the one before it."""

        def run():
            manager = transaction.TransactionManager(explicit=True)
            manager.begin()
            session = get_tm_session(reader, manager)
            if depth >= 1:
                connection = session.connection()
            if depth >= 2:
                connection.execute(_TOKEN_LOOKUP, {"digest": digest}).one_or_none()
                connection.execute(_SENSOR_PROFILE, {"key": sensor_id}).one_or_none()
                connection.execute(_READ_COUNTERS, {"key": sensor_id}).first()
            manager.abort()

        return run

    token_sql, profile_sql, counters_sql = (
        str(statement.compile(engine))
        for statement in (_TOKEN_LOOKUP, _SENSOR_PROFILE, _READ_COUNTERS)
    )

    def raw_three_selects():
        # The same statements on the bare sqlite3 driver (qmark placeholders): the database's
        # own share of the three SELECTs.
        cursor = raw.cursor()
        cursor.execute("BEGIN")
        for sql, parameter in (
            (token_sql, digest),
            (profile_sql, sensor_id),
            (counters_sql, sensor_id),
        ):
            cursor.execute(sql, (parameter,)).fetchall()
        raw.rollback()

    now_ms = int(time.time() * 1000)
    body = orjson.dumps(
        [
            {
                "type": "temperature",
                "value": 21.37,
                "unit": "Cel",
                "ts": now_ms,
                "eventId": f"breakdown-{i}",
                "data": {"fw": "1.4.2", "rssi": -57},
            }
            for i in range(100)
        ]
    )
    limits = Limits()
    sequence = iter(range(10**9))
    now_us = now_ms * 1000

    def rows(count):
        batch = next(sequence)
        return [
            {
                "event_id": f"w{batch}-{i}",
                "type": "temperature",
                "value": 1.0,
                "unit": "Cel",
                "ts": now_us,
                "received_at": now_us,
                "data": '{"fw":"1.4.2"}',
            }
            for i in range(count)
        ]

    def write_uncommitted(jobs):
        with engine.connect() as connection:
            connection.begin()
            write_jobs(connection, jobs)
            connection.rollback()

    def post_single():
        testapp.post(
            "/api/v1/events",
            orjson.dumps(
                {"type": "temperature", "value": 1.0, "eventId": f"single-{next(sequence)}"}
            ),
            headers={**bearer, "Content-Type": "application/json"},
        )

    timed = [
        ("GET /api/v1/ (Pyramid, core tweens, JSON; no DB)", lambda: testapp.get("/api/v1/")),
        ("transaction manager + session + zope.sqlalchemy", in_a_session(0)),
        ("  ... + first statement (checkout, BEGIN, join)", in_a_session(1)),
        ("  ... + 3 one-row Core SELECTs (auth's path)", in_a_session(2)),
    ]
    if engine.dialect.name == "sqlite":  # qmark SQL as compiled runs as is on sqlite3
        raw = engine.raw_connection()
        timed.append(("the same 3 SELECTs on the bare driver", raw_three_selects))
    return timed + [
        (
            "GET /api/v1/sensor (whole request)",
            lambda: testapp.get(f"/api/v1/sensor?sensorId={sensor_id}", headers=bearer),
        ),
        (
            "parse_body: 100 events, orjson + validation",
            lambda: parse_body(body, "application/json", limits=limits),
        ),
        (
            "write 1 single-event job, no commit",
            lambda: write_uncommitted([WriteJob(sensor_id, rows(1))]),
        ),
        (
            "write 8 single-event jobs together, no commit",
            lambda: write_uncommitted([WriteJob(sensor_id, rows(1)) for _ in range(8)]),
        ),
        (
            "write 100 events, no commit",
            lambda: write_uncommitted([WriteJob(sensor_id, rows(100))]),
        ),
        ("POST /api/v1/events, one event (waits for its commit)", post_single),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.breakdown",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--number", type=int, default=300, help="calls per repeat (300)")
    parser.add_argument("--repeats", type=int, default=5, help="repeats; medians (5)")
    parser.add_argument("--database-url", help="instead of a fresh SQLite file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sensorhub-breakdown-") as scratch:
        url = args.database_url or f"sqlite:///{Path(scratch) / 'breakdown.sqlite'}"
        app, testapp, created = build(url)
        print(
            f"one thread, no HTTP, {app.registry['dbengine'].dialect.name}; median µs per "
            f"call over {args.repeats} x {args.number}"
        )
        for label, fn in pieces(app, testapp, created):
            print(f"{label:58s} {measure(fn, args.number, args.repeats):9.1f}", flush=True)
        app.registry["dbengine"].dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
