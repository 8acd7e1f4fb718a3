"""Errors as ``application/problem+json`` (RFC 9457), each carrying the request ID.

Raise Pyramid's HTTP exceptions, or build one with :func:`problem` to add what the client must
fix, one :class:`FieldError` per bad field::

    raise problem(422, "2 of 3 events are invalid",
                  errors=[FieldError("events[1].value", "must be a number")])
    raise problem(429, "too many failed logins", headers={"Retry-After": "30"})

Every error a client can cause is a 4xx with a reason. Anything unexpected is a 500 whose body
says nothing about internals (the traceback goes to the log, with the request ID). A database
that is down or saturated answers 503 with ``Retry-After``, not a hung thread or a 500.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import orjson
import structlog
from pyramid.httpexceptions import HTTPException, HTTPForbidden, HTTPNotFound, status_map
from pyramid.interfaces import ISecurityPolicy
from pyramid.response import Response
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

if TYPE_CHECKING:
    from pyramid.config import Configurator
    from pyramid.request import Request

PROBLEM_JSON = "application/problem+json"
DATABASE_RETRY_AFTER_SECONDS = 5

log = structlog.get_logger(__name__)


class FieldError(ValueError):
    """One bad field of a client's input: where (``path``: ``"expiresAt"``,
    ``"events[3].value"``), what to fix (``message``) and, where clients or metrics branch on
    it, a bounded ``reason`` code.

    Raise it where one bad value ends the work (``str(error)`` is ``"path: message"``), or
    collect them where every bad item is reported; :func:`problem` takes them as ``errors``.
    """

    def __init__(self, path: str, message: str, reason: str | None = None):
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message
        self.reason = reason

    def as_error(self) -> dict[str, object]:
        """The entry of a problem document's ``errors``."""
        if self.reason is None:
            return {"path": self.path, "message": self.message}
        return {"path": self.path, "reason": self.reason, "message": self.message}


def problem(
    status: int,
    detail: str,
    *,
    errors: Sequence[FieldError | Mapping[str, object]] | None = None,
    headers: Mapping[str, str] | None = None,
    title: str | None = None,
) -> HTTPException:
    """An HTTP exception that renders as a problem document with ``detail`` and ``errors``."""
    exc = status_map[status](detail=detail, headers=dict(headers or {}))
    exc.problem_errors = _as_dicts(errors) if errors else None
    exc.problem_title = title
    return exc


def _as_dicts(errors: Sequence[FieldError | Mapping[str, object]]) -> list[Mapping[str, object]]:
    return [error.as_error() if isinstance(error, FieldError) else error for error in errors]


def problem_response(
    request: Request,
    status: int,
    detail: str,
    *,
    title: str | None = None,
    errors: Sequence[FieldError | Mapping[str, object]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    exc_class = status_map.get(status)
    body: dict[str, object] = {
        "type": "about:blank",
        "title": title or (exc_class.title if exc_class else "Error"),
        "status": status,
        "detail": detail,
        "request_id": request.request_id,
    }
    if errors:
        body["errors"] = _as_dicts(errors)
    response = Response(
        body=orjson.dumps(body), status=status, content_type=PROBLEM_JSON, charset=None
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


_SAFE_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate", "Location")


def http_error_view(exc: HTTPException, request: Request) -> Response:
    if exc.status_code < 400:  # redirects and other non-errors pass through untouched
        return exc
    headers = {name: exc.headers[name] for name in _SAFE_HEADERS if name in exc.headers}
    return problem_response(
        request,
        exc.status_code,
        _detail(exc),
        title=getattr(exc, "problem_title", None),
        errors=getattr(exc, "problem_errors", None),
        headers=headers,
    )


def _detail(exc: HTTPException) -> str:
    if exc.detail:
        return str(exc.detail)
    fallback: str = exc.explanation.strip() or exc.title
    return fallback


def not_found_view(exc: HTTPNotFound, request: Request) -> Response:
    allowed = _allowed_methods(request)
    if allowed and request.method not in allowed:
        return problem_response(
            request,
            405,
            f"{request.method} is not allowed on {request.path}; use {', '.join(sorted(allowed))}",
            headers={"Allow": ", ".join(sorted(allowed))},
        )
    if request.matched_route is None:
        detail = f"no such resource: {request.path}"
    else:  # a route matched but a view predicate (Accept, Content-Type, …) did not
        detail = (
            _detail(exc)
            if exc.detail
            else f"no representation of {request.path} matches this request"
        )
    return problem_response(request, 404, detail)


def _allowed_methods(request: Request) -> set[str]:
    """The methods some view answers on the matched route (Pyramid reports a method mismatch as
    a 404 ``PredicateMismatch``; clients deserve 405 with ``Allow``)."""
    route = request.matched_route
    if route is None:
        return set()
    introspector = request.registry.introspector
    route_intr = introspector.get("routes", route.name)
    if route_intr is None:
        return set()
    methods: set[str] = set()
    for view_intr in introspector.related(route_intr):
        if view_intr.category_name != "views":
            continue
        view_methods = view_intr["request_methods"]
        if view_methods is None:
            return set()  # a view takes any method: the mismatch was another predicate
        methods.update([view_methods] if isinstance(view_methods, str) else view_methods)
    if "GET" in methods:
        methods.add("HEAD")
    return methods


def forbidden_view(exc: HTTPForbidden, request: Request) -> Response:
    """403 for an authenticated caller lacking permission; 401 (with the policy's challenge)
    for a caller who is not authenticated at all."""
    if request.is_authenticated:
        return problem_response(request, 403, _detail_or(exc, "you may not do this"))
    policy = request.registry.queryUtility(ISecurityPolicy)
    challenge = getattr(policy, "challenge_headers", None)
    headers = challenge(request) if challenge else {}
    # A policy may say why it refused what was sent (revoked, expired, unknown…): the body
    # then says so too, with the reason code, as WWW-Authenticate does for machines.
    refusal = getattr(policy, "refusal", None)
    refused: FieldError | None = refusal(request) if refusal else None
    if refused is None:
        detail = "authentication required: send 'Authorization: Bearer <token>'"
    else:
        detail = f"authentication failed: {refused.message}"
    return problem_response(
        request, 401, detail, headers=headers, errors=[refused] if refused else None
    )


def _detail_or(exc: HTTPException, fallback: str) -> str:
    return str(exc.detail) if exc.detail else fallback


def first_line(error: BaseException, limit: int = 200) -> str:
    """The first line of ``error``'s message, at most ``limit`` characters; ``""`` when it has
    none. Driver and parser messages can be long and multi-line: the first line names the
    problem, and is safe to put in a one-line log field or a client's error detail."""
    return (str(error).strip().splitlines() or [""])[0][:limit]


def undecodable_input_view(exc: UnicodeDecodeError, request: Request) -> Response:
    # WebOb decodes the query string and form bodies lazily; bytes that are not UTF-8 are the
    # client's mistake wherever a view happens to touch them.
    return problem_response(
        request,
        400,
        "the request's path, query string or body is not valid UTF-8: percent-encode UTF-8",
    )


def database_unavailable_view(exc: DBAPIError, request: Request) -> Response:
    log.error("database_unavailable", error=type(exc.orig or exc).__name__)
    return problem_response(
        request,
        503,
        "the database is unavailable; retry later",
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
    )


def unexpected_error_view(exc: Exception, request: Request) -> Response:
    log.error("unexpected_error", exc_info=exc)
    return problem_response(request, 500, "internal error; quote the request_id when reporting it")


def includeme(config: Configurator) -> None:
    config.add_exception_view(http_error_view, context=HTTPException)
    config.add_exception_view(not_found_view, context=HTTPNotFound)
    config.add_exception_view(forbidden_view, context=HTTPForbidden)
    config.add_exception_view(undecodable_input_view, context=UnicodeDecodeError)
    config.add_exception_view(database_unavailable_view, context=OperationalError)
    config.add_exception_view(database_unavailable_view, context=PoolTimeoutError)
    config.add_exception_view(unexpected_error_view, context=Exception)
