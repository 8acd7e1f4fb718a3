"""The bearer-token security policy (Pyramid 2 ``ISecurityPolicy``).

``Authorization: Bearer <credential>`` is the only way in: the admin token, the provisioning key
(which may only enrol sensors) or a sensor token (``shs_…``), tried in that order. Admin and
provisioning secrets are kept only as SHA-256 digests and compared in constant time.

A sensor token costs one indexed lookup by its hash and no write but ``last_used_at`` /
``last_seen_at``, refreshed at most once per ``touch_interval``: only a request that may refresh
them asks for a writer transaction, so on SQLite every other authentication is a read that
neither takes nor waits for the write lock. A successful lookup is remembered (for up to
``token_cache_ttl``, never past the token's expiry or its next due touch) and reused only while
the credential generation (``models.CredentialGeneration``, one row that every change to a
sensor or token bumps in its own transaction) is what it was when the lookup was made: a
revocation committed by any process or node is refused by the very next request everywhere, at
the cost of one primary-key read instead of the token lookup. On ``GET /api/v1/sensor`` that read
also brings the sensor's last-seen time and the other plugins' fields (the core's
``sensor_info`` columns), and the view answers with them and the profile the lookup remembered
(:meth:`~BearerTokenSecurityPolicy.remembered_self`): one read for the whole answer. The TTL
bounds only changes made behind SensorHub's back (plain SQL); 0 looks every request up.

A refused credential never writes; it publishes :class:`AuthenticationFailed` with a bounded
reason and counts towards the brute-force guard (``guard.py``). Answers other than 401 are
decided in :meth:`permits`, i.e. only on protected views: a token in the query string is a 400,
a blocked client a 429 with ``Retry-After``.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.parse import parse_qsl

import structlog
from pyramid.request import RequestLocalCache
from pyramid.security import Allowed, Denied
from sqlalchemy import bindparam, event, literal_column, or_, select, update
from sqlalchemy.orm import Session, sessionmaker
from zope.sqlalchemy import mark_changed

from sensorhub.db import DriverRead, begin_writing
from sensorhub.errors import FieldError, problem
from sensorhub.events import (
    AuthenticationFailed,
    RequestRateLimited,
    SensorAuthenticated,
    publish,
)
from sensorhub.identity import ADMIN, SENSOR, AdminIdentity, SensorIdentity
from sensorhub.models import Sensor
from sensorhub.sensor_info import SENSOR_ID, sensor_info_columns, sensor_info_fields

from . import tokens
from .guard import FailureGuard, SensorRateLimiter
from .models import CredentialGeneration, SensorToken
from .service import PROFILE_COLUMNS, Profile

ENROL = "sensor.enrol"  # this plugin's own permission: create a sensor (admin or provisioning)
MAX_AUTHORIZATION_LENGTH = 1024
MAX_REMEMBERED_TOKENS = 100_000  # per app, for touches and for cached lookups
SELF_ROUTE = "auth.sensor_self"  # GET /api/v1/sensor: answered from remembered_self
QUERY_TOKEN_NAMES = frozenset({"access_token", "token", "bearer", "api_key", "apikey"})
REALM = "sensorhub"
UNCHECKED = "unchecked"  # a sensor token seen outside a transaction: not looked up, not a failure

log = structlog.get_logger(__name__)

_DESCRIPTIONS = {
    "malformed": "the token is malformed: expected shs_ followed by 38 letters and digits",
    "bad_checksum": "the token's checksum does not match: it was mistyped or truncated",
    "unknown": "the token is not recognised",
    "expired": "the token has expired: ask an operator for a new one",
    "revoked": "the token has been revoked: ask an operator for a new one",
    "disabled": "the sensor is disabled: ask an operator to enable it",
}


@dataclass(frozen=True)
class ProvisioningIdentity:
    """A device enrolling itself with the fleet's provisioning key: may only create a sensor."""

    name: str = "provisioning"


@dataclass(frozen=True, slots=True)
class _Lookup:
    """A successful sensor-token lookup, reusable until ``until`` (the policy's ``clock``) while
    the credential generation is still ``generation``; with what it read of the sensor's
    profile that only a change through SensorHub (which bumps the generation) alters:
    ``(name, created_at, meta)``."""

    identity: SensorIdentity
    until: float
    generation: int | None
    profile: tuple[str, datetime, Any]


@dataclass(frozen=True)
class Outcome:
    identity: object | None = None
    reason: str | None = None  # why a credential was refused; "missing" when none was sent
    retry_after: int | None = None  # the client was already blocked when this request came
    # (profile, other plugins' fields) from a remembered lookup's check, see remembered_self
    self_answer: tuple[Profile, dict[str, Any]] | None = None


def digest_of(secret: str) -> bytes | None:
    return hashlib.sha256(secret.encode("utf-8")).digest() if secret else None


class BearerTokenSecurityPolicy:
    def __init__(
        self,
        admin_token: str,
        provisioning_key: str,
        guard: FailureGuard,
        touch_interval: float,
        token_cache_ttl: float = 0.0,
        sensor_limiter: SensorRateLimiter | None = None,
    ):
        self._admin_digest = digest_of(admin_token)
        self._provisioning_digest = digest_of(provisioning_key)
        self.guard = guard
        self.sensor_limiter = sensor_limiter or SensorRateLimiter(0, 1)
        self.touch_interval = timedelta(seconds=touch_interval)
        self._outcomes = RequestLocalCache(self._authenticate)
        self.token_cache_ttl = token_cache_ttl
        self.clock = time.monotonic  # test hook: remembered touches and lookups age by it
        # token digest -> clock time until which its last_used_at is known to be fresh
        self._touched_until: dict[bytes, float] = {}
        self._lookups: dict[bytes, _Lookup] = {}  # token digest -> reusable lookup
        self.credential_changes = CredentialChanges()  # includeme watches the app's sessions
        # GET /api/v1/sensor's two reads, without other plugins' columns until prepare_self_reads
        self._self_check, self._self_read = _self_reads(())

    @property
    def admin_enabled(self) -> bool:
        return self._admin_digest is not None

    @property
    def provisioning_enabled(self) -> bool:
        return self._provisioning_digest is not None

    # --- ISecurityPolicy

    def identity(self, request):
        return self._outcome(request).identity

    def authenticated_userid(self, request):
        identity = self.identity(request)
        if isinstance(identity, SensorIdentity):
            return identity.sensor_id
        return identity.name if identity is not None else None

    def permits(self, request, context, permission):
        if _token_in_query(request):
            _publish(request, AuthenticationFailed(request, "token_in_query"))
            raise problem(
                400,
                "credentials in the URL are refused (URLs end up in logs): send "
                "'Authorization: Bearer <token>' instead, and rotate the token that "
                "was exposed",
            )
        outcome = self._outcome(request)
        identity = outcome.identity
        if identity is None:
            retry_after = outcome.retry_after
            if retry_after is not None:
                _publish(request, RequestRateLimited(request, "auth_failures"))
                raise problem(
                    429,
                    f"too many refused credentials from this address; retry after {retry_after} s",
                    headers={"Retry-After": str(retry_after)},
                )
            if outcome.reason == "missing":
                _publish(request, AuthenticationFailed(request, "missing"))
            return Denied("not authenticated")
        if permission == SENSOR and isinstance(identity, SensorIdentity):
            retry_after = self.sensor_limiter.retry_after(identity.sensor_id)
            if retry_after is not None:
                _publish(request, RequestRateLimited(request, "sensor"))
                raise problem(
                    429,
                    "this sensor sends requests faster than its limit "
                    f"({self.sensor_limiter.rate:g}/s); retry after {retry_after} s, and batch "
                    "events instead of sending them one by one",
                    headers={"Retry-After": str(retry_after)},
                )
            return Allowed("an enabled sensor")
        if permission in (ADMIN, ENROL) and isinstance(identity, AdminIdentity):
            return Allowed("admin")
        if permission == ENROL and isinstance(identity, ProvisioningIdentity):
            return Allowed("provisioning key")
        return Denied(f"{type(identity).__name__} lacks permission {permission!r}")

    def remember(self, request, userid, **kw):
        return []  # stateless: the client sends its token on every request

    def forget(self, request, **kw):
        return []

    def challenge_headers(self, request) -> dict:
        """``WWW-Authenticate`` for a 401 (RFC 6750 §3): ``error="invalid_token"`` when a bearer
        token was presented and refused, with a description saying why."""
        reason = self._outcome(request).reason
        if reason in _DESCRIPTIONS:
            return {
                "WWW-Authenticate": f'Bearer realm="{REALM}", error="invalid_token", '
                f'error_description="{_DESCRIPTIONS[reason]}"'
            }
        return {"WWW-Authenticate": f'Bearer realm="{REALM}"'}

    def prepare_self_reads(self, registry) -> None:
        """Build ``GET /api/v1/sensor``'s reads with every plugin's ``sensor_info`` columns: a
        config action of this plugin, run once every plugin has contributed."""
        self._self_check, self._self_read = _self_reads(sensor_info_columns(registry))

    def read_self(self, request, sensor_id: str) -> tuple[Profile, dict[str, Any]] | None:
        """What ``GET /api/v1/sensor`` answers when this request did not reuse a remembered
        lookup (see :meth:`remembered_self`): the profile and the other plugins' fields, in one
        statement on the driver; None if the sensor is gone."""
        row = self._self_read.first(request, sensor_id=sensor_id)
        if row is None:
            return None
        profile = cast(Profile, row[: len(PROFILE_COLUMNS)])
        return profile, sensor_info_fields(request.registry, row[len(PROFILE_COLUMNS) :])

    def remembered_self(self, request) -> tuple[Profile, dict[str, Any]] | None:
        """What ``GET /api/v1/sensor`` answers when this request reused a remembered lookup:
        the calling sensor's ``(id, name, created_at, last_seen_at, meta)`` and the other
        plugins' fields (``sensorhub.sensor_info``); else None (then :meth:`read_self`).

        As fresh as a read: the generation check that validated the lookup read
        ``last_seen_at`` (which touches change without bumping the generation) and the
        contributed columns in the same statement, and the rest changes only with a bump. Like
        the lookup itself, a change made behind SensorHub's back (plain SQL) shows within
        ``token_cache_ttl``. Its ``meta`` is the remembered value itself, shared by the
        sensor's requests: read it, never change it."""
        return self._outcome(request).self_answer

    def refusal(self, request) -> FieldError | None:
        """Why a presented credential was refused, for the 401's body (the core's contract):
        the same reason code and words as ``WWW-Authenticate``; None when none was sent."""
        reason = self._outcome(request).reason
        if reason in _DESCRIPTIONS:
            return FieldError("Authorization", _DESCRIPTIONS[reason], reason)
        return None

    # --- authentication

    def _outcome(self, request) -> Outcome:
        outcome = self._outcomes.get_or_create(request)
        if outcome.reason == UNCHECKED:
            self._outcomes.clear(request)  # ask again once the transaction is open
        return outcome

    def _authenticate(self, request) -> Outcome:
        header = request.environ.get("HTTP_AUTHORIZATION")
        client = request.remote_addr or ""
        # Blocked or not is decided before this request counts: the threshold-th refused
        # credential is still a 401, the next one a 429.
        blocked = self.guard.retry_after(client)
        if header is None:
            return Outcome(reason="missing", retry_after=blocked)
        outcome = self._check(request, header, may_query=blocked is None)
        if outcome.identity is None and outcome.reason != UNCHECKED:
            self.guard.record_failure(client)
            if blocked is not None:
                # A blocked client costs no database lookup and no log line.
                return Outcome(reason=outcome.reason, retry_after=blocked)
            # _check gives every refusal a reason, so reason is a str here.
            _publish(request, AuthenticationFailed(request, cast(str, outcome.reason)))
            log.info("authentication_failed", reason=outcome.reason)
            return Outcome(reason=outcome.reason)
        return outcome

    def _check(self, request, header: str, may_query: bool = True) -> Outcome:
        if len(header) > MAX_AUTHORIZATION_LENGTH:
            return Outcome(reason="malformed")
        scheme, _, credential = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            return Outcome(reason="wrong_scheme")
        credential = credential.strip()
        if not credential or not credential.isascii() or not credential.isprintable():
            return Outcome(reason="malformed")
        digest = hashlib.sha256(credential.encode("ascii")).digest()
        # Both comparisons always run, so timing does not say which secret was nearly right.
        is_admin = _matches(self._admin_digest, digest)
        is_provisioning = _matches(self._provisioning_digest, digest)
        if is_admin:
            return Outcome(AdminIdentity())
        if is_provisioning:
            return Outcome(ProvisioningIdentity())
        if not credential.startswith(tokens.PREFIX):
            return Outcome(reason="unknown")  # a wrong admin/provisioning secret, or garbage
        if not tokens.looks_like_token(credential):
            return Outcome(reason="malformed")
        if not tokens.checksum_ok(credential):
            return Outcome(reason="bad_checksum")
        if not request.environ.get("tm.active"):
            # Asked outside the request's transaction (a tween above pyramid_tm): no lookup is
            # possible, so nobody is authenticated *yet*; neither a failure nor cached.
            return Outcome(reason=UNCHECKED)
        return self._sensor(request, digest, may_query)

    def _sensor(self, request, digest: bytes, may_query: bool = True) -> Outcome:
        lookup = self._lookups.get(digest)
        if lookup is not None and lookup.until > self.clock():
            reused = self._reuse(request, lookup)
            if reused is not None:
                return reused
        if not may_query:
            return Outcome(reason="blocked")  # a blocked address gets no token lookup
        dbsession = request.dbsession
        touch_due = self._touched_until.get(digest, 0.0) <= self.clock()
        if touch_due:
            # This request may write last_used_at: in a reader transaction, take the write lock
            # before reading (once per interval per token, see the class docstring).
            begin_writing(dbsession)
        connection = dbsession.connection()
        # The generation comes in the same statement as the token, so what is remembered was
        # true at that generation (on PostgreSQL's read committed too).
        row = connection.execute(_TOKEN_LOOKUP, {"digest": digest}).one_or_none()
        if row is None or not tokens.same_hash(row.token_hash, digest):
            return Outcome(reason="unknown")
        now = datetime.now(UTC)
        if row.revoked_at is not None:
            return Outcome(reason="revoked")
        if row.expires_at is not None and row.expires_at <= now:
            return Outcome(reason="expired")
        if row.disabled:
            return Outcome(reason="disabled")
        identity = SensorIdentity(row.sensor_id, row.name, row.id)
        if touch_due:
            if row.last_used_at is None or now - row.last_used_at >= self.touch_interval:
                stale = now - self.touch_interval
                connection.execute(_TOUCH_TOKEN, {"key": row.id, "touched_at": now, "stale": stale})
                connection.execute(
                    _TOUCH_SENSOR, {"key": row.sensor_id, "touched_at": now, "stale": stale}
                )
                mark_changed(dbsession)
                fresh_for = self.touch_interval
            else:
                fresh_for = self.touch_interval - (now - row.last_used_at)
            self._remember_touch(digest, fresh_for.total_seconds())
        self._remember_lookup(digest, identity, row, now)
        return self._authenticated(request, identity)

    def _reuse(self, request, lookup: _Lookup) -> Outcome | None:
        """``lookup``'s outcome if the credential generation is still the one it was made at,
        else None. The one read every request of a remembered sensor makes to authenticate; on
        GET /api/v1/sensor it brings the rest of the answer too (remembered_self)."""
        sensor_id = lookup.identity.sensor_id
        route = request.matched_route
        reads_itself = route is not None and route.name == SELF_ROUTE
        if reads_itself:
            current = self._self_check.first(request, sensor_id=sensor_id)
        else:
            current = _GENERATION_READ.first(request)
        if current is None or current[0] != lookup.generation:
            return None
        self_answer = None
        if reads_itself:
            name, created_at, meta = lookup.profile
            profile = (sensor_id, name, created_at, current[1], meta)
            self_answer = (profile, sensor_info_fields(request.registry, current[2:]))
        return self._authenticated(request, lookup.identity, self_answer)

    def _authenticated(
        self,
        request,
        identity: SensorIdentity,
        self_answer: tuple[Profile, dict[str, Any]] | None = None,
    ) -> Outcome:
        structlog.contextvars.bind_contextvars(sensor_id=identity.sensor_id)
        _publish(request, SensorAuthenticated(request, identity.sensor_id))
        return Outcome(identity, self_answer=self_answer)

    def _remember_touch(self, digest: bytes, fresh_for: float) -> None:
        if len(self._touched_until) >= MAX_REMEMBERED_TOKENS:
            self._touched_until.clear()  # costs one extra touch per token, never a wrong answer
        self._touched_until[digest] = self.clock() + fresh_for

    def _remember_lookup(self, digest: bytes, identity: SensorIdentity, row, now: datetime) -> None:
        """Remember ``row``, the token lookup of ``identity`` made at ``now``."""
        clock = self.clock()
        # Never past the next due touch (that request must reach the database) or the expiry.
        until = min(clock + self.token_cache_ttl, self._touched_until.get(digest, 0.0))
        if row.expires_at is not None:
            until = min(until, clock + (row.expires_at - now).total_seconds())
        if until <= clock or row.generation is None:
            return  # None: no generation row (a database emptied by hand): never remembered
        if len(self._lookups) >= MAX_REMEMBERED_TOKENS:
            self._lookups.clear()  # costs one lookup per token, never a wrong answer
        profile = (row.name, row.created_at, row.meta)
        self._lookups[digest] = _Lookup(identity, until, row.generation, profile)


# The credential generation as a column of the token lookup, and alone or with the sensor's
# last-seen time (a remembered lookup's check, see below); a token joined to its sensor, by
# hash; and the touches, whose WHERE makes concurrent requests of one sensor (and other
# processes) agree on who writes. Built once: constructing a statement costs more than running
# it.
# The row's key inline, not a parameter: the token lookup keeps its one parameter, and the
# generation check runs as compiled on every driver.
_THE_ROW = CredentialGeneration.id == literal_column("1")
_GENERATION = select(CredentialGeneration.generation).where(_THE_ROW)
# The check is the only read a request of a remembered sensor makes to authenticate, so it runs
# on the driver (the core's DriverRead: outside the request's session unless that has begun). A
# single-event POST touches the database nowhere else (its rows go to the group-commit writer);
# for this one read, beginning the request's session cost it ~190 µs on SQLite, a SQLAlchemy
# Connection ~70 µs, the driver's cursor ~12 µs (make bench-breakdown). GET /api/v1/sensor's
# check (_self_reads) brings the last-seen time and the other plugins' columns, and the view
# reads nothing of its own; elsewhere those subqueries would cost every request for nothing.
_GENERATION_READ = DriverRead(_GENERATION)
_LAST_SEEN = (
    select(Sensor.last_seen_at)
    .where(Sensor.id == SENSOR_ID)
    .scalar_subquery()
    .label("last_seen_at")
)


def _self_reads(info_columns) -> tuple[DriverRead, DriverRead]:
    """GET /api/v1/sensor's answer in one statement either way, other plugins' columns last:
    a remembered lookup's check (the generation, the last-seen time) and, when no lookup was
    reused, the profile's read."""
    return (
        DriverRead(
            select(CredentialGeneration.generation, _LAST_SEEN, *info_columns).where(_THE_ROW)
        ),
        DriverRead(select(*PROFILE_COLUMNS, *info_columns).where(Sensor.id == SENSOR_ID)),
    )


_BUMP_GENERATION = (
    update(CredentialGeneration)
    .where(_THE_ROW)
    .values(generation=CredentialGeneration.generation + 1)
)
_TOKEN_LOOKUP = (
    select(
        SensorToken.id,
        SensorToken.sensor_id,
        SensorToken.token_hash,
        SensorToken.expires_at,
        SensorToken.revoked_at,
        SensorToken.last_used_at,
        Sensor.name,
        Sensor.disabled,
        Sensor.created_at,
        Sensor.meta.label("meta"),
        _GENERATION.scalar_subquery().label("generation"),
    )
    .join(Sensor, Sensor.id == SensorToken.sensor_id)
    .where(SensorToken.token_hash == bindparam("digest"))
)
_TOUCH_TOKEN = (
    update(SensorToken)
    .where(
        SensorToken.id == bindparam("key"),
        or_(SensorToken.last_used_at.is_(None), SensorToken.last_used_at <= bindparam("stale")),
    )
    .values(last_used_at=bindparam("touched_at"))
)
_TOUCH_SENSOR = (
    update(Sensor)
    .where(
        Sensor.id == bindparam("key"),
        or_(Sensor.last_seen_at.is_(None), Sensor.last_seen_at <= bindparam("stale")),
    )
    .values(last_seen_at=bindparam("touched_at"))
)


class CredentialChanges:
    """Bumps the credential generation in every flush of the app's sessions that changes a
    sensor or a token, in that flush's transaction: the change and the bump commit (or roll
    back) together, so no process can see one without the other.

    The app changes credentials through ORM objects only; its touches (``last_used_at``) are
    Core statements on the connection, which do not (and must not) bump it. New rows need no
    bump either: nothing remembered can be about them.
    """

    def __init__(self) -> None:
        self._watched: list[sessionmaker] = []

    def watch(self, factory: sessionmaker) -> None:
        """Bump for every session ``factory`` makes, until :meth:`close`."""
        event.listen(factory, "after_flush", self._on_flush)
        self._watched.append(factory)

    def close(self) -> None:
        while self._watched:
            event.remove(self._watched.pop(), "after_flush", self._on_flush)

    def _on_flush(self, session: Session, _flush_context) -> None:
        # In after_flush, dirty and deleted still hold what this flush wrote.
        if any(isinstance(row, _CREDENTIALS) for row in (*session.dirty, *session.deleted)):
            session.connection().execute(_BUMP_GENERATION)


_CREDENTIALS = (Sensor, SensorToken)


def _matches(expected: bytes | None, digest: bytes) -> bool:
    return expected is not None and hmac.compare_digest(expected, digest)


def _token_in_query(request) -> bool:
    # The raw query string, decoded leniently: an undecodable one must not hide a token.
    pairs = parse_qsl(
        request.environ.get("QUERY_STRING", ""), keep_blank_values=True, errors="replace"
    )
    # A bare key (``?shs_…``) carries a token as surely as a value does.
    return any(
        name.lower() in QUERY_TOKEN_NAMES or tokens.PREFIX in name or tokens.PREFIX in value
        for name, value in pairs
    )


def _publish(request, event) -> None:
    publish(request.registry, event)
