"""Who is calling: the identity contract between an auth plugin and everyone else.

An auth plugin sets a Pyramid security policy whose ``identity(request)`` returns one of these
(or ``None``) and whose ``permits`` grants the permissions below. Other code reads
``request.identity`` and declares ``permission=`` on views; it never imports the auth plugin.

A policy may also offer ``challenge_headers(request) -> dict`` (e.g. ``WWW-Authenticate``);
the core's 401 response uses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyramid.security import Denied

if TYPE_CHECKING:
    from pyramid.request import Request

# A sensor token starts with this prefix, so a leaked one is recognisable without the auth
# plugin (by secret scanners, by log redaction); TOKEN_IN_TEXT finds one, or most of one, in text.
TOKEN_PREFIX = "shs_"  # noqa: S105  (public by design, see above)
TOKEN_IN_TEXT = TOKEN_PREFIX + "[A-Za-z0-9]{30,}"

# View permissions.
SENSOR = "sensor"  # the caller is an enabled sensor acting as itself
ADMIN = "admin"  # the caller holds admin credentials


@dataclass(frozen=True)
class SensorIdentity:
    sensor_id: str
    name: str = ""
    token_id: str | None = None  # which of the sensor's tokens was used, for audit and logs


@dataclass(frozen=True)
class AdminIdentity:
    name: str = "admin"


def sensor_id_of(request: Request) -> str | None:
    """The calling sensor's id, or None (anonymous, admin)."""
    identity = request.identity
    return identity.sensor_id if isinstance(identity, SensorIdentity) else None


class DenyAllSecurityPolicy:
    """The core's default policy: nobody is authenticated, nothing protected is permitted.

    Pyramid without a security policy lets every view through whatever its ``permission``; a
    plugin with protected views loaded without an auth plugin must fail closed instead (401).
    An auth plugin replaces this with ``config.set_security_policy``.
    """

    def identity(self, request: Request) -> None:
        return None

    def authenticated_userid(self, request: Request) -> None:
        return None

    def permits(self, request: Request, context: object, permission: str) -> Denied:
        return Denied("no auth plugin is loaded: add one to sensorhub.plugins")

    def remember(self, request: Request, userid: object, **kw: object) -> list[tuple[str, str]]:
        return []

    def forget(self, request: Request, **kw: object) -> list[tuple[str, str]]:
        return []
