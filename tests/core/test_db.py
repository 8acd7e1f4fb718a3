"""Storage: a 2xx means committed; a failure means nothing was written."""

import threading

import pytest
import transaction
from pyramid.request import Request
from sqlalchemy import bindparam, column, func, select, table, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from sensorhub.db import DBSESSION_ENVIRON_KEY, DriverRead
from sensorhub.models import Sensor
from tests.conftest import empty_all_tables, recording_statements


@pytest.fixture(scope="module")
def plugins():
    return ["tests.core.fakeplugin"]


def count_sensors(engine):
    # DEFERRED: a plain read must not wait for SQLite's write lock held by the test's transaction.
    with engine.connect().execution_options(sqlite_begin="DEFERRED") as connection:
        return connection.execute(select(func.count()).select_from(Sensor)).scalar_one()


def test_a_2xx_means_the_write_is_committed(committing_testapp, dbengine):
    committing_testapp.post_json("/fake/sensors", {"name": "committed"}, status=200)
    assert count_sensors(dbengine) == 1


def test_an_error_after_a_write_rolls_the_write_back(committing_testapp, dbengine):
    committing_testapp.post_json(
        "/fake/sensors", {"name": "doomed", "fail_after_write": True}, status=500
    )
    assert count_sensors(dbengine) == 0


def test_test_requests_share_the_tests_transaction_and_roll_back(testapp, dbsession, dbengine):
    testapp.post_json("/fake/sensors", {"name": "visible-inside-the-test"})
    assert dbsession.scalar(select(func.count()).select_from(Sensor)) == 1
    assert count_sensors(dbengine) == 0


def test_each_session_follows_the_transaction_manager_it_was_made_for(app, dbengine):
    """zope.sqlalchemy's listeners are registered once on the session factory, not per session:
    two sessions of one factory, each bound to its own manager, still follow their own."""
    from sensorhub.db import get_tm_session

    factory = app.registry["dbsession_factory"]
    kept, dropped = (transaction.TransactionManager(explicit=True) for _ in range(2))
    kept.begin()
    get_tm_session(factory, kept).add(Sensor(name="kept"))
    kept.commit()
    dropped.begin()
    session = get_tm_session(factory, dropped)
    session.add(Sensor(name="dropped"))
    session.flush()
    dropped.abort()
    with dbengine.connect().execution_options(sqlite_begin="DEFERRED") as connection:
        names = connection.execute(select(Sensor.name)).scalars().all()
    assert names == ["kept"]
    with dbengine.begin() as connection:
        connection.execute(Sensor.__table__.delete())


def test_a_thread_reuses_its_manager_cleanly_after_a_failed_request(committing_testapp, dbengine):
    """pyramid_tm gets one explicit transaction manager per thread, made once, not one per
    request: a request that failed after writing leaves it ready for the thread's next one."""
    committing_testapp.post_json(
        "/fake/sensors", {"name": "doomed", "fail_after_write": True}, status=500
    )
    committing_testapp.post_json("/fake/sensors", {"name": "after"}, status=200)
    committing_testapp.post_json("/fake/sensors", {"name": "again"}, status=200)
    assert count_sensors(dbengine) == 2


def test_a_thread_reuses_its_manager_cleanly_after_a_failed_commit(committing_testapp, dbengine):
    """A commit that fails leaves its transaction on the manager (pyramid_tm would drop the
    manager); the thread's next request must still begin its own."""
    committing_testapp.post_json(
        "/fake/sensors", {"name": "unsaved", "fail_at_commit": True}, status=500
    )
    committing_testapp.post_json("/fake/sensors", {"name": "after"}, status=200)
    assert count_sensors(dbengine) == 1


def test_threads_and_apps_never_share_a_transaction_manager(app, app_factory):
    managers_of = [app.registry.settings["tm.manager_hook"]]
    managers_of.append(app_factory(["tests.core.fakeplugin"]).registry.settings["tm.manager_hook"])
    here = managers_of[0](None)
    elsewhere = []
    thread = threading.Thread(target=lambda: elsewhere.append(managers_of[0](None)))
    thread.start()
    thread.join()
    assert managers_of[0](None) is here  # made once for this thread
    assert elsewhere[0] is not here
    assert managers_of[1](None) is not here
    with pytest.raises(transaction.interfaces.NoTransaction):  # explicit: no implicit begin
        here.get()


def test_acknowledged_writes_are_durable_by_default(dbengine):
    """SQLite: WAL, foreign keys, synchronous=FULL. PostgreSQL: synchronous_commit on and a
    statement timeout, so a stuck query errors instead of hanging a thread."""
    with dbengine.connect() as connection:
        if dbengine.dialect.name == "sqlite":
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert connection.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
        else:
            assert connection.execute(text("SHOW synchronous_commit")).scalar() == "on"
            assert connection.execute(text("SHOW statement_timeout")).scalar() == "5s"
            assert connection.execute(text("SHOW lock_timeout")).scalar() == "5s"


def test_concurrent_writers_queue_instead_of_failing(app, dbengine):
    """BEGIN IMMEDIATE on SQLite (and row locks on PostgreSQL): parallel read-then-write
    transactions all succeed."""
    factory = app.registry["dbsession_factory"]
    errors = []

    def read_then_write(n):
        try:
            with factory() as session, session.begin():
                session.scalar(select(func.count()).select_from(Sensor))
                session.add(Sensor(name=f"writer-{n}"))
        except Exception as error:  # collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=read_then_write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert count_sensors(dbengine) == 8
    finally:
        with dbengine.begin() as connection:
            connection.execute(Sensor.__table__.delete())


@pytest.mark.parametrize(
    ("method", "path", "begin"),
    [
        ("GET", "/fake/transaction", "AUTOCOMMIT"),
        ("HEAD", "/fake/transaction", "AUTOCOMMIT"),
        ("POST", "/fake/transaction", "IMMEDIATE"),
        ("DELETE", "/fake/transaction", "IMMEDIATE"),
        ("POST", "/fake/reader-post", "AUTOCOMMIT"),  # declared with config.add_reader_route
        ("GET", "/fake/transaction?write=yes", "IMMEDIATE"),  # sensorhub.db.begin_writing
    ],
)
def test_reads_begin_as_readers_and_writes_as_writers(committing_testapp, method, path, begin):
    """On SQLite a writer takes the write lock at BEGIN; a reader begins nothing (each of its
    statements commits itself) and so never takes it."""
    response = committing_testapp.request(path, method=method, status=200)
    if method != "HEAD":
        assert response.json["begin"] == begin


def test_a_reader_request_sends_its_reads_and_nothing_to_begin_a_transaction(
    committing_testapp, dbengine
):
    """Each statement of a reader is its own read transaction on SQLite: a BEGIN (and its
    COMMIT) would be two more driver calls, each giving up the GIL under load. A writer still
    begins IMMEDIATE. (PostgreSQL's driver begins by itself and shows no BEGIN here either.)"""
    verbs = frozenset({"BEGIN", "SELECT", "COMMIT"})
    with recording_statements(dbengine, verbs) as statements:
        assert committing_testapp.get("/fake/transaction").json["sensors"] == 0
    read = [statement.split()[0].upper() for statement in statements]
    with recording_statements(dbengine, verbs) as statements:
        committing_testapp.get("/fake/transaction?write=yes")
    written = [statement.split()[0].upper() for statement in statements]
    assert read == ["SELECT"]
    assert written[-1] == "SELECT"
    if dbengine.dialect.name == "sqlite":
        assert written[0] == "BEGIN"


def test_a_reader_neither_waits_for_nor_sees_an_uncommitted_write(committing_testapp, dbengine):
    with dbengine.connect() as writer:
        writer.begin()  # SQLite: BEGIN IMMEDIATE, the write lock held until the rollback
        writer.execute(
            Sensor.__table__.insert().values(
                id="sen_uncommitted", name="pending", disabled=False, created_at=func.now()
            )
        )
        assert committing_testapp.get("/fake/transaction").json["sensors"] == 0
        assert committing_testapp.post("/fake/reader-post").json["sensors"] == 0
        writer.rollback()


def test_the_test_schema_was_built_by_running_every_migration_branch(dbengine):
    """The core's history plus the branch of every built-in plugin that keeps one (found on
    disk, so a new plugin with tables that the suite forgot to migrate fails here)."""
    from pathlib import Path

    from alembic.script import ScriptDirectory

    from sensorhub import migrations

    plugins = Path(__file__).resolve().parents[2] / "plugins"
    with_migrations = sorted(p.parent.name for p in plugins.glob("*/migrations"))
    assert {"auth", "ingest"} <= set(with_migrations)
    locations = [f"plugins.{name}:migrations" for name in with_migrations]
    script = ScriptDirectory.from_config(migrations.alembic_config(locations))
    assert migrations.current_heads(dbengine) == set(script.get_heads())
    labels = set().union(*(rev.branch_labels for rev in script.walk_revisions()))
    assert labels == {"core", *with_migrations}
    # The ids databases already record, whichever folder the revisions live in.
    assert {"0001_core", "auth_0001", "ingest_0001"} <= {
        rev.revision for rev in script.walk_revisions()
    }


def test_the_core_keeps_only_its_own_revisions():
    """Each plugin's revisions live with the plugin (registered with ``add_migrations``): the
    core's history runs with no plugin installed."""
    from alembic.script import ScriptDirectory

    from sensorhub import migrations

    script = ScriptDirectory.from_config(migrations.alembic_config())
    labels = set().union(*(rev.branch_labels for rev in script.walk_revisions()))
    assert labels == {"core"}


def test_migrate_applies_the_branches_of_the_plugins_the_ini_lists(tmp_path, capsys):
    """``sensorhub-admin migrate`` finds each plugin's branch where the plugin registered it;
    a database holding a branch whose plugin is no longer listed is refused with the fix."""
    from sqlalchemy import create_engine, inspect

    from sensorhub.scripts.admin import main as admin

    def ini(plugins: str):
        path = tmp_path / f"{plugins.replace(' ', '-') or 'core'}.ini"
        path.write_text(
            "[app:main]\nuse = egg:sensorhub\n"
            f"sensorhub.plugins = {plugins}\n"
            f"sensorhub.database.url = sqlite:///{tmp_path / 'migrated.sqlite'}\n"
        )
        return str(path)

    assert admin(["migrate", ini("auth")]) == 0
    assert admin(["migrate", ini("auth ingest")]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "database at auth_0002, ingest_0001"
    engine = create_engine(f"sqlite:///{tmp_path / 'migrated.sqlite'}")
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"sensors", "sensor_tokens", "ingest_events", "ingest_sensor_stats"} <= tables

    assert admin(["migrate", ini("auth")]) == 1
    error = capsys.readouterr().err
    assert "ingest_0001" in error and "auth_0001" not in error
    assert "sensorhub.plugins" in error


# --- DriverRead: hot reads on the driver's cursor, outside the request's session


def request_of(app, dbsession=None):
    request = Request.blank("/")
    request.registry = app.registry
    if dbsession is not None:
        request.environ[DBSESSION_ENVIRON_KEY] = dbsession  # the test hook, as doomed_environ
    return request


_PROFILE = DriverRead(
    select(Sensor.id, Sensor.name, Sensor.created_at, Sensor.meta.label("meta")).where(
        Sensor.id == bindparam("key")
    )
)


def test_a_driver_read_gives_what_sqlalchemy_gives_without_beginning_a_session(app, dbengine):
    with Session(dbengine) as session:
        sensor = Sensor(name="on the driver", meta={"floor": 3, "gain": 2.5, "tags": ["a"]})
        session.add(sensor)
        session.commit()
        key = sensor.id
    try:
        request = request_of(app)
        row = _PROFILE.first(request, key=key)
        with dbengine.connect().execution_options(sqlite_begin="DEFERRED") as connection:
            expected = tuple(connection.execute(_PROFILE.statement, {"key": key}).one())
        # Typed as SQLAlchemy types them: an aware datetime and a JSON value, on both databases.
        assert row == expected
        assert row[2].tzinfo is not None and row[3] == {"floor": 3, "gain": 2.5, "tags": ["a"]}
        assert _PROFILE.first(request, key="sen_nobody") is None
        assert "dbsession" not in request.__dict__  # the request's session was never begun
        assert dbengine.pool.checkedout() == 0  # its pooled connection went back
    finally:
        empty_all_tables(dbengine)


def test_a_driver_read_in_a_begun_transaction_reads_in_it(app, tm, dbsession):
    """Once the request's session is in a transaction, the read joins it and sees its writes
    (elsewhere it would not, nor should it wait for SQLite's write lock the request holds)."""
    sensor = Sensor(name="not yet committed")
    dbsession.add(sensor)
    dbsession.flush()
    assert _PROFILE.first(request_of(app, dbsession), key=sensor.id)[1] == "not yet committed"
    assert _PROFILE.first(request_of(app), key=sensor.id) is None


def test_a_driver_error_is_raised_as_sqlalchemys_and_its_connection_goes_back(app, dbengine):
    """As SQLAlchemy's, a driver error reaches the core's error views (a database that is down
    is a 503) without the values it was given, and the connection it broke is not handed to
    the next request."""
    missing = DriverRead(
        select(column("x"))
        .select_from(table("no_such_table"))
        .where(column("x") == bindparam("key"))
    )
    with pytest.raises(DBAPIError, match="no_such_table") as raised:
        missing.all(request_of(app), key="a-value-not-to-log")
    assert "a-value-not-to-log" not in str(raised.value)
    assert dbengine.pool.checkedout() == 0


def test_a_driver_read_refuses_expanding_parameters_it_cannot_bind(app):
    """SQLAlchemy renders an expanding IN anew for each call; a statement compiled once cannot."""
    some = DriverRead(select(Sensor.id).where(Sensor.id.in_(bindparam("keys", expanding=True))))
    with pytest.raises(ValueError, match="expanding IN"):
        some.all(request_of(app), keys=["sen_a", "sen_b"])


def test_a_driver_read_names_a_parameter_left_out_instead_of_reading_null(app):
    with pytest.raises(KeyError, match="key"):
        _PROFILE.first(request_of(app))
