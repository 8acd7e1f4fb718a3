"""The API is described once, in OpenAPI 3.1 at /api/v1/openapi.json, and the description is
the truth: every route and method Pyramid serves is in it and nothing else is, and the docs page
works without the internet."""

from __future__ import annotations

import re

import pytest
import webtest

from tests.plugins.test_ingest_support import AUTH_SETTINGS

ALL_PLUGINS = ["logging", "metrics", "auth", "ingest", "dashboard"]


@pytest.fixture(scope="module")
def plugins():
    return ALL_PLUGINS


@pytest.fixture(scope="module")
def app_settings():
    return {**AUTH_SETTINGS, "sensorhub.dashboard.session_secret": "s" * 32}


def served_operations(app) -> set[tuple[str, str]]:
    """(path pattern, method) of every view Pyramid would dispatch to, read from its own
    configuration (the introspector), not from the document."""
    patterns = {route.name: route.pattern for route in app.routes_mapper.get_routes()}
    served = set()
    for view in app.registry.introspector.get_category("views"):
        introspectable = view["introspectable"]
        route_name = introspectable["route_name"]
        if route_name is None or introspectable["context"] is not None:
            continue  # exception and not-found views answer for routes, they are not routes
        methods = introspectable["request_methods"]
        assert methods, f"the view of route {route_name!r} takes any method: name them"
        for method in (methods,) if isinstance(methods, str) else methods:
            served.add((patterns[route_name], method))
    return served


def documented_operations(document: dict) -> set[tuple[str, str]]:
    return {
        (path, method.upper())
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "head", "post", "put", "patch", "delete", "options")
    }


def test_every_route_and_method_served_is_documented_and_nothing_else(app):
    document = webtest.TestApp(app).get("/api/v1/openapi.json").json
    assert document["openapi"].startswith("3.1")
    assert served_operations(app) == documented_operations(document)


def test_a_plugin_left_out_takes_its_routes_out_of_the_document(app_factory):
    core_only = app_factory()
    document = webtest.TestApp(core_only).get("/api/v1/openapi.json").json
    assert "/api/v1/events" not in document["paths"]
    assert served_operations(core_only) == documented_operations(document)


def test_every_error_a_route_can_answer_is_a_documented_problem(app):
    document = webtest.TestApp(app).get("/api/v1/openapi.json").json
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert "503" in responses and "400" in responses, (path, method)
            if "security" in operation:
                assert {"401", "403", "429"} <= set(responses), (path, method)
            for status in {"429", "503"} & set(responses):
                assert "Retry-After" in responses[status]["headers"], (path, method, status)


def test_the_docs_page_loads_its_assets_from_this_server_only(app):
    testapp = webtest.TestApp(app)
    page = testapp.get("/api/v1/docs")
    assert page.content_type == "text/html"
    assert not re.search(r"(src|href)=\"https?://", page.text), "no CDN: it must work offline"
    for asset in re.findall(r"(?:src|href)=\"([^\"]+)\"", page.text):
        response = testapp.get(asset)
        assert response.status_int == 200 and len(response.body) > 10, asset
    script = testapp.get("/api/v1/docs/assets/docs.js").text
    assert "/api/v1/openapi.json" in script


def test_a_docs_asset_that_is_not_one_of_the_page_s_is_not_found(app):
    problem = webtest.TestApp(app).get("/api/v1/docs/assets/..%2f..%2fsetup.py", status=404)
    assert problem.content_type == "application/problem+json"
