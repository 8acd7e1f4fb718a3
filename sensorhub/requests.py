"""What any plugin may ask about a request: its route's name, and whether this attempt counts.

Plugins may not import each other, so the small questions that several of them ask about a
request (logging and metrics both label by route and both skip an attempt pyramid_retry will
repeat) are answered once, here.

- :func:`route_name` is the matched route's *name*, or :data:`UNMATCHED_ROUTE` when no route
  matched: a bounded value, safe as a metric label (a scanner probing random paths makes no
  new series). :func:`matched_route_name` is the same without the fixed label, for records
  where "no route" should read as ``null``.
- :func:`raw_path` is the path as the client sent it, percent-encoded: safe to log or compare
  even when its bytes are not UTF-8 (``request.path`` raises then, outside the exception views
  that answer such a request 400).
- :func:`will_retry` says whether pyramid_retry will discard this attempt and run the request
  again. Such an attempt is not a request: a summary line or a RED observation belongs to the
  attempt that ends the request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

from pyramid_retry import is_error_retryable

if TYPE_CHECKING:
    from pyramid.request import Request

__all__ = ["UNMATCHED_ROUTE", "matched_route_name", "raw_path", "route_name", "will_retry"]

# The characters webob leaves unquoted in ``request.path``: the same text for a valid path.
_PATH_SAFE = "/~!$&'()*+,;=:@"

UNMATCHED_ROUTE = "unmatched"


def matched_route_name(request: Request) -> str | None:
    """The name of the route ``request`` matched, or ``None`` (no route matched, or routing has
    not happened yet, e.g. in a tween when the router raised first)."""
    route = getattr(request, "matched_route", None)
    return route.name if route is not None else None


def raw_path(request: Request) -> str:
    """``SCRIPT_NAME`` + ``PATH_INFO`` as sent, percent-encoded (WSGI hands them over as
    latin-1 text, one character per byte)."""
    environ = request.environ
    raw = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    return quote(raw.encode("latin-1", "replace"), safe=_PATH_SAFE)


def route_name(request: Request) -> str:
    """The matched route's name, or :data:`UNMATCHED_ROUTE`: always one of a bounded set."""
    return matched_route_name(request) or UNMATCHED_ROUTE


def will_retry(request: Request, error: BaseException | None = None) -> bool:
    """True when pyramid_retry will discard this attempt and run the request again.

    ``error`` is what the handler raised; without it, the exception an exception view answered
    (``request.exception``), whose rendered response pyramid_retry then drops. False on the
    final attempt (``retry.attempts`` reached), for a non-retryable error, or without an error.
    Call it where pyramid_retry decides: in a tween, once the handler has returned or raised.
    """
    if error is None:
        error = getattr(request, "exception", None)
    return error is not None and bool(is_error_retryable(request, error))
