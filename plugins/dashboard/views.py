"""The pages: sign-in and sign-out, the fleet overview, one sensor's page.

Every page but the sign-in form goes through :func:`access.admin_only`. Pages are rendered on
the server (Jinja2 templates in ``templates/``, styles in ``static/dashboard.css``, charts as
inline SVG): no script, no external asset, and a Content-Security-Policy that allows neither.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

from pyramid.csrf import get_csrf_token
from pyramid.exceptions import BadCSRFToken
from pyramid.httpexceptions import HTTPSeeOther
from pyramid.renderers import render_to_response
from pyramid.response import FileResponse

from sensorhub.openapi import Operation

from . import access
from .chart import series_by_type, svg

TEMPLATES = f"{__package__}:templates"
QUERIES = "sensorhub.dashboard.queries"  # registry key
HEADERS = {
    # Pages show the fleet to admins only: never cache them, never frame them.
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def _with_headers(request) -> None:
    def add(_request, response):
        response.headers.update(HEADERS)

    request.add_response_callback(add)


def html(view):
    """A view whose answer (a page or a redirect) carries the dashboard's headers."""

    def wrapped(context, request):
        _with_headers(request)
        return view(context, request)

    return wrapped


def _render(request, template: str, status: int, **values):
    response = render_to_response(f"{TEMPLATES}/{template}", values, request=request)
    response.status_int = status
    return response


class Clock:
    """How the templates write times: UTC, and how long ago."""

    def __init__(self, now: datetime):
        self.now = now

    def when(self, moment: datetime | None) -> str:
        return "never" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")

    def ago(self, moment: datetime | None) -> str:
        if moment is None:
            return "never"
        seconds = int((self.now - moment).total_seconds())
        if seconds < 0:
            return "in the future"
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if seconds >= size:
                return f"{seconds // size} {unit} ago"
        return f"{seconds} s ago"

    @staticmethod
    def duration(seconds: float) -> str:
        for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
            if seconds >= size and seconds % size == 0:
                return f"{int(seconds // size)} {unit}"
        return f"{seconds:g} s"


def _common(request, **values) -> dict:
    """What every template gets. The CSRF token is made only when a form asks for it: a
    script's bearer request must not start a session (no cookie it would never send back)."""
    return {
        "csrf_token": lambda: get_csrf_token(request),
        "clock": Clock(datetime.now(UTC)),
        "session_user": "HTTP_AUTHORIZATION" not in request.environ and access.signed_in(request),
        **values,
    }


@html
def overview(context, request):
    settings = request.registry.settings
    size = settings["sensorhub.dashboard.page_size"]
    number = request.params.get("page", "1")
    if not number.isdigit() or int(number) < 1:
        return _render(
            request,
            "error.jinja2",
            400,
            **_common(
                request,
                title="Bad page number",
                message=f"page must be a whole number from 1, not {number[:20]!r}",
            ),
        )
    number_int = int(number)
    queries = request.registry[QUERIES]
    values = _common(request)
    now = values["clock"].now
    fleet = queries.fleet(request.dbsession, now)
    pages = max(1, math.ceil(fleet["sensors"] / size))
    if number_int > pages:
        return _render(
            request,
            "error.jinja2",
            404,
            **_common(
                request,
                title="No such page",
                message=f"the overview has {pages} page(s) of {size} sensors",
            ),
        )
    rows = queries.page(request.dbsession, now, size, (number_int - 1) * size)
    return _render(
        request,
        "overview.jinja2",
        200,
        fleet=fleet,
        rows=rows,
        page=number_int,
        pages=pages,
        cap=settings["sensorhub.dashboard.count_cap"],
        stale_after=settings["sensorhub.dashboard.stale_after"],
        **values,
    )


@html
def sensor(context, request):
    queries = request.registry[QUERIES]
    sensor_id = request.matchdict["sensor_id"]
    values = _common(request)
    found = queries.sensor(request.dbsession, values["clock"].now, sensor_id)
    if found is None:
        return _render(
            request,
            "error.jinja2",
            404,
            **values,
            title="No such sensor",
            message=f"there is no sensor with the id {sensor_id[:80]!r}: pick one from the "
            "fleet overview",
        )
    events = queries.latest_events(request.dbsession, sensor_id)
    charts = [
        (series, svg(series, f"chart-{i}")) for i, series in enumerate(series_by_type(events))
    ]
    latest = events[: request.registry.settings["sensorhub.dashboard.latest_events"]]
    stale_after = request.registry.settings["sensorhub.dashboard.stale_after"]
    return _render(
        request,
        "sensor.jinja2",
        200,
        sensor=found,
        charts=charts,
        latest=latest,
        stale_after=stale_after,
        **values,
    )


@html
def sign_in_form(context, request):
    target = access.safe_next(request.params.get("next"))
    if access.signed_in(request):
        return HTTPSeeOther(location=target)
    return _render(
        request,
        "sign_in.jinja2",
        200,
        **_common(request, next=target, signed_out="signed_out" in request.params),
    )


@html
def sign_in(context, request):
    target = access.safe_next(request.POST.get("next"))
    token = request.POST.get("token", "").strip()
    try:
        admin = access.admin_by_token(request, token)
    except access.TooManyFailures as blocked:
        response = _render(
            request,
            "sign_in.jinja2",
            429,
            **_common(
                request,
                next=target,
                error="Too many refused tokens from this address: try again in "
                f"{blocked.retry_after} seconds.",
            ),
        )
        response.headers["Retry-After"] = blocked.retry_after
        return response
    if admin:
        access.sign_in(request, token)
        return HTTPSeeOther(location=target)
    # The token is never echoed back nor logged: the form comes back empty.
    return _render(
        request,
        "sign_in.jinja2",
        403,
        **_common(
            request,
            next=target,
            error="That is not the admin token (sensorhub.auth.admin_token). Check it and try "
            "again; repeated failures from one address are blocked for a while.",
        ),
    )


@html
def sign_out(context, request):
    request.session.invalidate()
    return HTTPSeeOther(location=request.route_path("dashboard.sign_in") + "?signed_out=1")


@html
def csrf_failed(exc: BadCSRFToken, request):
    return _render(
        request,
        "error.jinja2",
        400,
        **_common(
            request,
            title="Form expired",
            message="the form was not sent by this page, or its session expired: go back, "
            "reload the page and send it again",
        ),
    )


def to_overview(context, request):
    return HTTPSeeOther(location=request.route_path("dashboard.overview"))


def includeme(config) -> None:
    config.add_route("dashboard.overview", "/dashboard/")
    config.add_route("dashboard.bare", "/dashboard")
    config.add_route("dashboard.sensor", "/dashboard/sensors/{sensor_id}")
    config.add_route("dashboard.sign_in", "/dashboard/sign-in")
    config.add_route("dashboard.sign_out", "/dashboard/sign-out")
    # The forms write nothing to the database: keep their transactions readers on SQLite.
    config.add_reader_route("dashboard.sign_in")
    config.add_reader_route("dashboard.sign_out")
    config.add_route("dashboard.stylesheet", "/dashboard/static/dashboard.css")
    guarded = {"decorator": access.admin_only, "request_method": ("GET", "HEAD")}
    config.add_view(
        overview,
        route_name="dashboard.overview",
        **guarded,
        openapi=_page("The fleet at a glance (admin; HTML)", (401, 403)),
    )
    config.add_view(
        sensor,
        route_name="dashboard.sensor",
        **guarded,
        openapi=_page(
            "One sensor: a chart per event type and its latest events (admin; HTML)",
            (401, 403, 404),
        ),
    )
    config.add_view(
        to_overview,
        route_name="dashboard.bare",
        request_method=("GET", "HEAD"),
        openapi=Operation(
            "Redirects to /dashboard/",
            tags=("dashboard",),
            responses={303: ("see /dashboard/", None)},
        ),
    )
    config.add_view(
        sign_in_form,
        route_name="dashboard.sign_in",
        request_method=("GET", "HEAD"),
        openapi=_page("The sign-in form (HTML)", ()),
    )
    # CSRF per view, on the forms only: turning it on globally would break the JSON API.
    form = {FORM: None}
    config.add_view(
        sign_in,
        route_name="dashboard.sign_in",
        request_method="POST",
        require_csrf=True,
        openapi=Operation(
            "Sign in with the admin token (form with its CSRF token)",
            tags=("dashboard",),
            body=form,
            responses={
                303: ("signed in: to the overview", None),
                200: ("refused: the form again", {HTML: str}),
            },
            errors=(429,),
        ),
    )
    config.add_view(
        sign_out,
        route_name="dashboard.sign_out",
        request_method="POST",
        require_csrf=True,
        openapi=Operation(
            "Sign out (form with its CSRF token)",
            tags=("dashboard",),
            body=form,
            responses={303: ("signed out: to the sign-in form", None)},
        ),
    )
    for route in ("dashboard.sign_in", "dashboard.sign_out"):
        config.add_exception_view(csrf_failed, context=BadCSRFToken, route_name=route)
    config.add_view(
        stylesheet,
        route_name="dashboard.stylesheet",
        request_method=("GET", "HEAD"),
        openapi=Operation(
            "The pages' stylesheet",
            tags=("dashboard",),
            responses={200: ("CSS", {"text/css": str})},
        ),
    )


HTML = "text/html"
FORM = "application/x-www-form-urlencoded"
_STYLESHEET = Path(__file__).parent / "static" / "dashboard.css"


def _page(summary: str, errors: tuple[int, ...]) -> Operation:
    return Operation(
        summary, tags=("dashboard",), responses={200: ("the page", {HTML: str})}, errors=errors
    )


def stylesheet(context, request):
    response = FileResponse(str(_STYLESHEET), request=request, content_type="text/css")
    response.cache_control.max_age = 3600
    return response
