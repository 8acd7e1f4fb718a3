"""What ``GET /api/v1/sensor`` says about a sensor, contributed by whichever plugins know.

The auth plugin owns the endpoint; other plugins (ingestion's counters, say) add fields without
being imported by it. A plugin contributes columns, read by the sensor's id, and what its fields
are from their values::

    count = select(stats.c.event_count).where(stats.c.sensor_id == SENSOR_ID).scalar_subquery()
    config.add_sensor_info([count], lambda count: {"eventCount": count or 0})

Columns, not functions, so that the endpoint folds every plugin's into a statement it runs
anyway (:func:`sensor_info_columns`, then :func:`sensor_info_fields` on their values): the auth
plugin reads them with a remembered sensor's credential check, or with the sensor's profile,
and under load a read fewer is worth more than its SQL (what that bought: docs/benchmarks.md).
A column must select without a FROM of its own, e.g. a scalar subquery by ``SENSOR_ID``; it is
NULL when the plugin has no row for the sensor, so say in the fields function what NULL means.
Fields are JSON-ready, with camelCase keys.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import BindParameter, String, bindparam

if TYPE_CHECKING:
    from pyramid.config import Configurator
    from pyramid.registry import Registry
    from sqlalchemy.sql import ColumnElement

SENSOR_ID: BindParameter[str] = bindparam("sensor_id", type_=String)  # whose columns are read

# the contributed columns' values, in their order -> fields, JSON-ready, with camelCase keys
Fields = Callable[..., dict[str, Any]]
_REGISTRY_KEY = "sensorhub.sensor_info_contributors"


class _Contribution(NamedTuple):
    columns: tuple[ColumnElement[Any], ...]
    fields: Fields


def add_sensor_info(
    config: Configurator, columns: Sequence[ColumnElement[Any]], fields: Fields
) -> None:
    if not columns:
        raise ValueError("add_sensor_info: give at least one column (read by SENSOR_ID)")
    contribution = _Contribution(tuple(columns), config.maybe_dotted(fields))
    config.registry[_REGISTRY_KEY].append(contribution)


def sensor_info_columns(registry: Registry) -> tuple[ColumnElement[Any], ...]:
    """Every contributor's columns, in order: select them by ``SENSOR_ID`` (as
    ``sensor_id=…``), then give their values to :func:`sensor_info_fields`."""
    return tuple(column for each in registry.get(_REGISTRY_KEY, ()) for column in each.columns)


def sensor_info_fields(registry: Registry, values: Sequence[Any]) -> dict[str, Any]:
    """Every contributor's fields from the values of :func:`sensor_info_columns`, in order."""
    info: dict[str, Any] = {}
    start = 0
    for contribution in registry.get(_REGISTRY_KEY, ()):
        end = start + len(contribution.columns)
        info.update(contribution.fields(*values[start:end]))
        start = end
    return info


def includeme(config: Configurator) -> None:
    config.registry[_REGISTRY_KEY] = []
    config.add_directive("add_sensor_info", add_sensor_info)
