"""The app's requests come from one class that already carries every ``add_request_method``
extension (``sensorhub._bake_request_class``), instead of a new class per request."""

from pyramid.events import NewRequest
from pyramid.request import Request, apply_request_extensions


def classes_of_requests(app, testapp, paths) -> list[type]:
    seen = []

    def handler(event):
        seen.append(type(event.request))

    app.registry.registerHandler(handler, (NewRequest,))
    try:
        for path in paths:
            testapp.get(path)
    finally:
        app.registry.unregisterHandler(handler, (NewRequest,))
    return seen


def test_every_request_is_of_one_class_that_has_the_extensions(app, testapp):
    first, second = classes_of_requests(app, testapp, ["/healthz", "/api/v1/"])
    assert first is second
    assert {"dbsession", "tm", "request_id"} <= set(vars(first))


def test_a_request_built_by_hand_still_gets_the_extensions_the_documented_way(app):
    request = Request.blank("/")
    request.registry = app.registry
    apply_request_extensions(request)
    assert request.request_id
