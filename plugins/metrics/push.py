"""Pushgateway for one-off jobs: each ``sensorhub-admin`` command pushes how it went.

A short-lived process is gone before Prometheus could scrape it, so when
``sensorhub.metrics.pushgateway_url`` (env ``SENSORHUB_PUSHGATEWAY_URL``) is set the command's
``AdminCommandFinished`` is pushed under ``job="sensorhub_admin", command="<name>"``:

- ``sensorhub_admin_command_duration_seconds``
- ``sensorhub_admin_command_succeeded`` (1 or 0)
- ``sensorhub_admin_command_rows`` (rows changed, when the command reports them)
- ``sensorhub_admin_command_last_run_timestamp_seconds``

The push replaces the command's previous group (HTTP PUT). Unset: nothing happens. A
Pushgateway that is down costs one warning in the log, never the command's own result.
"""

from __future__ import annotations

import time

import structlog
from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

from sensorhub.events import AdminCommandFinished

JOB = "sensorhub_admin"
log = structlog.get_logger(__name__)


def admin_metrics(event: AdminCommandFinished) -> CollectorRegistry:
    registry = CollectorRegistry()
    Gauge(
        "sensorhub_admin_command_duration_seconds",
        "How long the admin command ran",
        registry=registry,
    ).set(event.duration_seconds)
    Gauge(
        "sensorhub_admin_command_succeeded",
        "1 if the admin command succeeded, else 0",
        registry=registry,
    ).set(1 if event.succeeded else 0)
    Gauge(
        "sensorhub_admin_command_last_run_timestamp_seconds",
        "When the admin command ended (Unix time)",
        registry=registry,
    ).set(time.time())
    if event.rows is not None:
        Gauge(
            "sensorhub_admin_command_rows", "Rows the admin command changed", registry=registry
        ).set(event.rows)
    return registry


def pusher(url: str, timeout: float):
    def on_admin_command_finished(event: AdminCommandFinished) -> None:
        try:
            push_to_gateway(
                url,
                job=JOB,
                registry=admin_metrics(event),
                grouping_key={"command": event.command},
                timeout=timeout,
            )
        except Exception as error:  # the command's result matters more than its metrics
            log.warning(
                "pushgateway_push_failed",
                command=event.command,
                error=f"{type(error).__name__}: {error}",
            )

    return on_admin_command_finished


def includeme(config) -> None:
    settings = config.registry.settings
    url = settings["sensorhub.metrics.pushgateway_url"]
    if url:
        config.add_event_subscriber(
            pusher(url, settings["sensorhub.metrics.pushgateway_timeout"]), AdminCommandFinished
        )
