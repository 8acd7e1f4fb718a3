"""The API's one description: each view declares its operation, the core publishes OpenAPI 3.1.

A view of the API is registered with ``openapi=Operation(...)`` beside its route and method::

    config.add_view(post_events, route_name="ingest.events", request_method="POST",
                    permission=SENSOR, renderer="json",
                    openapi=Operation("Post events", body={JSON: Batch}, responses={201: ...}))

Shapes are msgspec ``Struct`` types (or any type msgspec can describe): the same types the views
decode requests with, so what is documented is what is enforced. The core assembles the document
from the registrations (paths from the routes, parameters from the patterns and the ``query``
shape, the problem document for every error status) and serves it at ``/api/v1/openapi.json``,
with a browsable page at ``/api/v1/docs`` whose assets come from the ``swagger-ui-py`` package
(no CDN: it works offline). ``tests/core/test_openapi.py`` diffs the document against Pyramid's
own routes and views, so an undocumented route cannot ship.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import orjson
from pyramid.httpexceptions import HTTPNotFound
from pyramid.response import FileResponse, Response

from .__version__ import __version__

if TYPE_CHECKING:
    from pyramid.config import Configurator
    from pyramid.registry import Registry
    from pyramid.request import Request

JSON = "application/json"
PROBLEM_JSON = "application/problem+json"
_OPERATIONS = "sensorhub.openapi.operations"
_DOCUMENT = "sensorhub.openapi.document"
_PATH_PARAMETER = re.compile(r"\{(\w+)\}")

# Why each error status may be answered, for the operations that can give it.
ERROR_STATUSES = {
    400: "the request is malformed (bad JSON, query or header): the body says what to fix",
    401: "no valid credential: WWW-Authenticate and the body say why (unknown, revoked, expired)",
    403: "the credential may not do this",
    404: "no such resource",
    409: "the request conflicts with the current state",
    413: "the body or a batch is over a limit: the body names the limit",
    415: "unsupported Content-Type or Content-Encoding",
    422: "the body is well-formed but invalid: errors lists every bad field with its path",
    429: "too many requests: retry after Retry-After seconds",
    503: "overloaded, draining or the database is unavailable: retry after Retry-After seconds",
}
RETRY_AFTER = {
    "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}
}


class FieldProblem(msgspec.Struct, omit_defaults=True):
    """One bad field: where (a JSON path such as ``events[3].value``) and what is expected."""

    path: str
    message: str
    reason: str | None = None


class Problem(msgspec.Struct, omit_defaults=True):
    """An error (RFC 9457 problem details), always with the request ID."""

    type: str
    title: str
    status: int
    detail: str
    request_id: str
    errors: list[FieldProblem] | None = None


class OneOf:
    """A body or response that may take any of several shapes (JSON Schema ``oneOf``)."""

    def __init__(self, *shapes: Any):
        self.shapes = shapes


@dataclass(frozen=True)
class Operation:
    """What one view does, for the document. ``body`` and ``responses`` map media types to
    shapes; a response status maps to ``(description, {media type: shape})``. Error statuses
    are listed by number: they are all answered with :class:`Problem`."""

    summary: str
    description: str = ""
    tags: tuple[str, ...] = ()
    query: type | None = None  # a Struct whose fields are the query parameters
    body: Mapping[str, Any] | None = None  # media type -> shape (None: any content)
    responses: Mapping[int, tuple[str, Mapping[str, Any] | None]] = field(default_factory=dict)
    errors: tuple[int, ...] = ()
    headers: Mapping[str, Any] = field(default_factory=dict)  # request headers it reads


def record_operation(view: Any, info: Any) -> Any:
    """View deriver: remember the view's ``openapi`` option for the document."""
    operation = info.options.get("openapi")
    if operation is not None:
        methods = info.options.get("request_method") or ()
        if isinstance(methods, str):
            methods = (methods,)
        info.registry[_OPERATIONS].append(
            (info.options["route_name"], tuple(methods), info.options.get("permission"), operation)
        )
        info.registry.pop(_DOCUMENT, None)
    return view


record_operation.options = ("openapi",)  # type: ignore[attr-defined]


def document(registry: Registry) -> dict[str, Any]:
    """The OpenAPI 3.1 document of this app (its plugins' routes included), built once."""
    built: dict[str, Any] | None = registry.get(_DOCUMENT)
    if built is None:
        built = registry[_DOCUMENT] = _build(registry)
    return built


def _build(registry: Registry) -> dict[str, Any]:
    mapper = registry.queryUtility(_routes_mapper_interface())
    routes = {route.name: route for route in mapper.get_routes()}
    operations = registry[_OPERATIONS]
    shapes = _shapes(operations)
    names, components = msgspec.json.schema_components(
        shapes, ref_template="#/components/schemas/{name}"
    )
    schema_of = dict(zip(shapes, names, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for route_name, methods, permission, operation in operations:
        pattern = routes[route_name].pattern
        item = paths.setdefault(pattern, {})
        for method in methods:
            item[method.lower()] = _operation(
                operation, pattern, method, permission, schema_of, route_name
            )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "SensorHub API",
            "version": __version__,
            "description": "Sensors post events and read them back; admins manage sensors and "
            "tokens. Every error is application/problem+json with the request ID.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a sensor token (shs_…), the admin token or the "
                    "provisioning key, in the Authorization header only",
                }
            },
        },
    }


def _routes_mapper_interface() -> Any:
    from pyramid.interfaces import IRoutesMapper

    return IRoutesMapper


def _shapes(operations: list[Any]) -> list[Any]:
    shapes: list[Any] = [Problem]
    for *_, operation in operations:
        candidates = list((operation.body or {}).values())
        for _, contents in operation.responses.values():
            candidates.extend((contents or {}).values())
        for candidate in candidates:
            for shape in candidate.shapes if isinstance(candidate, OneOf) else (candidate,):
                if shape is not None and shape not in shapes:
                    shapes.append(shape)
    return shapes


def _content(contents: Mapping[str, Any], schema_of: Mapping[Any, Any]) -> dict[str, Any]:
    """Media type -> shape (``None``: any content, described in words only)."""
    result: dict[str, Any] = {}
    for media, shape in contents.items():
        if shape is None:
            result[media] = {}
        elif isinstance(shape, OneOf):
            result[media] = {"schema": {"oneOf": [schema_of[one] for one in shape.shapes]}}
        else:
            result[media] = {"schema": schema_of[shape]}
    return result


def _operation(
    operation: Operation,
    pattern: str,
    method: str,
    permission: str | None,
    schema_of: Mapping[Any, Any],
    route_name: str,
) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAMETER.findall(pattern)
    ]
    if operation.query is not None:
        query_schema = msgspec.json.schema(operation.query)
        properties = _resolve(query_schema)["properties"]
        required = set(_resolve(query_schema).get("required", ()))
        for name, schema in properties.items():
            parameters.append(
                {
                    "name": name,
                    "in": "query",
                    "required": name in required,
                    "schema": _without_null(schema),
                }
            )
    for name, schema in operation.headers.items():
        parameters.append({"name": name, "in": "header", "required": False, "schema": schema})
    result: dict[str, Any] = {
        "operationId": f"{route_name}.{method.lower()}",
        "summary": operation.summary,
        "tags": list(operation.tags) or [route_name.split(".")[0]],
    }
    if operation.description:
        result["description"] = operation.description
    if parameters:
        result["parameters"] = parameters
    if operation.body is not None and method not in ("GET", "HEAD", "DELETE"):
        result["requestBody"] = {
            "required": True,
            "content": _content(operation.body, schema_of),
        }
    responses: dict[str, Any] = {}
    for status, (description, contents) in sorted(operation.responses.items()):
        response: dict[str, Any] = {"description": description}
        if contents and method != "HEAD":
            response["content"] = _content(contents, schema_of)
        responses[str(status)] = response
    errors = set(operation.errors) | {400, 503}  # any request can be malformed or shed
    if permission is not None:
        errors |= {401, 403, 429}
    for status in sorted(errors):
        response = {"description": ERROR_STATUSES[status]}
        if method != "HEAD":
            response["content"] = {PROBLEM_JSON: {"schema": schema_of[Problem]}}
        if status in (429, 503):
            response["headers"] = RETRY_AFTER
        responses[str(status)] = response
    result["responses"] = responses
    if permission is not None:
        result["security"] = [{"bearer": []}]
    return result


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or has a value: ``X | None = None`` is just ``X``."""
    options = [one for one in schema.get("anyOf", ()) if one != {"type": "null"}]
    if len(options) == 1:
        schema = {**options[0], **{k: v for k, v in schema.items() if k not in ("anyOf",)}}
    if schema.get("default", 0) is None:
        schema = {k: v for k, v in schema.items() if k != "default"}
    return schema


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    """A Struct's top-level schema is a ``$ref`` into its own ``$defs``."""
    ref = schema.get("$ref")
    if ref is None:
        return schema
    definitions: dict[str, dict[str, Any]] = schema["$defs"]
    return definitions[ref.rsplit("/", 1)[-1]]


# --- the routes


def openapi_json(request: Request) -> Response:
    return Response(body=orjson.dumps(document(request.registry)), content_type=JSON, charset=None)


_DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>SensorHub API</title>
  <link rel="stylesheet" href="{prefix}/docs/assets/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{prefix}/docs/assets/swagger-ui-bundle.js"></script>
  <script src="{prefix}/docs/assets/docs.js"></script>
</body>
</html>
"""
_DOCS_SCRIPT = """window.onload = function () {{
  window.ui = SwaggerUIBundle({{url: "{prefix}/openapi.json", dom_id: "#swagger-ui"}});
}};
"""
# Only these files of the package are served (the page needs no more).
_ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js")


def docs_page(request: Request) -> Response:
    from .api import API_PREFIX  # api.py declares its operations with this module

    return Response(_DOCS_PAGE.format(prefix=API_PREFIX), content_type="text/html", charset="utf-8")


def docs_asset(request: Request) -> Response:
    from .api import API_PREFIX

    name = request.matchdict["name"]
    if name == "docs.js":
        return Response(
            _DOCS_SCRIPT.format(prefix=API_PREFIX),
            content_type="text/javascript",
            charset="utf-8",
        )
    if name not in _ASSETS:
        raise HTTPNotFound(f"no docs asset {name!r}")
    path = _swagger_ui_directory() / name
    response = FileResponse(str(path), request=request, content_type=mimetypes.guess_type(name)[0])
    response.cache_control.max_age = 86400
    return response


def _swagger_ui_directory() -> Path:
    import swagger_ui  # type: ignore[import-untyped]

    return Path(swagger_ui.__file__).parent / "static"


def includeme(config: Configurator) -> None:
    from .api import API_PREFIX

    config.registry[_OPERATIONS] = []
    config.add_view_deriver(record_operation)
    config.add_route("api_openapi", f"{API_PREFIX}/openapi.json")
    config.add_route("api_docs", f"{API_PREFIX}/docs")
    config.add_route("api_docs_asset", f"{API_PREFIX}/docs/assets/{{name}}")
    config.add_view(
        openapi_json,
        route_name="api_openapi",
        request_method=("GET", "HEAD"),
        openapi=Operation(
            "This document (OpenAPI 3.1)",
            tags=("meta",),
            responses={200: ("the OpenAPI document", {JSON: dict[str, Any]})},
        ),
    )
    config.add_view(
        docs_page,
        route_name="api_docs",
        request_method=("GET", "HEAD"),
        openapi=Operation(
            "A browsable page of this document (works offline)",
            tags=("meta",),
            responses={200: ("an HTML page", {"text/html": str})},
        ),
    )
    config.add_view(
        docs_asset,
        route_name="api_docs_asset",
        request_method=("GET", "HEAD"),
        openapi=Operation(
            "A script or stylesheet of the docs page",
            tags=("meta",),
            responses={
                200: ("the file", {"text/css": str, "text/javascript": str}),
            },
            errors=(404,),
        ),
    )
