"""One ``request_finished`` line per request, with what happened in it.

The tween sits just under the core's request-ID tween: inside the request's own contextvars
context (so the line carries ``request_id`` and whatever was bound), and over the exception view,
pyramid_tm and every plugin tween (so it sees the final status of every response, errors
included, and times the commit too).

Facts that other plugins report through domain events are collected on the request by the
subscribers below (``SensorAuthenticated``, ``AuthenticationFailed``, ``RequestRateLimited``,
``EventsIngested``). ``EventsIngested`` is published after the commit, possibly by a group-commit
thread: it carries the request, so its facts land on that request's line whichever thread
publishes it. The summary never asks the security policy for the identity itself: after the
transaction has ended that could mean a database lookup, or a second authentication.

Levels: 5xx ``error`` (with ``error``: the exception type; the traceback was logged once, by
the core's ``unexpected_error`` view), 401/403/429 ``warning``, other 4xx ``info``, both with
``reason`` (the problem document's ``detail``); the rest ``info``. Successful responses of the
routes in ``sensorhub.logging.quiet_routes`` are dropped, or kept at
``sensorhub.logging.quiet_sample_rate`` (then marked ``sampled``). An attempt that pyramid_retry
will repeat logs ``request_retried`` instead; the attempt that ends the request logs the summary.
"""

from __future__ import annotations

import logging
import random
import time

import orjson
import structlog
from pyramid.tweens import EXCVIEW

from sensorhub.errors import PROBLEM_JSON
from sensorhub.events import (
    AdminCommandFinished,
    AuthenticationFailed,
    EventsIngested,
    RequestRateLimited,
    SensorAuthenticated,
)
from sensorhub.requests import matched_route_name, raw_path, will_retry

SUMMARY_LOGGER = "sensorhub.request"
log = structlog.get_logger(SUMMARY_LOGGER)
_FACTS = "_sensorhub_log_facts"
_MAX_REASON = 300
_WARNING_STATUSES = frozenset({401, 403, 429})


def facts_of(request) -> dict:
    """The facts subscribers gathered for ``request``'s summary line (per attempt)."""
    facts = request.__dict__.get(_FACTS)
    if facts is None:
        facts = request.__dict__.setdefault(_FACTS, {})
    return facts


def request_summary_tween_factory(handler, registry):
    settings = registry.settings
    quiet_routes = frozenset(settings["sensorhub.logging.quiet_routes"])
    sample_rate = settings["sensorhub.logging.quiet_sample_rate"]
    trusted_proxy = settings.get("sensorhub.trusted_proxy", "")
    # Bound once: the structlog side of the pipeline never changes (pipeline.py), and the
    # stdlib logger below it is the same object whatever the configuration.
    summary_log = structlog.get_logger(SUMMARY_LOGGER).bind()
    enabled_for = logging.getLogger(SUMMARY_LOGGER).isEnabledFor

    def request_summary_tween(request):
        started = time.perf_counter()
        try:
            response = handler(request)
        except Exception as error:
            if will_retry(request, error):
                _log_retry(request, error)
            else:  # escapes to the WSGI server, which answers 500
                _log_summary(request, None, started, error)
            raise
        exception = getattr(request, "exception", None)  # what an exception view answered
        if will_retry(request):
            _log_retry(request, exception)  # pyramid_retry discards this response
            return response
        if response.status_code < 400 and matched_route_name(request) in quiet_routes:
            if not sample_rate or random.random() >= sample_rate:  # noqa: S311 (sampling)
                return response
            facts_of(request)["sampled"] = sample_rate
        _log_summary(request, response, started, exception)
        return response

    def _log_summary(request, response, started, error) -> None:
        status = response.status_code if response is not None else 500
        level = (
            logging.ERROR
            if status >= 500
            else logging.WARNING
            if status in _WARNING_STATUSES
            else logging.INFO
        )
        if not enabled_for(level):  # filtered out: don't gather what nobody will read
            return
        line = {
            "method": request.method,
            "route": matched_route_name(request),
            "path": raw_path(request),  # request.path raises on a path that is not UTF-8
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            "request_id": request.request_id,
            "sensor_id": _sensor_id(request),
            "bytes_in": request.content_length or 0,
            "bytes_out": response.content_length if response is not None else None,
            "client_addr": client_addr(request.environ, trusted_proxy),
        }
        line.update(facts_of(request))
        if status >= 400 and response is not None:
            reason = _problem_detail(response)
            if reason:
                line["reason"] = reason
        if status >= 500 and error is not None:
            line["error"] = type(error).__name__
        summary_log.log(level, "request_finished", **line)

    return request_summary_tween


def _log_retry(request, error) -> None:
    log.info(
        "request_retried",
        method=request.method,
        path=request.path,
        attempt=request.environ.get("retry.attempt"),
        error=type(error).__name__,
    )


def _sensor_id(request) -> str | None:
    sensor_id = facts_of(request).get("sensor_id")
    if sensor_id is None:  # the auth plugin also binds it into the request's contextvars
        sensor_id = structlog.contextvars.get_contextvars().get("sensor_id")
    return sensor_id


def client_addr(environ, trusted_proxy: str) -> str | None:
    """The client's address; behind ``sensorhub.trusted_proxy``, the address that proxy saw.

    Waitress, given the same setting, already rewrites ``REMOTE_ADDR``; this covers other WSGI
    servers. Only the right-most ``X-Forwarded-For`` entry (the one the proxy added) is used.
    """
    addr = environ.get("REMOTE_ADDR")
    if trusted_proxy and (trusted_proxy == "*" or addr == trusted_proxy):
        forwarded = environ.get("HTTP_X_FORWARDED_FOR", "").rsplit(",", 1)[-1].strip()
        if forwarded:
            return forwarded[:64]
    return addr


def _problem_detail(response) -> str | None:
    if response.content_type != PROBLEM_JSON or not isinstance(response.app_iter, list | tuple):
        return None
    try:
        detail = orjson.loads(response.body).get("detail")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return str(detail)[:_MAX_REASON] if detail else None


# --- subscribers: facts from domain events


def _on_sensor_authenticated(event: SensorAuthenticated) -> None:
    facts_of(event.request)["sensor_id"] = event.sensor_id


def _on_authentication_failed(event: AuthenticationFailed) -> None:
    facts_of(event.request)["auth_failure"] = event.reason


def _on_rate_limited(event: RequestRateLimited) -> None:
    facts_of(event.request)["rate_limited"] = event.scope


def _on_events_ingested(event: EventsIngested) -> None:
    if event.request is None:
        return
    facts = facts_of(event.request)
    facts.update(
        events_batch=event.batch_size,
        events_accepted=event.accepted,
        events_duplicates=event.duplicates,
        events_rejected=event.rejected,
    )
    if event.rejected_by_reason:
        facts["events_rejected_by_reason"] = dict(event.rejected_by_reason)
    if event.sensor_id and "sensor_id" not in facts:
        facts["sensor_id"] = event.sensor_id


def _on_admin_command_finished(event: AdminCommandFinished) -> None:
    line = {
        "command": event.command,
        "succeeded": event.succeeded,
        "rows": event.rows,
        "duration_ms": round(event.duration_seconds * 1000, 3),
    }
    admin_log = structlog.get_logger("sensorhub.admin")
    if event.succeeded:
        admin_log.info("admin_command_finished", **line)
    else:
        admin_log.error("admin_command_finished", **line)


def includeme(config) -> None:
    config.add_event_subscriber(_on_sensor_authenticated, SensorAuthenticated)
    config.add_event_subscriber(_on_authentication_failed, AuthenticationFailed)
    config.add_event_subscriber(_on_rate_limited, RequestRateLimited)
    config.add_event_subscriber(_on_events_ingested, EventsIngested)
    config.add_event_subscriber(_on_admin_command_finished, AdminCommandFinished)
    # Under the request-ID tween: inside the request's context. Over pyramid_tm (and so the
    # exception view): sees final statuses and times the commit. Both bounds are needed;
    # `under` alone lets Pyramid sort it below the exception view once other tweens exist.
    config.add_tween(
        "plugins.logging.summary.request_summary_tween_factory",
        under="sensorhub.request_id.request_id_tween_factory",
        over=("pyramid_tm.tm_tween_factory", EXCVIEW),
    )
