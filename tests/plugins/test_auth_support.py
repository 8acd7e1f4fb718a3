"""Helpers shared by the auth plugin's test modules (this module holds no tests): admin
credentials, sensor creation, and recorders for database writes (on the suite's
``recording_statements``) and domain events."""

from __future__ import annotations

import contextlib
import sys
import types

from tests.conftest import recording_statements

ADMIN_TOKEN = "admin-token-for-tests-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
AUTH_SETTINGS = {"sensorhub.auth.admin_token": ADMIN_TOKEN}


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def create_sensor(testapp, name="greenhouse-1", **fields) -> dict:
    return testapp.post_json(
        "/api/v1/sensors", {"name": name, **fields}, headers=ADMIN, status=201
    ).json


def recording_writes(engine):
    """Every INSERT/UPDATE/DELETE the engine executes inside the block."""
    return recording_statements(engine, frozenset({"INSERT", "UPDATE", "DELETE"}))


@contextlib.contextmanager
def recording_events(registry, *event_types):
    seen: list = []

    def handler(published):
        seen.append(published)

    for event_type in event_types:
        registry.registerHandler(handler, (event_type,))
    try:
        yield seen
    finally:
        for event_type in event_types:
            registry.unregisterHandler(handler, (event_type,))


@contextlib.contextmanager
def plugin_module(dotted: str, includeme):
    """A throwaway plugin importable as ``dotted`` (e.g. ``authtests.probe``) while the block
    runs, to show what another plugin sees without writing a package for it."""
    parent_name, _, child_name = dotted.rpartition(".")
    parent, child = types.ModuleType(parent_name), types.ModuleType(dotted)
    child.includeme = includeme
    setattr(parent, child_name, child)
    sys.modules[parent_name], sys.modules[dotted] = parent, child
    try:
        yield dotted
    finally:
        del sys.modules[dotted], sys.modules[parent_name]
