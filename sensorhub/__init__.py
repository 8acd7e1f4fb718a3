"""SensorHub: a Pyramid service that collects events from sensors.

The core knows no plugin. It defines the contracts (settings, request ID, errors, storage,
health, domain events, identity) and plugins named in ``sensorhub.plugins`` implement features.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import structlog
from pyramid.config import Configurator

from .__version__ import __version__
from .identity import DenyAllSecurityPolicy
from .plugins import available_plugins, include_plugins
from .settings import StartupError, settings_table

if TYPE_CHECKING:
    from pyramid.router import Router

__all__ = ["__version__", "main", "make_app"]


def main(global_config: Mapping[str, str], **settings: str) -> Router:
    """The ``paste.app_factory`` (``use = egg:sensorhub``): pserve, bootstrap and WSGI servers.

    A configuration mistake stops start-up with one line that says what to fix.
    """
    process = global_config.get("sensorhub.process", "server")  # "admin" from sensorhub-admin
    try:
        return make_app(settings, environ=os.environ, process=process)
    except StartupError as error:
        raise SystemExit(f"sensorhub: cannot start: {error}") from None


def make_app(
    settings: Mapping[str, Any], environ: Mapping[str, str] | None = None, process: str = "server"
) -> Router:
    """Build the WSGI app from raw ini ``settings`` and an ``environ`` (tests inject one).

    ``registry["sensorhub.process"]`` tells plugins what kind of process loads them: "server"
    (pserve, a WSGI server) or "admin" (a one-off ``sensorhub-admin`` command, whose stdout is
    the command's own output, so logs belong on stderr).
    """
    config = Configurator(settings=dict(settings))
    config.registry["sensorhub.environ"] = dict(environ if environ is not None else os.environ)
    config.registry["sensorhub.process"] = process
    config.include(".settings")  # first: every include below declares its settings in the table
    config.include(".lifecycle")  # the add_closer directive: plugins' machinery ends with the app
    config.include(".renderers")  # orjson-backed "json" renderer for every view
    config.include(".server")  # host/port/threads, read by the server runner
    config.include(".request_id")  # outermost tween: every response and log line has the ID
    config.include(".admission")  # in-flight limit, load shedding and drain (503s, not queues)
    config.include(".errors")  # problem+json bodies for every error, with the request ID
    config.include(".db")  # engine, request.dbsession, pyramid_tm + pyramid_retry
    config.include(".events")  # domain events: publish() and the add_event_subscriber directive
    config.include(".metrics")  # a no-op recorder of plugins' figures until a metrics plugin
    config.include(".health")  # /healthz, /readyz and the add_health_check directive
    config.include(".sensor_info")  # fields plugins add to a sensor's self-description
    config.include(".openapi")  # the openapi= view option, /api/v1/openapi.json and /docs
    config.include(".api")  # GET /api/v1/ and the add_api_capability directive
    config.include(".migrations")  # the add_migrations directive for plugins with tables
    config.include(".plugins")  # the sensorhub.plugins setting
    config.set_security_policy(DenyAllSecurityPolicy())  # fail closed until an auth plugin
    # Commit the core before plugins: its contracts exist when they run, and a plugin's
    # registration overrides the core's instead of conflicting with it.
    config.commit()
    include_plugins(config)
    _warn_about_undeclared_settings(config)
    app = config.make_wsgi_app()
    _bake_request_class(app)
    return app


def _bake_request_class(router: Router) -> None:
    """Give the router a request class that already has the ``add_request_method`` methods and
    properties, instead of applying them to every request.

    Pyramid applies properties (``request.dbsession``, ``tm``, ``request_id``) by creating a new
    subclass of the request's class on every request (``pyramid.util.InstancePropertyHelper``):
    a ``type()`` call, and a flush of the interpreter's attribute caches that slows the rest of
    the request as well. The set is complete once the app is configured, so one subclass built
    here behaves the same. Only the router's own requests change: the registry keeps the
    extensions, so ``pyramid.scripting`` and ``apply_request_extensions`` (tests, scripts)
    work as documented; a subrequest would have to be given them the same way (none is used).

    pyramid_retry copies each body to make it re-readable: within the server's body limit the
    copy stays in memory instead of going to a temporary file per request.
    """
    extensions = router.request_extensions
    base = router.request_factory
    attributes = {
        **(extensions.methods if extensions else {}),
        **(dict(extensions.descriptors) if extensions else {}),
        "__module__": base.__module__,
        "request_body_tempfile_limit": router.registry.settings["sensorhub.max_request_body_size"],
    }
    router.request_factory = type(base.__name__, (base,), attributes)
    router.request_extensions = None


def _warn_about_undeclared_settings(config: Configurator) -> None:
    """Catch typos in the ini (``sensorhub.ingest.parital``) without nagging about the keys of
    an installed plugin that this environment chose not to load."""
    log = structlog.get_logger(__name__)
    loaded = {plugin.name for plugin in config.registry["sensorhub.plugins"]}
    resting = set(available_plugins()) - loaded
    for key, close in settings_table(config.registry).undeclared_keys():
        if key.split(".")[1] not in resting:
            log.warning("unknown_setting", key=key, did_you_mean=close)
