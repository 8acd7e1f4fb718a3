"""Who may see the dashboard: admins, by a signed session cookie or by a bearer header.

- **Browsers** sign in once with the admin token (``POST /dashboard/sign-in``, CSRF-checked).
  The token is checked by asking the app's security policy (the auth plugin's, never imported)
  for the identity of a blank request carrying ``Authorization: Bearer <token>``: the same
  check, brute-force guard and failure events as the API. The session then holds no secret,
  only a *marker*: HMAC-SHA256 of the token's SHA-256, keyed by the session secret.
- **Scripts** send ``Authorization: Bearer <admin token>`` on every request; the policy decides
  as for any API call (a sensor token: 403; a refused one: 401).

The marker ends old sessions when the admin token is rotated: every request recomputes the
marker of the admin token the process was started with (``sensorhub.auth.admin_token``, read
from the settings by name, once) and compares in constant time. With another auth plugin that
declares no such setting, sessions end by ``session_lifetime`` or a new ``session_secret``.

The session cookie (``sensorhub_dashboard``, path ``/dashboard/``) is signed by Pyramid's
``SignedCookieSessionFactory``: HttpOnly, ``SameSite=Strict``, ``Secure`` unless
``secure_cookie = false``, idle timeout ``session_idle_timeout``; a sign-in older than
``session_lifetime`` is over however busy. Only the dashboard's sign-in and sign-out forms
require a CSRF token (per view: the JSON API takes no cookie and needs none).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from urllib.parse import urlencode

from pyramid.httpexceptions import HTTPException, HTTPForbidden, HTTPSeeOther
from pyramid.interfaces import ISecurityPolicy
from pyramid.request import Request
from pyramid.session import SignedCookieSessionFactory

from sensorhub.identity import ADMIN

COOKIE_NAME = "sensorhub_dashboard"
PREFIX = "/dashboard/"
MARKER = "admin"  # session keys
SIGNED_IN_AT = "signed_in_at"
ADMIN_TOKEN_SETTING = "sensorhub.auth.admin_token"  # noqa: S105  (a setting's name)
_EXPECTED_MARKER = "sensorhub.dashboard.expected_marker"  # registry key


def session_factory(settings) -> Callable:
    return SignedCookieSessionFactory(
        settings["sensorhub.dashboard.session_secret"],
        cookie_name=COOKIE_NAME,
        path=PREFIX,
        secure=settings["sensorhub.dashboard.secure_cookie"],
        httponly=True,
        samesite="Strict",
        timeout=settings["sensorhub.dashboard.session_idle_timeout"],
        reissue_time=60,  # refresh the idle clock at most once a minute, not on every page
    )


def marker_of(secret: str, token: str) -> str:
    digest = hashlib.sha256(token.encode("utf-8")).digest()
    return hmac.new(secret.encode("utf-8"), digest, hashlib.sha256).hexdigest()


def remember_expected_marker(registry) -> None:
    """Computed once the app exists (every plugin's settings declared): the marker a valid
    session must hold, or None when no ``sensorhub.auth.admin_token`` is configured here."""
    settings = registry.settings
    token = settings.get(ADMIN_TOKEN_SETTING)
    registry[_EXPECTED_MARKER] = (
        marker_of(settings["sensorhub.dashboard.session_secret"], token)
        if isinstance(token, str) and token
        else None
    )


class TooManyFailures(Exception):
    """The security policy's brute-force guard blocks this address for ``retry_after`` s."""

    def __init__(self, retry_after: str):
        super().__init__(retry_after)
        self.retry_after = retry_after


def admin_by_token(request: Request, token: str) -> bool:
    """Whether ``token`` is an admin credential, by the app's own security policy: the same
    decision as ``permission=ADMIN`` on an API view, with the same brute-force guard (its 429
    becomes :class:`TooManyFailures`) and the same failure events.

    The blank request carries the caller's address (the guard counts per client) and no
    transaction, so a sensor token is not even looked up: the dashboard is for admins only."""
    if not token or len(token) > 1024 or not token.isascii() or not token.isprintable():
        return False
    policy = request.registry.queryUtility(ISecurityPolicy)
    blank = Request.blank(
        PREFIX,
        environ={
            "REMOTE_ADDR": request.remote_addr or "",
            "HTTP_AUTHORIZATION": f"Bearer {token}",
        },
    )
    blank.registry = request.registry
    try:
        return bool(policy.permits(blank, None, ADMIN))
    except HTTPException as error:
        if error.code == 429:
            raise TooManyFailures(error.headers.get("Retry-After", "60")) from None
        raise


def sign_in(request: Request, token: str) -> None:
    """Start a fresh session (never reuse one from before the sign-in: session fixation)."""
    request.session.invalidate()
    request.session[MARKER] = marker_of(
        request.registry.settings["sensorhub.dashboard.session_secret"], token
    )
    request.session[SIGNED_IN_AT] = int(time.time())
    request.session.new_csrf_token()


def signed_in(request: Request) -> bool:
    session = request.session
    marker = session.get(MARKER)
    if not isinstance(marker, str):
        return False
    lifetime = request.registry.settings["sensorhub.dashboard.session_lifetime"]
    if time.time() - session.get(SIGNED_IN_AT, 0) > lifetime:
        session.invalidate()
        return False
    expected = request.registry.get(_EXPECTED_MARKER)
    if expected is not None and not hmac.compare_digest(marker, expected):
        session.invalidate()  # the admin token was rotated since this sign-in
        return False
    return True


def admin_only(view: Callable) -> Callable:
    """A view decorator: admins through; a script's bearer header is judged by the security
    policy (sensor token: 403, refused token: 401 from the core's error views); a browser
    without a valid session is sent to the sign-in page, back here afterwards."""

    def guarded(context, request):
        if "HTTP_AUTHORIZATION" in request.environ:
            if not request.has_permission(ADMIN):
                raise HTTPForbidden("the dashboard is for admins: use the admin token")
        elif not signed_in(request):
            query = urlencode({"next": request.path_qs})
            return HTTPSeeOther(location=request.route_path("dashboard.sign_in") + "?" + query)
        return view(context, request)

    return guarded


def safe_next(target: str | None) -> str:
    """Where to go after signing in: only a dashboard path of this site (no open redirect)."""
    if target and target.startswith(PREFIX) and "//" not in target and "\\" not in target:
        return target
    return PREFIX
