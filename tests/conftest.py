"""Test fixtures, in the Pyramid starter's style.

- One database per test session: a fresh SQLite file, or the server named by
  ``SENSORHUB_TEST_DATABASE_URL`` (``.ci/run`` starts a PostgreSQL and sets it). Its schema is
  built by running the Alembic migrations, so they are tested too.
- ``app`` is built once per test module from ``testing.ini`` with the plugins the module asks
  for (override the ``plugins`` / ``app_settings`` fixtures in the module).
- ``testapp`` runs each request inside the test's own transaction manager, doomed, so every
  test rolls back on SQLite and PostgreSQL alike; ``dbsession`` shares that transaction.
- ``committing_testapp`` goes through pyramid_tm for real (commit path, after-commit events);
  the tables it wrote to are emptied afterwards.
- ``pytest --ini=other.ini`` builds apps from another ini.
- Under pytest-xdist each worker has its own database (a SQLite file in its own temp dir, or
  its own PostgreSQL database), so workers never share a file, a port or a row.
- Nothing is left running: each test process is a child subreaper (Linux), so a process a test
  started cannot escape by losing its parent; one still alive when the session ends fails the run.
- Tests that need an outside tool carry its marker (``prometheus``; ``postgresql`` for a test
  that starts a PostgreSQL server of its own, whatever the suite's database; ``browser`` for a
  test that drives a headless Chromium; ``systemd`` for ``systemd-analyze``). ``make test``
  installs them all (``.ci/debian-packages``); without one, the test fails saying how to install
  it: a test that needs a tool is never silently skipped.
- ``database_independent`` marks a test that runs the same whatever the suite's database (the
  load bench on its own SQLite files, static checks of generated code): the PostgreSQL pass
  skips it, because running it again there would test nothing new and cost minutes.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
import transaction
import webtest
from pyramid.paster import get_appsettings
from sqlalchemy import MetaData, create_engine, event, text
from sqlalchemy.engine import make_url

from sensorhub import make_app, migrations
from sensorhub.db import DBSESSION_ENVIRON_KEY, get_tm_session
from sensorhub.lifecycle import close_app

ROOT = Path(__file__).resolve().parent.parent


def binary(name: str) -> str | None:
    """An installed program: on PATH, or where Debian puts it (``/usr/sbin`` for nginx)."""
    for candidate in (shutil.which(name), f"/usr/bin/{name}", f"/usr/sbin/{name}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def postgresql_bin() -> Path | None:
    """Debian's PostgreSQL server programs (initdb, pg_ctl), newest version first."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    return found[0].parent if found else None


# marker -> (programs it needs, how to get them)
TOOLS = {
    "prometheus": (
        ("promtool", "prometheus", "prometheus-pushgateway"),
        "apt-get install prometheus prometheus-pushgateway",
    ),
    "postgresql": (("initdb",), "apt-get install postgresql"),
    "browser": (("chromium", "chromedriver"), "apt-get install chromium chromium-driver"),
    "systemd": (("systemd-analyze",), "apt-get install systemd"),
}


def missing_programs(programs) -> list[str]:
    if programs == ("initdb",):
        return [] if postgresql_bin() else ["initdb"]
    return [program for program in programs if binary(program) is None]


def pytest_runtest_setup(item):
    for marker, (programs, install) in TOOLS.items():
        if item.get_closest_marker(marker) is None:
            continue
        missing = missing_programs(programs)
        if not missing:
            continue
        pytest.fail(
            f"this test needs {', '.join(missing)}: {install} (`make test` installs it with "
            ".ci/debian-packages)"
        )


def pytest_collection_modifyitems(config, items):
    if not os.environ.get("SENSORHUB_TEST_DATABASE_URL"):
        return
    skip = pytest.mark.skip(
        reason="database_independent: the same test ran in the SQLite pass (make test)"
    )
    for item in items:
        if item.get_closest_marker("database_independent") is not None:
            item.add_marker(skip)


def pytest_addoption(parser):
    parser.addoption(
        "--ini", default=str(ROOT / "testing.ini"), help="ini file the test apps are built from"
    )


PR_SET_CHILD_SUBREAPER = 36


@pytest.fixture(scope="session", autouse=True)
def no_process_left_behind():
    """Fail the run if any process started by a test outlives the session (and stop it).

    As a child subreaper this process adopts the orphans of its descendants (a server's workers
    whose parent was SIGKILLed), so they are found here instead of running on under init."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        yield  # not Linux: nothing to adopt orphans with
        return
    yield
    deadline = time.monotonic() + 5  # a process told to stop may still be draining
    while (alive := living_children(os.getpid())) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    living_children(os.getpid())  # reaps them
    assert not alive, f"processes left running by the tests (now killed): {alive}"


def living_children(pid: int) -> dict[int, str]:
    """``pid``'s children that still run, with their command lines; reaps the exited ones."""
    alive = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        state, parent = stat.rpartition(")")[2].split()[:2]
        if int(parent) != pid:
            continue
        if state == "Z":
            try:
                os.waitpid(int(entry.name), os.WNOHANG)
            except ChildProcessError:
                pass
        else:
            alive[int(entry.name)] = command
    return alive


@pytest.fixture(scope="session")
def ini_settings(request) -> dict:
    return dict(get_appsettings(request.config.getoption("--ini")))


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    url = os.environ.get("SENSORHUB_TEST_DATABASE_URL")
    worker_id = os.environ.get("PYTEST_XDIST_WORKER")
    if not url:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'sensorhub-test.sqlite'}"
    elif worker_id is None:  # not under xdist: the server's database as it is
        yield url
    else:
        yield from worker_database(url, worker_id)


def worker_database(url: str, worker_id: str):
    """A PostgreSQL database of this xdist worker's own, created beside the given one."""
    base = make_url(url)
    name = f"{base.database}_{worker_id}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield base.set(database=name).render_as_string(hide_password=False)
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture(scope="session")
def dbengine(ini_settings, database_url):
    """The session's engine, shared by every app (the ``dbengine`` test hook), on a schema built
    from scratch by the migrations: the core's and the branch of every built-in plugin with
    tables, from the folders those plugins register (``config.add_migrations``), as
    ``sensorhub-admin migrate`` does. Not logging and metrics: they own no tables, and loading
    them would reconfigure process-wide state (tests/core/test_db.py checks none is missed)."""
    core = make_app(
        {**ini_settings, "sensorhub.database.url": database_url, "sensorhub.plugins": ""},
        environ={},
    )
    engine = core.registry["dbengine"]
    drop_everything(engine)
    migrations.upgrade(engine, migrations.plugin_locations(["auth", "ingest"], ini_settings))
    yield engine
    drop_everything(engine)
    engine.dispose()


def drop_everything(engine) -> None:
    metadata = MetaData()
    metadata.reflect(bind=engine)
    metadata.drop_all(bind=engine)


@pytest.fixture(scope="module")
def plugins() -> list[str]:
    """The plugins a test module's app loads; override in the module."""
    return []


@pytest.fixture(scope="module")
def app_settings() -> dict:
    """Extra raw ini settings for a test module's app; override in the module."""
    return {}


@pytest.fixture(scope="module")
def app_environ() -> dict:
    """The environment a test module's app sees (empty: tests never read the real one)."""
    return {}


@pytest.fixture(scope="module")
def app(ini_settings, database_url, dbengine, plugins, app_settings, app_environ):
    app = build_app(ini_settings, database_url, dbengine, plugins, app_settings, app_environ)
    yield app
    close_app(app.registry)


def build_app(ini_settings, database_url, dbengine, plugins=(), settings=None, environ=None):
    raw = {
        **ini_settings,
        "sensorhub.database.url": database_url,
        "sensorhub.plugins": " ".join(plugins),
        "dbengine": dbengine,
        **(settings or {}),
    }
    return make_app(raw, environ=environ or {})


@pytest.fixture
def app_factory(ini_settings, database_url, dbengine):
    """Build a differently configured app inside a test: ``app_factory(plugins, settings,
    environ)``."""

    built = []

    def factory(plugins=(), settings=None, environ=None):
        app = build_app(ini_settings, database_url, dbengine, plugins, settings, environ)
        built.append(app)
        return app

    yield factory
    for app in built:
        close_app(app.registry)


@pytest.fixture
def tm():
    manager = transaction.TransactionManager(explicit=True)
    manager.begin()
    manager.doom()
    yield manager
    manager.abort()


@pytest.fixture
def dbsession(app, tm):
    return get_tm_session(app.registry["dbsession_factory"], tm)


def doomed_environ(tm, dbsession) -> dict:
    """The WebTest environ that runs requests inside the test's own doomed transaction."""
    return {
        "HTTP_HOST": "example.com",
        "tm.active": True,
        "tm.manager": tm,
        DBSESSION_ENVIRON_KEY: dbsession,
    }


@pytest.fixture
def testapp(app, tm, dbsession):
    """Requests share the test's doomed transaction: everything they write rolls back."""
    return webtest.TestApp(app, extra_environ=doomed_environ(tm, dbsession))


@pytest.fixture
def committing_testapp(app, dbengine):
    """Requests commit for real through pyramid_tm; every table is emptied afterwards."""
    yield webtest.TestApp(app, extra_environ={"HTTP_HOST": "example.com"})
    empty_all_tables(dbengine)


def empty_all_tables(engine) -> None:
    metadata = MetaData()
    metadata.reflect(bind=engine)
    with engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            # Bookkeeping rows the migrations put there, as on a real database.
            if table.name not in ("alembic_version", "credential_generation"):
                connection.execute(table.delete())


@contextlib.contextmanager
def recording_statements(engine, verbs=frozenset({"SELECT", "INSERT", "UPDATE", "DELETE"})):
    """Every statement starting with one of ``verbs`` the engine executes inside the block."""
    seen: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().split(" ", 1)[0].upper() in verbs:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)
