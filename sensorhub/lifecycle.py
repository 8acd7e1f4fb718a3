"""Closing an app: what a plugin starts for an app, it registers a closer for.

A plugin's machinery (a writer thread, SQLAlchemy listeners on the app's engine or session
factories) belongs to the app whose ``includeme`` made it, never to the module that defines it,
so two apps in one process (tests, a script beside a server) never share or leak it. Whoever
built the app closes it when done with it: the server runners after their last request, the
admin commands after their command, the test fixtures after their test. Closers run once, newest
first (a plugin included later may depend on one included earlier), and one that fails is
logged and does not stop the others.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from pyramid.config import Configurator
    from pyramid.registry import Registry

CLOSERS = "sensorhub.closers"

log = structlog.get_logger(__name__)


def add_closer(config: Configurator, closer: Callable[[], object]) -> None:
    """``config.add_closer(writer.close)``: call ``closer`` when the app is closed."""
    config.registry[CLOSERS].append(closer)


def close_app(registry: Registry) -> None:
    """Run the app's closers, newest first; idempotent (``app.registry`` of a built app)."""
    closers = registry.get(CLOSERS, [])
    while closers:
        closer = closers.pop()
        try:
            closer()
        except Exception:
            log.exception("app_closer_failed", closer=getattr(closer, "__qualname__", closer))


def includeme(config: Configurator) -> None:
    config.registry[CLOSERS] = []
    config.add_directive("add_closer", add_closer)
