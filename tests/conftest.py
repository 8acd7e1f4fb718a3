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
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import transaction
import webtest
from pyramid.paster import get_appsettings
from sqlalchemy import MetaData

from sensorhub import make_app, migrations
from sensorhub.db import DBSESSION_ENVIRON_KEY, get_tm_session

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser):
    parser.addoption(
        "--ini", default=str(ROOT / "testing.ini"), help="ini file the test apps are built from"
    )


@pytest.fixture(scope="session")
def ini_settings(request) -> dict:
    return dict(get_appsettings(request.config.getoption("--ini")))


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    url = os.environ.get("SENSORHUB_TEST_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'sensorhub-test.sqlite'}"


@pytest.fixture(scope="session")
def dbengine(ini_settings, database_url):
    """The session's engine, shared by every app (the ``dbengine`` test hook), on a schema built
    from scratch by the migrations."""
    core = make_app(
        {**ini_settings, "sensorhub.database.url": database_url, "sensorhub.plugins": ""},
        environ={},
    )
    engine = core.registry["dbengine"]
    drop_everything(engine)
    migrations.upgrade(engine)
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
    return build_app(ini_settings, database_url, dbengine, plugins, app_settings, app_environ)


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

    def factory(plugins=(), settings=None, environ=None):
        return build_app(ini_settings, database_url, dbengine, plugins, settings, environ)

    return factory


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


@pytest.fixture
def testapp(app, tm, dbsession):
    """Requests share the test's doomed transaction: everything they write rolls back."""
    return webtest.TestApp(
        app,
        extra_environ={
            "HTTP_HOST": "example.com",
            "tm.active": True,
            "tm.manager": tm,
            DBSESSION_ENVIRON_KEY: dbsession,
        },
    )


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
            if table.name != "alembic_version":
                connection.execute(table.delete())
