"""The auth plugin: sensor identities and credentials, and the admin side of the fleet.

- ``Authorization: Bearer`` security policy (``security.py``): sensors with ``shs_`` tokens
  (``tokens.py``: format, hashing and why), admins with ``sensorhub.auth.admin_token``, devices
  enrolling with ``sensorhub.auth.provisioning_key``;
- the sensor registry API (``views.py``) and ``sensorhub-admin sensor …`` (``commands.py``),
  both through ``service.py``;
- the brute-force guard (``guard.py``);
- the ``sensor_tokens`` table: Alembic branch ``auth``
  (``plugins/auth/migrations/auth_0001_credentials.py``).

The admin token has an empty default: the plugin then loads and sensors work, but every admin
request is refused (401) and the capability at ``GET /api/v1/`` says ``adminApi: "disabled"``.
Production must set ``SENSORHUB_ADMIN_TOKEN``; a server process logs a warning when it is unset.
(Not a start-up error: a fleet that only ingests, with sensors enrolled by the provisioning key
or ``sensorhub-admin sensor create``, needs no admin API.)
"""

from __future__ import annotations

import structlog

from sensorhub.api import API_PREFIX
from sensorhub.settings import Setting, as_duration, as_int

from . import tokens
from .guard import FailureGuard, SensorRateLimiter
from .security import BearerTokenSecurityPolicy

MIN_SECRET_LENGTH = 16
log = structlog.get_logger(__name__)


def as_secret(raw: str) -> str:
    value = raw.strip()
    if value and len(value) < MIN_SECRET_LENGTH:
        raise ValueError(
            f"at least {MIN_SECRET_LENGTH} characters (use e.g. "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`), "
            "or empty to turn it off"
        )
    if value and (not value.isascii() or not value.isprintable() or " " in value):
        raise ValueError("printable ASCII without spaces")
    return value


SETTINGS = (
    Setting(
        "sensorhub.auth.admin_token",
        as_secret,
        "",
        "bearer token for the admin API (required in production; empty: admin API off)",
        secret=True,
        env="SENSORHUB_ADMIN_TOKEN",
    ),
    Setting(
        "sensorhub.auth.provisioning_key",
        as_secret,
        "",
        "fleet key with which devices enrol themselves at POST /api/v1/sensors "
        "(empty: self-enrolment off)",
        secret=True,
        env="SENSORHUB_AUTH_PROVISIONING_KEY",
    ),
    Setting(
        "sensorhub.auth.failure_threshold",
        as_int(0, 100_000),
        20,
        "refused credentials from one client address within failure_window before it "
        "gets 429 (0: guard off)",
    ),
    Setting(
        "sensorhub.auth.failure_window",
        as_duration,
        60.0,
        "the brute-force guard's sliding window, e.g. 60s or 5m",
    ),
    Setting(
        "sensorhub.auth.sensor_rate",
        as_int(0, 1_000_000),
        50,
        "requests per second one sensor may make, per server process, before it gets 429 "
        "with Retry-After (0: no limit)",
    ),
    Setting(
        "sensorhub.auth.sensor_burst",
        as_int(1, 1_000_000),
        500,
        "requests a sensor may make at once above sensor_rate (the token bucket's size)",
    ),
    Setting(
        "sensorhub.auth.touch_interval",
        as_duration,
        60.0,
        "how stale a token's last_used_at (and its sensor's last_seen_at) may get before "
        "a request refreshes it: bounds the writes authentication causes",
    ),
    Setting(
        "sensorhub.auth.token_cache_ttl",
        as_duration,
        5.0,
        "how long a process may reuse a sensor token's successful lookup; a reuse is "
        "checked against the credential generation on every request, so a token revoked or "
        "a sensor disabled by any process or node is refused at once, and this bounds only "
        "changes made behind SensorHub's back, e.g. plain SQL (0: look up on every request)",
    ),
)


def includeme(config) -> None:
    config.declare_settings(*SETTINGS)
    settings = config.registry.settings
    guard = FailureGuard(
        settings["sensorhub.auth.failure_threshold"], settings["sensorhub.auth.failure_window"]
    )
    policy = BearerTokenSecurityPolicy(
        settings["sensorhub.auth.admin_token"],
        settings["sensorhub.auth.provisioning_key"],
        guard,
        settings["sensorhub.auth.touch_interval"],
        settings["sensorhub.auth.token_cache_ttl"],
        SensorRateLimiter(
            settings["sensorhub.auth.sensor_rate"], settings["sensorhub.auth.sensor_burst"]
        ),
    )
    config.registry["sensorhub.auth.policy"] = policy  # views; test hook: the guard's clock
    changes = policy.credential_changes
    changes.watch(config.registry["dbsession_factory"])
    changes.watch(config.registry["dbsession_factory.reader"])
    config.add_closer(changes.close)
    config.set_security_policy(policy)
    # After every plugin's includeme: GET /api/v1/sensor reads their sensor_info columns too.
    config.action(None, lambda: policy.prepare_self_reads(config.registry))
    config.include(".views")
    config.include(".models")  # its table's migrations
    config.add_api_capability(
        "auth",
        description="Bearer tokens for sensors (shs_…, never in a URL), sensor registry and "
        "self-description. The admin API is refused while no admin token is set.",
        url=f"{API_PREFIX}/sensor",
        scheme="Bearer",
        tokenPrefix=tokens.PREFIX,
        adminApi="enabled" if policy.admin_enabled else "disabled",
        selfEnrolment=policy.provisioning_enabled,
    )
    if not policy.admin_enabled and config.registry.get("sensorhub.process") == "server":
        log.warning(
            "admin_token_unset",
            setting="sensorhub.auth.admin_token",
            env="SENSORHUB_ADMIN_TOKEN",
            effect="admin API requests are refused",
        )
