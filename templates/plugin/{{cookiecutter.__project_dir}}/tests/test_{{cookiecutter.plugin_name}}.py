"""The plugin in a SensorHub app: its route, its settings, what it hears."""

from __future__ import annotations

import pytest
import webtest
from pyramid.request import Request

from sensorhub.events import EventsIngested, publish
from sensorhub.settings import SettingError, env_name_for

PLUGIN = "{{ cookiecutter.__plugin_ref }}"
NAME = "{{ cookiecutter.plugin_name }}"
URL = f"/api/v1/{NAME}/"
GREETING = f"sensorhub.{NAME}.greeting"
RECENT_LIMIT = f"sensorhub.{NAME}.recent_limit"


def test_the_plugin_answers_at_its_own_url(testapp):
    response = testapp.get(URL)
    assert response.json == {"plugin": NAME, "greeting": "hello", "recentIngestions": []}
    assert response.headers["X-Request-ID"]


def test_the_api_root_lists_the_plugin_and_its_capability(testapp):
    root = testapp.get("/api/v1/").json
    assert root["plugins"] == [PLUGIN]
    assert root["capabilities"][NAME]["url"] == URL


def test_a_setting_comes_from_the_ini_and_the_environment_wins(app_factory):
    from_ini = webtest.TestApp(app_factory(settings={GREETING: "from the ini"}))
    assert from_ini.get(URL).json["greeting"] == "from the ini"
    from_env = webtest.TestApp(app_factory(settings={GREETING: "from the ini"},
                                           environ={env_name_for(GREETING): "from env"}))
    assert from_env.get(URL).json["greeting"] == "from env"


def test_a_bad_setting_stops_start_up_naming_the_key_and_its_environment_variable(app_factory):
    with pytest.raises(SettingError) as error:
        app_factory(settings={RECENT_LIMIT: "lots"})
    assert RECENT_LIMIT in str(error.value)
    assert env_name_for(RECENT_LIMIT) in str(error.value)


def test_it_lists_the_latest_ingestions_it_heard_of(app_factory):
    app = app_factory(settings={RECENT_LIMIT: "2"})
    request = Request.blank("/")
    request.registry = app.registry
    for sensor_id, accepted in [("sen_a", 1), ("sen_b", 2), ("sen_c", 3)]:
        publish(app.registry, EventsIngested(request=request, sensor_id=sensor_id,
                                             batch_size=accepted, accepted=accepted,
                                             duplicates=0, rejected=0))
    listed = webtest.TestApp(app).get(URL).json["recentIngestions"]
    assert listed == [{"sensorId": "sen_b", "accepted": 2}, {"sensorId": "sen_c", "accepted": 3}]


def test_a_method_it_does_not_answer_gets_405_as_problem_json(testapp):
    response = testapp.post_json(URL, {}, status=405)
    assert response.content_type == "application/problem+json"
    assert "GET" in response.headers["Allow"]
    assert response.json["request_id"] == response.headers["X-Request-ID"]
