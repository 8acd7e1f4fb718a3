"""``GET /api/v1/``: what this SensorHub is, its version, its plugins and their capabilities.

Plugins announce what they add with ``config.add_api_capability("ingest", description=…,
url=…, **facts)``; clients discover features instead of guessing from the version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from .__version__ import __version__
from .openapi import JSON, Operation

if TYPE_CHECKING:
    from pyramid.config import Configurator
    from pyramid.request import Request

API_PREFIX = "/api/v1"
_REGISTRY_KEY = "sensorhub.api_capabilities"


def add_api_capability(
    config: Configurator, name: str, description: str, url: str = "", **facts: object
) -> None:
    capabilities = config.registry[_REGISTRY_KEY]
    if name in capabilities:
        raise ValueError(f"API capability {name!r} is registered twice")
    capabilities[name] = {"description": description, "url": url, **facts}


class ApiRoot(msgspec.Struct):
    name: str
    version: str
    plugins: list[str]
    capabilities: dict[str, dict[str, Any]]  # plugin's capability -> description, url, facts


def api_root(request: Request) -> dict[str, object]:
    return {
        "name": "sensorhub",
        "version": __version__,
        "plugins": [plugin.name for plugin in request.registry["sensorhub.plugins"]],
        "capabilities": request.registry[_REGISTRY_KEY],
    }


def includeme(config: Configurator) -> None:
    config.registry[_REGISTRY_KEY] = {}
    config.add_directive("add_api_capability", add_api_capability)
    config.add_route("api_root", f"{API_PREFIX}/")
    config.add_view(
        api_root,
        route_name="api_root",
        request_method=("GET", "HEAD"),
        renderer="json",
        openapi=Operation(
            "What this SensorHub is: version, plugins, capabilities and limits",
            tags=("meta",),
            responses={200: ("the service's description", {JSON: ApiRoot})},
        ),
    )
