"""Liveness (``/healthz``) and readiness (``/readyz``).

``/healthz`` answers 200 while the process can serve at all; it touches nothing else, so an
orchestrator never restarts a healthy process because the database blinked.
``/readyz`` answers 503 as soon as the process starts draining (SIGTERM), and otherwise runs
every registered check concurrently with a timeout and answers 503 with each
failing check's reason, so a load balancer stops sending traffic until the backing services
are back. The core registers ``database``; plugins add theirs::

    config.add_health_check("queue", lambda request: None)  # raise (or return a str) to fail
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec
from sqlalchemy import text

from .admission import is_draining
from .errors import first_line, problem_response
from .openapi import JSON, Operation
from .settings import Setting, as_duration

if TYPE_CHECKING:
    from pyramid.config import Configurator
    from pyramid.request import Request
    from pyramid.response import Response

# A check passes by returning None; it fails by raising or by returning the reason.
HealthCheck = Callable[["Request"], "str | None"]
_REGISTRY_KEY = "sensorhub.health_checks"
_EXECUTOR_KEY = "sensorhub.health_executor"


def add_health_check(config: Configurator, name: str, check: HealthCheck) -> None:
    config.registry[_REGISTRY_KEY][name] = config.maybe_dotted(check)


def database_check(request: Request) -> None:
    # DEFERRED: a readiness probe must not queue behind writers for SQLite's write lock.
    engine = request.registry["dbengine"]
    with engine.connect().execution_options(sqlite_begin="DEFERRED") as connection:
        connection.execute(text("SELECT 1"))


class Alive(msgspec.Struct):
    status: str  # "ok"


class Ready(msgspec.Struct):
    status: str  # "ok"
    checks: dict[str, str]  # check name -> "ok"


def healthz(request: Request) -> dict[str, str]:
    return {"status": "ok"}


def readyz(request: Request) -> dict[str, object] | Response:
    if is_draining(request.registry):
        # Shutting down: a load balancer must stop sending before the listener closes.
        return problem_response(
            request,
            503,
            "not ready: the server is shutting down (draining)",
            errors=[{"path": "server", "message": "draining"}],
            headers={"Retry-After": "5"},
        )
    checks: dict[str, HealthCheck] = request.registry[_REGISTRY_KEY]
    timeout: float = request.registry.settings["sensorhub.health.timeout"]
    executor: concurrent.futures.Executor = request.registry[_EXECUTOR_KEY]
    futures = {name: executor.submit(check, request) for name, check in checks.items()}
    done, _ = concurrent.futures.wait(futures.values(), timeout=timeout)
    results: dict[str, str] = {}
    for name, future in futures.items():
        if future not in done:
            results[name] = f"timed out after {timeout:g}s"
        elif (error := future.exception()) is not None:
            results[name] = f"{type(error).__name__}: {first_line(error)}"
        else:
            results[name] = future.result() or "ok"
    failing = {name: reason for name, reason in results.items() if reason != "ok"}
    if failing:
        detail = "; ".join(f"{name}: {reason}" for name, reason in sorted(failing.items()))
        return problem_response(
            request,
            503,
            f"not ready: {detail}",
            errors=[{"path": name, "message": reason} for name, reason in sorted(failing.items())],
            headers={"Retry-After": "5"},
        )
    return {"status": "ok", "checks": results}


def includeme(config: Configurator) -> None:
    config.declare_settings(
        Setting(
            "sensorhub.health.timeout",
            as_duration,
            2.0,
            "how long /readyz waits for each check before calling it failed",
        )
    )
    config.registry[_REGISTRY_KEY] = {}
    config.registry[_EXECUTOR_KEY] = concurrent.futures.ThreadPoolExecutor(
        max_workers=4, thread_name_prefix="readyz"
    )
    config.add_directive("add_health_check", add_health_check)
    config.add_health_check("database", database_check)
    config.add_route("healthz", "/healthz")
    config.add_route("readyz", "/readyz")
    config.add_view(
        healthz,
        route_name="healthz",
        request_method=("GET", "HEAD"),
        renderer="json",
        openapi=Operation(
            "Liveness: the process can serve",
            tags=("health",),
            responses={200: ("alive", {JSON: Alive})},
        ),
    )
    config.add_view(
        readyz,
        route_name="readyz",
        request_method=("GET", "HEAD"),
        renderer="json",
        openapi=Operation(
            "Readiness: every backing service answers; 503 while draining or when one fails",
            tags=("health",),
            responses={200: ("ready, with each check's result", {JSON: Ready})},
        ),
    )
