"""The dashboard's declared settings (``sensorhub.dashboard.*``, env ``SENSORHUB_DASHBOARD_*``)."""

from __future__ import annotations

from sensorhub.settings import Setting, as_bool, as_duration, as_int

MIN_SESSION_SECRET_LENGTH = 32


def as_session_secret(raw: str) -> str:
    value = raw.strip()
    if len(value) < MIN_SESSION_SECRET_LENGTH:
        raise ValueError(
            f"at least {MIN_SESSION_SECRET_LENGTH} characters (make one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )
    return value


SETTINGS = (
    Setting(
        "sensorhub.dashboard.session_secret",
        as_session_secret,
        help="signs the dashboard's session cookie; the same on every server process; "
        "changing it signs everybody out (required: no default, so production never runs "
        "on a secret from a file in the repository)",
        secret=True,
    ),
    Setting(
        "sensorhub.dashboard.secure_cookie",
        as_bool,
        True,
        "send the session cookie over HTTPS only (false only for http://127.0.0.1 in development)",
    ),
    Setting(
        "sensorhub.dashboard.session_idle_timeout",
        as_duration,
        1800.0,
        "a signed-in browser that makes no request for this long must sign in again",
    ),
    Setting(
        "sensorhub.dashboard.session_lifetime",
        as_duration,
        43200.0,
        "a sign-in lasts at most this long, however busy the browser",
    ),
    Setting(
        "sensorhub.dashboard.stale_after",
        as_duration,
        900.0,
        "a sensor not seen for this long is highlighted as stale",
    ),
    Setting(
        "sensorhub.dashboard.page_size",
        as_int(10, 1000),
        100,
        "sensors per page of the fleet overview",
    ),
    Setting(
        "sensorhub.dashboard.count_cap",
        as_int(100, 10_000_000),
        10_000,
        "the most events per sensor the overview counts for 'last hour/day' (shown as "
        "'10000+' beyond): bounds the page's cost whatever a sensor sends",
    ),
    Setting(
        "sensorhub.dashboard.chart_events",
        as_int(10, 10_000),
        500,
        "a sensor's page charts its values per type among this many most recent events",
    ),
    Setting(
        "sensorhub.dashboard.latest_events",
        as_int(1, 1000),
        20,
        "how many of a sensor's latest events its page lists",
    ),
)
