"""Plugins: chosen by setting, found by short name or dotted name, included after the core."""

import pytest
import webtest

from sensorhub.plugins import PluginError, available_plugins

FAKE = "tests.core.fakeplugin"


def test_the_app_is_alive_ready_and_describes_itself_with_zero_plugins(testapp):
    assert testapp.get("/healthz").json == {"status": "ok"}
    assert testapp.get("/readyz").json == {"status": "ok", "checks": {"database": "ok"}}
    root = testapp.get("/api/v1/").json
    assert root["name"] == "sensorhub"
    assert root["plugins"] == []


def test_version_at_the_api_root_is_the_one_in_version_py(testapp):
    from sensorhub.__version__ import VERSION, __version__

    assert __version__ == ".".join(map(str, VERSION))
    assert testapp.get("/api/v1/").json["version"] == __version__


def test_built_in_plugins_are_registered_by_short_name():
    assert {"auth", "ingest", "logging", "metrics"} <= set(available_plugins())


def test_an_unknown_plugin_stops_start_up_listing_the_available_ones(app_factory):
    with pytest.raises(PluginError) as error:
        app_factory(plugins=["bogus"])
    message = str(error.value)
    assert "'bogus'" in message and "SENSORHUB_PLUGINS" in message
    for name in available_plugins():
        assert name in message


def test_an_unimportable_dotted_plugin_says_why(app_factory):
    with pytest.raises(PluginError, match="cannot be imported"):
        app_factory(plugins=["tests.core.no_such_plugin"])


def test_a_plugin_by_dotted_name_adds_routes_settings_and_capabilities(app_factory):
    app = webtest.TestApp(app_factory(plugins=[FAKE], settings={"sensorhub.fake.answer": "7"}))
    assert app.get("/fake/answer").json == {"answer": 7, "query": {}}
    root = app.get("/api/v1/").json
    assert root["plugins"] == [FAKE]
    assert root["capabilities"]["fake"]["url"] == "/fake/answer"


def test_plugins_can_be_chosen_from_the_environment(app_factory):
    app = app_factory(environ={"SENSORHUB_PLUGINS": f"{FAKE},{FAKE}"})
    assert [plugin.name for plugin in app.registry["sensorhub.plugins"]] == [FAKE]


def test_a_plugins_own_settings_come_from_the_environment_too(app_factory):
    app = app_factory(plugins=[FAKE], environ={"SENSORHUB_FAKE_ANSWER": "3"})
    assert app.registry.settings["sensorhub.fake.answer"] == 3


def test_protected_views_stay_closed_when_no_auth_plugin_is_loaded(app_factory):
    """Pyramid alone would serve a view with a permission when no policy is set; the core's
    default policy denies instead."""
    app = webtest.TestApp(app_factory(plugins=["tests.core.unguardedplugin"]))
    response = app.get("/unguarded/secret", status=401)
    assert "should never be served" not in response.text
