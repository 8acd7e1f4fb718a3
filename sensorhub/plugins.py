"""The plugin loader: ``sensorhub.plugins`` (env ``SENSORHUB_PLUGINS``) names what to include.

A name is either a short name registered in the ``sensorhub.plugins`` entry-point group (the
built-ins, and any installed third-party package that adds one) or a dotted module name. Each
plugin is a module with ``includeme(config)``; plugins are included *after* the core's
``config.commit()``, so every core contract (settings table, DB session, request ID, events,
health checks) exists when they run, and a plugin's registration overrides the core's instead
of conflicting with it. They are included in the order given.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from .settings import Setting, StartupError, as_list

if TYPE_CHECKING:
    from pyramid.config import Configurator

ENTRY_POINT_GROUP = "sensorhub.plugins"


class PluginError(StartupError):
    """A plugin named in the settings cannot be found or imported."""


@dataclass(frozen=True)
class LoadedPlugin:
    name: str  # as written in the settings
    module: str


def available_plugins() -> dict[str, str]:
    """Short name -> module, for every installed plugin."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def resolve_plugin(name: str) -> str:
    available = available_plugins()
    if name in available:
        return available[name]
    if "." not in name:
        listing = ", ".join(sorted(available)) or "(none installed)"
        raise PluginError(
            f"unknown plugin {name!r} in sensorhub.plugins (env SENSORHUB_PLUGINS); "
            f"available plugins: {listing}; or give a dotted module name"
        )
    try:
        module = importlib.import_module(name)
    except ImportError as error:
        raise PluginError(
            f"plugin {name!r} in sensorhub.plugins cannot be imported: {error}"
        ) from None
    if not hasattr(module, "includeme"):
        raise PluginError(f"plugin {name!r} has no includeme(config) function")
    return name


def include_plugins(config: Configurator) -> None:
    names = config.registry.settings["sensorhub.plugins"]
    loaded: list[LoadedPlugin] = []
    for name in dict.fromkeys(names):  # keep order, drop repeats
        module = resolve_plugin(name)
        config.include(module)
        loaded.append(LoadedPlugin(name, module))
    config.registry["sensorhub.plugins"] = loaded


def includeme(config: Configurator) -> None:
    config.declare_settings(
        Setting(
            "sensorhub.plugins",
            as_list,
            [],
            "plugins to load, in order: short names from the sensorhub.plugins entry-point group "
            "(built in: auth, ingest, logging, metrics) or dotted module names, space- or "
            "comma-separated",
        )
    )
    config.registry["sensorhub.plugins"] = []
