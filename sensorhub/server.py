"""Serving: port binding from the settings table (twelve-factor VII).

``[server:main] use = egg:sensorhub`` runs waitress on ``sensorhub.host``/``sensorhub.port``
(env ``SENSORHUB_HOST``/``SENSORHUB_PORT``), so several instances run side by side without
editing an ini. Other keys of the ``[server:main]`` section pass through to waitress.
"""

from __future__ import annotations

import structlog

from .settings import Setting, as_int, as_str

SETTINGS = (
    Setting("sensorhub.host", as_str, "127.0.0.1",
            "address to listen on (0.0.0.0 or [::] to accept other hosts)"),
    Setting("sensorhub.port", as_int(0, 65535), 6543, "TCP port to listen on"),
    Setting("sensorhub.threads", as_int(1, 256), 8, "waitress worker threads"),
    Setting("sensorhub.trusted_proxy", as_str, "",
            "address of a reverse proxy whose X-Forwarded-For is believed (empty: none)"),
)

log = structlog.get_logger(__name__)


def serve(app, global_conf, **server_options):
    """A ``paste.server_runner``: waitress, configured from the app's resolved settings."""
    import waitress

    settings = app.registry.settings
    options = {"host": settings["sensorhub.host"], "port": settings["sensorhub.port"],
               "threads": settings["sensorhub.threads"], "ident": "sensorhub"}
    if settings["sensorhub.trusted_proxy"]:
        options.update(trusted_proxy=settings["sensorhub.trusted_proxy"],
                       trusted_proxy_headers="x-forwarded-for x-forwarded-proto",
                       clear_untrusted_proxy_headers=True)
    options.update(server_options)
    server = waitress.create_server(app, **options)
    # Shared so plugins can observe the thread pool (busy threads, queued requests).
    app.registry["sensorhub.server.task_dispatcher"] = server.task_dispatcher
    log.info("server_starting", host=options["host"], port=options["port"],
             threads=options["threads"])
    server.run()


def includeme(config) -> None:
    config.declare_settings(*SETTINGS)
