"""Fixtures: a SensorHub app with only this plugin, on a throwaway SQLite database whose schema is
built by running the migrations (SensorHub's and this plugin's), as ``sensorhub-admin migrate``
does. Self-contained: SensorHub's own test fixtures are not needed.
"""

from __future__ import annotations

import pytest
import webtest

from sensorhub import make_app, migrations

{% if cookiecutter.layout == "in-tree" -%}
# By dotted name: works in the checkout without registering an entry point.
{%- else -%}
# By the short name from setup.cfg's entry point: install the package first (pip install -e .).
{%- endif %}
PLUGIN = "{{ cookiecutter.__plugin_ref }}"


def build_app(database_url: str, settings=None, environ=None):
    raw = {"sensorhub.plugins": PLUGIN, "sensorhub.database.url": database_url,
           **(settings or {})}
    return make_app(raw, environ=environ or {})  # never the real environment


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'plugin-test.sqlite'}"


@pytest.fixture(scope="session")
def app(database_url):
    app = build_app(database_url)
    engine = app.registry["dbengine"]
    migrations.upgrade(engine, migrations.migration_locations(app.registry))
    yield app
    engine.dispose()


@pytest.fixture
def testapp(app):
    return webtest.TestApp(app, extra_environ={"HTTP_HOST": "example.com"})


@pytest.fixture
def app_factory(database_url):
    """Build a differently configured app: ``app_factory(settings={...}, environ={...})``."""
    built = []

    def factory(settings=None, environ=None):
        app = build_app(database_url, settings, environ)
        built.append(app)
        return app

    yield factory
    for app in built:
        app.registry["dbengine"].dispose()
