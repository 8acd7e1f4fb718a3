"""Fuzzing the whole API from its own OpenAPI document (schemathesis, in process, bounded).

Every operation gets generated requests, valid and invalid (negative data, wrong types, unknown
methods, missing or wrong credentials), and every response must pass every default check: never
a 5xx, only documented statuses, content types, headers and shapes, invalid data refused, valid
data accepted, auth never ignored. Requests commit for real (on SQLite and on PostgreSQL, like
the rest of the suite); the tables are emptied afterwards.
"""

from __future__ import annotations

import json

import pytest
import schemathesis
import webtest
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.config._checks import (
    NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES,
    POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES,
    NegativeDataRejectionConfig,
    PositiveDataAcceptanceConfig,
)

from sensorhub import make_app
from sensorhub.lifecycle import close_app
from sensorhub.openapi import document
from tests.conftest import empty_all_tables
from tests.plugins.test_ingest_support import ADMIN, AUTH_SETTINGS

# Bounded: enough to find a whole class of bug on every route, small enough for `make test`.
EXAMPLES_PER_OPERATION = 20

# Operations a sensor (not the admin) calls.
SENSOR_OPERATIONS = {("GET", "/api/v1/sensor"), ("HEAD", "/api/v1/sensor")} | {
    (method, "/api/v1/events") for method in ("GET", "HEAD", "POST")
}


@pytest.fixture(scope="module")
def plugins():
    return ["logging", "metrics", "auth", "ingest"]


APP_SETTINGS = {
    **AUTH_SETTINGS,
    "sensorhub.auth.provisioning_key": "provisioning-key-for-tests-0123456789",
    # Fuzzing sends thousands of wrong credentials from one address: the brute-force guard
    # would rightly answer 429 to all of them after the first few (tests/plugins/test_auth*.py
    # prove it); here every request must reach the check it is about.
    "sensorhub.auth.failure_threshold": "0",
}


@pytest.fixture(scope="module")
def app_settings():
    return APP_SETTINGS


@pytest.fixture(scope="module")
def sensor_header(app, dbengine):
    testapp = webtest.TestApp(app)
    created = testapp.post_json("/api/v1/sensors", {"name": "fuzzed"}, headers=ADMIN).json
    yield {"Authorization": f"Bearer {created['token']}"}
    empty_all_tables(dbengine)


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value) -> bytes:
    """The document describes an NDJSON body as the array of its lines."""
    lines = value if isinstance(value, list) else [value]
    # The standard library writes what orjson refuses (integers beyond 64 bits): sent as is.
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def described_api() -> dict:
    """The document of an app configured like the one under test. Built at collection, when
    fixtures do not exist yet (schemathesis parametrizes from it); describing needs no database."""
    app = make_app(
        {
            "sensorhub.database.url": "sqlite://",
            "sensorhub.plugins": "metrics auth ingest",
            **APP_SETTINGS,
        },
        environ={},
    )
    try:
        return document(app.registry)
    finally:
        close_app(app.registry)


schema = schemathesis.openapi.from_dict(described_api())
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], deterministic=True
)
# Data of the documented shape may still be refused with 422 for what no schema can state: a
# timestamp outside the accepted window, an expiry in the past, a cursor this server never
# issued. Every other default expectation stands.
schema.config.checks.positive_data_acceptance = PositiveDataAcceptanceConfig(
    expected_statuses=[*POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES, "422"]
)
# Too many items is refused with 413, which names the limit (the API's convention), not 400.
schema.config.checks.negative_data_rejection = NegativeDataRejectionConfig(
    expected_statuses=[*NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES, "413"]
)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_no_request_makes_the_api_fail_or_break_its_own_description(case, app, sensor_header):
    case.operation.schema.app = app  # WSGI, in process: the checks' own probes too
    credential = (
        sensor_header if (case.method.upper(), case.operation.path) in SENSOR_OPERATIONS else ADMIN
    )
    case.call_and_validate(app=app, headers=credential)
