"""The commit path: a 201 means committed, concurrent requests share commits (group commit),
resends racing each other store one row, reads page stably under concurrent inserts, and the
events and counters other plugins rely on appear only after commit. Requests here commit for
real; the tables are emptied after each test."""

import contextlib
import threading
import time

import orjson
import pytest
import webtest
from sqlalchemy import create_engine, event, select

from plugins.ingest import storage
from plugins.ingest.models import stats_table
from plugins.ingest.storage import WriteJob, write_jobs
from plugins.ingest.writer import GroupCommitWriter
from sensorhub.events import EventsIngested
from sensorhub.lifecycle import close_app
from tests.conftest import empty_all_tables
from tests.plugins.test_auth_support import recording_statements
from tests.plugins.test_ingest_support import (
    AUTH_SETTINGS,
    new_sensor,
    post_events,
    recording_events,
    recording_figures,
    stored_events,
)


@pytest.fixture(scope="module")
def plugins():
    return ["auth", "ingest"]


@pytest.fixture(scope="module")
def app_settings():
    return AUTH_SETTINGS  # group commit is on by default


@pytest.fixture
def committing_app(app_factory, dbengine):
    """Build a differently configured app whose requests commit; tables emptied afterwards."""
    built = []

    def build(**settings):
        app = app_factory(["auth", "ingest"], {**AUTH_SETTINGS, **settings})
        built.append(app)
        return app

    yield build
    for app in built:
        close_app(app.registry)
    empty_all_tables(dbengine)


def in_threads(count, work):
    """Run ``work(n)`` in ``count`` threads started together; re-raise the first error."""
    barrier, errors, results = threading.Barrier(count), [], [None] * count

    def run(n):
        try:
            barrier.wait()
            results[n] = work(n)
        except Exception as error:  # surfaced below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    if errors:
        raise errors[0]
    return results


def test_a_201_means_the_event_is_committed(committing_testapp, dbengine):
    sensor_id, headers = new_sensor(committing_testapp)
    post_events(committing_testapp, headers, [{"type": "t"}] * 3)
    assert stored_events(dbengine, sensor_id) == 3


def test_the_same_event_resent_concurrently_is_stored_once(committing_testapp, app, dbengine):
    sensor_id, headers = new_sensor(committing_testapp)

    def resend(_):
        return post_events(
            webtest.TestApp(app), headers, {"type": "t", "value": 1, "eventId": "race"}
        ).json["results"][0]

    statuses = sorted(result["status"] for result in in_threads(8, resend))
    assert statuses == ["accepted"] + ["duplicate"] * 7
    assert stored_events(dbengine, sensor_id) == 1
    info = committing_testapp.get("/api/v1/sensor", headers=headers).json
    assert (info["eventCount"], info["duplicateCount"]) == (1, 7)


def test_the_same_event_resent_concurrently_without_group_commit_is_stored_once(
    committing_app, dbengine
):
    app = committing_app(**{"sensorhub.ingest.group_commit": "false"})
    sensor_id, headers = new_sensor(webtest.TestApp(app))

    def resend(_):
        return post_events(webtest.TestApp(app), headers, {"type": "t", "eventId": "race"}).json[
            "results"
        ][0]["status"]

    assert sorted(in_threads(6, resend)) == ["accepted"] + ["duplicate"] * 5
    assert stored_events(dbengine, sensor_id) == 1


def test_concurrent_single_event_posts_share_commits(committing_app, dbengine):
    app = committing_app(**{"sensorhub.ingest.group_commit_max_wait": "50ms"})
    testapp = webtest.TestApp(app)
    sensors = [new_sensor(testapp, f"s{n}") for n in range(8)]
    with (
        recording_events(app.registry, EventsIngested) as seen,
        recording_figures(app.registry) as figures,
    ):
        in_threads(
            8,
            lambda n: post_events(
                webtest.TestApp(app), sensors[n][1], {"type": "t", "eventId": "one"}
            ),
        )
    group_sizes = figures.observed("ingest_commit_group_requests")
    assert sum(group_sizes) == 8
    assert figures.counted("ingest_commit_groups", outcome="succeeded") == len(group_sizes)
    assert figures.counted("ingest_commit_groups", outcome="failed") == 0
    assert max(group_sizes) > 1  # at least one commit served several requests
    assert sum(e.accepted for e in seen if isinstance(e, EventsIngested)) == 8
    assert sum(stored_events(dbengine, sensor_id) for sensor_id, _ in sensors) == 8


@pytest.mark.parametrize("group_commit", ["true", "false"])
def test_events_ingested_is_published_after_commit_with_the_outcomes(
    committing_app, dbengine, group_commit
):
    app = committing_app(
        **{"sensorhub.ingest.group_commit": group_commit, "sensorhub.ingest.partial": "true"}
    )
    testapp = webtest.TestApp(app)
    sensor_id, headers = new_sensor(testapp)
    post_events(testapp, headers, {"type": "t", "eventId": "a"})
    committed_when_published = []

    def check(event):
        committed_when_published.append(stored_events(dbengine, sensor_id))

    app.registry.registerHandler(check, (EventsIngested,))
    with recording_events(app.registry, EventsIngested) as seen:
        post_events(
            testapp,
            headers,
            [{"type": "t", "eventId": "a"}, {"type": "t"}, {"type": "t", "value": "x"}],
        )
    [event] = seen
    assert (
        event.sensor_id,
        event.batch_size,
        event.accepted,
        event.duplicates,
        event.rejected,
        dict(event.rejected_by_reason),
    ) == (sensor_id, 3, 1, 1, 1, {"invalid_field": 1})
    assert committed_when_published == [2]


def test_a_refused_batch_counts_its_rejections_and_stores_nothing(committing_testapp, dbengine):
    sensor_id, headers = new_sensor(committing_testapp)
    post_events(
        committing_testapp,
        headers,
        [{"type": "ok"}, {"value": 1}, {"type": "t", "unit": ""}],
        status=422,
    )
    assert stored_events(dbengine, sensor_id) == 0
    with dbengine.connect() as connection:
        counters = connection.execute(
            select(stats_table.c.event_count, stats_table.c.rejected_count).where(
                stats_table.c.sensor_id == sensor_id
            )
        ).one()
    assert tuple(counters) == (0, 2)


def test_a_failed_commit_is_a_503_with_retry_after_and_nothing_acknowledged(
    committing_app, tmp_path
):
    app = committing_app()
    testapp = webtest.TestApp(app)
    _, headers = new_sensor(testapp)
    writer = app.registry["ingest.config"].store
    writer.engine = create_engine(f"sqlite:///{tmp_path}/missing/dir/x.sqlite")  # cannot open
    problem = post_events(testapp, headers, {"type": "t"}, status=503)
    assert problem.headers["Retry-After"] and problem.content_type == "application/problem+json"
    writer.close()


def test_one_failing_job_does_not_fail_the_others_in_its_group(committing_testapp, app, dbengine):
    sensor_id, _ = new_sensor(committing_testapp)
    writer = GroupCommitWriter(dbengine, max_wait=0.2)
    good = WriteJob(sensor_id, [row("ok")])
    bad = WriteJob("sen_deleted_meanwhile", [row("orphan")])  # violates the foreign key
    outcomes = in_threads(2, lambda n: _submit(writer, [good, bad][n]))
    writer.close()
    assert outcomes[0] == [True] and isinstance(outcomes[1], Exception)
    assert stored_events(dbengine, sensor_id) == 1


def _submit(writer, job):
    try:
        return writer.submit(job, timeout=10).accepted_flags
    except Exception as error:
        return error


def row(kind, event_id=None):
    now = time.time_ns() // 1000
    return {
        "event_id": event_id,
        "type": kind,
        "value": None,
        "unit": None,
        "ts": now,
        "received_at": now,
        "data": None,
    }


def test_a_batch_of_1000_is_a_few_statements_that_find_its_duplicates(committing_testapp, dbengine):
    sensor_id, _ = new_sensor(committing_testapp)
    with dbengine.begin() as connection:
        write_jobs(
            connection, [WriteJob(sensor_id, [row("t", f"e{i}") for i in range(0, 1000, 100)])]
        )
    job = WriteJob(sensor_id, [row("t", f"e{i}") for i in range(1000)])
    with recording_statements(dbengine) as statements, dbengine.begin() as connection:
        write_jobs(connection, [job])
    assert [i for i, accepted in enumerate(job.accepted_flags) if not accepted] == list(
        range(0, 1000, 100)
    )
    assert stored_events(dbengine, sensor_id) == 1000
    # SQLite: an insert per chunk (powers of two, then the rest), a read back for each chunk
    # that held a duplicate, and the counters; PostgreSQL: 2.
    assert len(statements) <= 16


@contextlib.contextmanager
def driver_statements(engine):
    """The first word of each statement the sqlite3 driver runs on connections checked out
    inside the block, in order (the driver's trace repeats a statement for each trigger
    program it runs: repeats are counted once)."""
    statements = []

    def trace(dbapi_connection, _record, _proxy):
        dbapi_connection.set_trace_callback(statements.append)

    event.listen(engine, "checkout", trace)
    first_words = []
    try:
        yield first_words
    finally:
        first_words += [sql.split()[0] for sql in dict.fromkeys(statements)]
        event.remove(engine, "checkout", trace)
        engine.dispose()  # no pooled connection keeps the trace callback


def counters_of(engine, sensor_id):
    with engine.connect() as connection:
        row = connection.execute(
            select(
                stats_table.c.event_count,
                stats_table.c.duplicate_count,
                stats_table.c.rejected_count,
                stats_table.c.last_event_at,
            ).where(stats_table.c.sensor_id == sensor_id)
        ).first()
    if row is None:
        return {"event_count": 0, "duplicate_count": 0, "rejected_count": 0, "last_event_at": None}
    return row._asdict()


def test_a_group_of_new_single_events_is_one_statement(committing_testapp, dbengine):
    # Under load the writer thread waits for the GIL after every driver call. On SQLite a group
    # of new events from three sensors is one INSERT that commits itself (into a temporary
    # view whose trigger stores and counts each event): not BEGIN, insert, counters upsert,
    # COMMIT. PostgreSQL: one insert and one counters upsert in the transaction.
    sensors = [new_sensor(committing_testapp)[0] for _ in range(3)]
    jobs = [WriteJob(sensor_id, [row("t", "only")]) for sensor_id in sensors]
    if dbengine.dialect.name == "sqlite":
        with driver_statements(dbengine) as statements:
            assert storage.insert_all_new(dbengine, jobs)
        # One INSERT, no BEGIN or COMMIT (a connection's first use also makes the view: CREATE)
        assert [verb for verb in statements if verb != "CREATE"] == ["INSERT"], statements
    else:
        with recording_statements(dbengine) as statements, dbengine.begin() as connection:
            write_jobs(connection, jobs)
        assert len(statements) == 2, statements
    assert [job.accepted_flags for job in jobs] == [[True]] * 3
    for sensor_id, job in zip(sensors, jobs, strict=True):
        assert counters_of(dbengine, sensor_id) == {
            "event_count": 1,
            "duplicate_count": 0,
            "rejected_count": 0,
            "last_event_at": job.rows[0]["ts"],
        }


@pytest.mark.parametrize(
    "jobs_of",
    [
        pytest.param(lambda s: [WriteJob(s, [row("t", "taken"), row("t", "new")])], id="stored"),
        pytest.param(lambda s: [WriteJob(s, [row("t", "x"), row("t", "x")])], id="repeated"),
        pytest.param(lambda s: [WriteJob(s, [row("t", "y")], rejected=1)], id="rejected"),
        pytest.param(lambda s: [WriteJob(s, [row("t")])], id="no-event-id"),
        pytest.param(lambda s: [WriteJob(s, [row("t", f"z{i}") for i in range(17)])], id="17"),
        pytest.param(lambda s: [WriteJob("sen_deleted_meanwhile", [row("t", "o")])], id="orphan"),
    ],
)
def test_a_group_one_statement_cannot_answer_for_is_left_whole_to_the_transaction(
    committing_testapp, dbengine, jobs_of
):
    # Each of these needs write_jobs (flags, counts only Python knows, or several statements):
    # the one-statement path declines before writing or has SQLite back its statement out.
    # PostgreSQL's connections have no view: it declines every group there.
    sensor_id, _ = new_sensor(committing_testapp)
    with dbengine.begin() as connection:
        write_jobs(connection, [WriteJob(sensor_id, [row("t", "taken")])])
    before = counters_of(dbengine, sensor_id)
    assert not storage.insert_all_new(dbengine, jobs_of(sensor_id))
    assert stored_events(dbengine, sensor_id) == 1
    assert counters_of(dbengine, sensor_id) == before


def test_the_writer_stores_a_group_of_new_events_in_one_statement(committing_testapp, dbengine):
    # SQLite: the writer's own path, not write_jobs'. PostgreSQL: its transaction, an insert
    # and a counters upsert.
    sensor_id, _ = new_sensor(committing_testapp)
    writer = GroupCommitWriter(dbengine)
    if dbengine.dialect.name == "sqlite":
        with driver_statements(dbengine) as statements:
            job = writer.submit(WriteJob(sensor_id, [row("t", "first")]), timeout=10)
            writer.close()
        # One INSERT, no BEGIN or COMMIT (a connection's first use also makes the view: CREATE)
        assert [verb for verb in statements if verb != "CREATE"] == ["INSERT"], statements
    else:
        with recording_statements(dbengine) as statements:
            job = writer.submit(WriteJob(sensor_id, [row("t", "first")]), timeout=10)
            writer.close()
        assert len(statements) == 2, statements
    assert job.accepted_flags == [True]
    assert counters_of(dbengine, sensor_id)["event_count"] == 1


def test_the_writer_counts_new_events_and_duplicates_exactly(committing_testapp, dbengine):
    sensor_id, _ = new_sensor(committing_testapp)
    writer = GroupCommitWriter(dbengine)
    first = writer.submit(WriteJob(sensor_id, [row("t", "a"), row("t", "b")]), timeout=10)
    again = WriteJob(sensor_id, [row("t", "b"), row("t", "c"), row("t", "c")], rejected=2)
    writer.submit(again, timeout=10)
    writer.close()
    assert first.accepted_flags == [True, True]
    assert again.accepted_flags == [False, True, False]  # b stored, c new, c repeated
    assert counters_of(dbengine, sensor_id) == {
        "event_count": 3,
        "duplicate_count": 2,
        "rejected_count": 2,
        "last_event_at": again.rows[1]["ts"],  # the newest stored event's
    }


def test_an_engine_not_in_autocommit_writes_every_group_in_a_transaction(
    committing_testapp, dbengine
):
    # An engine not made by sensorhub.db (a script's, say): on SQLite its driver would open a
    # transaction of its own around the one statement, so that path declines; on any database
    # the writer's transaction stores and counts the events.
    sensor_id, _ = new_sensor(committing_testapp)
    bare = create_engine(dbengine.url)
    try:
        job = WriteJob(sensor_id, [row("t", "e")])
        assert not storage.insert_all_new(bare, [job])
        assert stored_events(dbengine, sensor_id) == 0
        writer = GroupCommitWriter(bare)
        writer.submit(job, timeout=10)
        writer.close()
    finally:
        bare.dispose()
    assert job.accepted_flags == [True]
    assert counters_of(dbengine, sensor_id)["event_count"] == 1


def test_a_stored_row_is_a_duplicate_and_a_batch_without_one_reads_nothing_back(
    committing_testapp, dbengine
):
    sensor_id, _ = new_sensor(committing_testapp)
    with dbengine.begin() as connection:
        write_jobs(connection, [WriteJob(sensor_id, [row("t", "taken")])])
    fresh = WriteJob(sensor_id, [row("t", "new-1"), row("t", "new-2")])
    with recording_statements(dbengine, {"SELECT"}) as reads, dbengine.begin() as connection:
        write_jobs(connection, [fresh])
    assert fresh.accepted_flags == [True, True]
    assert reads == []  # the insert's row count said every row was new
    mixed = WriteJob(sensor_id, [row("t", "new-3"), row("t", "taken"), row("t", "new-4")])
    with dbengine.begin() as connection:
        write_jobs(connection, [mixed])
    assert mixed.accepted_flags == [True, False, True]
    assert stored_events(dbengine, sensor_id) == 5


def test_a_row_the_writer_cannot_account_for_is_never_acknowledged(
    committing_testapp, dbengine, monkeypatch
):
    sensor_id, _ = new_sensor(committing_testapp)
    with dbengine.begin() as connection:
        write_jobs(connection, [WriteJob(sensor_id, [row("t", "taken")])])
    # SQLite: when an insert stores fewer rows than it was given, the writer reads the keys back
    # and trusts only ids the insert just gave out. Make that read disagree (every id old), as if
    # rowids had been given out of order: the group fails rather than guess. PostgreSQL has no
    # read back (the patch is unused there): the insert's RETURNING is the answer.
    monkeypatch.setattr(
        storage,
        "_sqlite_stored_ids",
        lambda size: storage._MultiRow(
            " UNION ALL ".join(["SELECT ?, ?, 0"] * size), storage.KEY_COLUMNS
        ),
    )
    job = WriteJob(sensor_id, [row("t", "taken"), row("t", "new")])
    if dbengine.dialect.name == "sqlite":
        with (
            pytest.raises(RuntimeError, match="rowids given out of order"),
            dbengine.begin() as connection,
        ):
            write_jobs(connection, [job])
        assert stored_events(dbengine, sensor_id) == 1  # rolled back: nothing half-written
    else:
        with dbengine.begin() as connection:
            write_jobs(connection, [job])
        assert job.accepted_flags == [False, True]
        assert stored_events(dbengine, sensor_id) == 2


def test_the_writer_thread_stops_when_idle_and_restarts_on_demand(committing_testapp, dbengine):
    sensor_id, _ = new_sensor(committing_testapp)
    writer = GroupCommitWriter(dbengine, idle_seconds=0.05)
    writer.submit(WriteJob(sensor_id, [row("a")]), timeout=10)
    assert writer.running
    deadline = time.monotonic() + 5
    while writer.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not writer.running
    writer.submit(WriteJob(sensor_id, [row("b")]), timeout=10)
    writer.close()
    assert not writer.running and stored_events(dbengine, sensor_id) == 2


def test_closing_the_app_stops_its_writer_and_later_posts_get_a_503(committing_app):
    app = committing_app()
    testapp = webtest.TestApp(app)
    _, headers = new_sensor(testapp)
    post_events(testapp, headers, {"type": "t", "eventId": "before"}, status=201)
    store = app.registry["ingest.config"].store
    assert store.running
    close_app(app.registry)
    assert not store.running
    problem = post_events(testapp, headers, {"type": "t", "eventId": "after"}, status=503)
    assert problem.headers["Retry-After"]


def test_pages_stay_stable_while_events_are_inserted(committing_testapp, app):
    _, headers = new_sensor(committing_testapp)
    base_ms = int(time.time() * 1000) - 100_000
    post_events(
        committing_testapp,
        headers,
        [{"type": "t", "value": i, "ts": base_ms + i * 10} for i in range(60)],
    )
    stop = threading.Event()

    def keep_inserting():
        writer_app, n = webtest.TestApp(app), 0
        while not stop.is_set():  # new events land before, between and after the pages
            post_events(
                writer_app,
                headers,
                [{"type": "t", "value": 1000 + n, "ts": base_ms + (n * 7) % 700}],
            )
            n += 1

    inserter = threading.Thread(target=keep_inserting)
    inserter.start()
    try:
        for order in ("oldest", "newest"):
            seen, cursor = [], None
            while True:
                query = {"limit": 7, "order": order, **({"cursor": cursor} if cursor else {})}
                page = committing_testapp.get("/api/v1/events", query, headers=headers).json
                seen += [(e["ts"], e["value"]) for e in page["events"]]
                cursor = page["nextCursor"]
                if cursor is None:
                    break
            original = [value for _, value in seen if value < 1000]
            assert sorted(original) == [float(i) for i in range(60)]  # none lost, none twice
            assert len(seen) == len(set(seen))
            assert seen == sorted(seen, reverse=order == "newest")
    finally:
        stop.set()
        inserter.join(10)


def test_ndjson_export_streams_every_matching_event(committing_testapp):
    _, headers = new_sensor(committing_testapp)
    base_ms = int(time.time() * 1000) - 10_000
    post_events(
        committing_testapp,
        headers,
        [{"type": "ab"[i % 2], "value": i, "ts": base_ms + i} for i in range(1000)],
    )
    post_events(
        committing_testapp,
        headers,
        [{"type": "a", "value": 1000 + i, "ts": base_ms + 1000 + i} for i in range(500)],
    )
    export = committing_testapp.get(
        "/api/v1/events",
        {"type": "a", "order": "oldest"},
        headers={**headers, "Accept": "application/x-ndjson"},
    )
    assert export.content_type == "application/x-ndjson"
    values = [line["value"] for line in map(orjson.loads, export.body.splitlines())]
    assert values == [float(v) for v in range(0, 1000, 2)] + [float(v) for v in range(1000, 1500)]
    limited = committing_testapp.get(
        "/api/v1/events", {"limit": 3}, headers={**headers, "Accept": "application/x-ndjson"}
    )
    assert len(limited.body.splitlines()) == 3


def test_prune_deletes_old_events_in_chunks_and_keeps_counters_exact(
    committing_testapp, dbengine, database_url, tmp_path, capsys
):
    from sensorhub.scripts.admin import main as admin

    sensor_id, headers = new_sensor(committing_testapp)
    now_ms = int(time.time() * 1000)
    post_events(
        committing_testapp,
        headers,
        [{"type": "old", "ts": now_ms - (20 + i) * 86_400_000} for i in range(5)]
        + [{"type": "new", "ts": now_ms - 1000}],
    )
    ini = tmp_path / "prune.ini"
    ini.write_text(
        f"[app:main]\nuse = egg:sensorhub\nsensorhub.plugins = auth ingest\n"
        f"sensorhub.database.url = {database_url}\n"
    )
    assert admin(["prune", str(ini), "--dry-run", "--older-than", "10d"]) == 0
    assert "would delete 5" in capsys.readouterr().out
    assert stored_events(dbengine, sensor_id) == 6
    assert admin(["prune", str(ini), "--older-than", "10d", "--chunk-size", "2"]) == 0
    output = capsys.readouterr().out
    assert f"{sensor_id}: deleted 5" in output and "deleted 5 events" in output
    assert stored_events(dbengine, sensor_id) == 1
    info = committing_testapp.get("/api/v1/sensor", headers=headers).json
    assert info["eventCount"] == 1
    events = committing_testapp.get("/api/v1/events", headers=headers).json["events"]
    assert [e["type"] for e in events] == ["new"] and info["lastEventAt"] == events[0]["ts"]


@pytest.mark.parametrize(
    ("older_than", "message"),
    [
        ("30", "expected a duration with a unit, such as 500ms, 30s, 5m, 12h or 30d"),
        ("0", "must be more than 0"),
    ],
)
def test_prune_refuses_a_cutoff_without_a_unit_or_of_zero(capsys, older_than, message):
    from sensorhub.scripts.admin import main as admin

    with pytest.raises(SystemExit) as exit_info:
        admin(["prune", "no-such.ini", "--older-than", older_than])
    assert exit_info.value.code == 2
    assert f"argument --older-than: {message}" in capsys.readouterr().err


def test_pruning_every_event_of_a_sensor_clears_its_last_event_time(
    committing_testapp, database_url, tmp_path
):
    from sensorhub.scripts.admin import main as admin

    _, headers = new_sensor(committing_testapp)
    post_events(
        committing_testapp, headers, {"type": "old", "ts": int(time.time() * 1000) - 2 * 86_400_000}
    )
    ini = tmp_path / "prune.ini"
    ini.write_text(
        f"[app:main]\nuse = egg:sensorhub\nsensorhub.plugins = auth ingest\n"
        f"sensorhub.database.url = {database_url}\n"
    )
    assert admin(["prune", str(ini), "--older-than", "1d"]) == 0
    info = committing_testapp.get("/api/v1/sensor", headers=headers).json
    assert (info["eventCount"], info["lastEventAt"]) == (0, None)
