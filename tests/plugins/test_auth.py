"""The auth plugin, read as API documentation: an operator enrols a sensor, the sensor calls
the API with its bearer token."""

import pytest

ADMIN_TOKEN = "admin-token-for-tests-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
def plugins():
    return ["auth"]


@pytest.fixture(scope="module")
def app_settings():
    return {"sensorhub.auth.admin_token": ADMIN_TOKEN}


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def create_sensor(testapp, name="greenhouse-1", **extra):
    return testapp.post_json("/api/v1/sensors", {"name": name, **extra}, headers=ADMIN,
                             status=201).json


def test_admin_creates_a_sensor_which_then_reads_itself(testapp):
    created = create_sensor(testapp, metadata={"site": "north"})
    assert created["name"] == "greenhouse-1"
    assert created["token"].startswith("shs_")

    answer = testapp.get("/api/v1/sensor", {"sensorId": created["sensorId"]},
                         headers=bearer(created["token"]), status=200).json

    assert answer["sensorId"] == created["sensorId"]
    assert answer["name"] == "greenhouse-1"
    assert answer["metadata"] == {"site": "north"}
    assert answer["createdAt"] and answer["lastSeenAt"]
