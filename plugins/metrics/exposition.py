"""``GET /metrics``, or a separate loopback port, in the format the scraper asks for.

Prometheus sends ``Accept: application/openmetrics-text; ...`` and gets OpenMetrics; anything
else gets the classic text format (prometheus-client's ``choose_encoder`` decides).

Protection, chosen by operators: ``sensorhub.metrics.token`` requires ``Authorization: Bearer
<token>`` (Prometheus: ``authorization: {credentials_file: ...}``); ``sensorhub.metrics.port``
moves the metrics to their own port on ``sensorhub.metrics.host`` (loopback by default) and
removes them from the main port.

Multi-process mode: each scrape builds a fresh registry holding only a ``MultiProcessCollector``
(app metrics are never registered into it: that would serve them twice, Kinto #3546). A worker's
file can vanish while it is being read (worker churn, Kinto #3635): the scrape is retried, and
answered 503 with ``Retry-After`` if it keeps happening.
"""

from __future__ import annotations

import hmac

import structlog
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from pyramid.response import Response

from sensorhub.errors import problem_response
from sensorhub.openapi import Operation

from .metrics import metrics_of

ROUTE_NAME = "metrics"
SERVER_KEY = "sensorhub.metrics.http_server"
_ATTEMPTS = 3

log = structlog.get_logger(__name__)


class MultiProcessRegistry:
    """What a scrape serves in multi-process mode: a new registry per collection."""

    def __init__(self, directory: str):
        self.directory = directory

    def collect(self):
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.directory)
        return registry.collect()


def exposition(source, accept: str) -> tuple[bytes, str]:
    encoder, content_type = choose_encoder(accept)
    for attempt in range(_ATTEMPTS):
        try:
            return encoder(source), content_type
        except FileNotFoundError:
            if attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def metrics_view_factory(source, token: str):
    expected = token.encode("utf-8")

    def metrics_view(request):
        if expected and not _authorized(request, expected):
            return problem_response(
                request,
                401,
                "the metrics need 'Authorization: Bearer <sensorhub.metrics.token>'",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
        try:
            body, content_type = exposition(source, request.headers.get("Accept", ""))
        except FileNotFoundError as error:
            log.warning("metrics_files_vanished", error=str(error))
            return problem_response(
                request,
                503,
                "worker metric files changed during the scrape; retry",
                headers={"Retry-After": "1"},
            )
        response = Response(body=body, charset=None)
        response.headers["Content-Type"] = content_type
        response.headers["Cache-Control"] = "no-store"
        return response

    return metrics_view


def _authorized(request, expected: bytes) -> bool:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        credentials.strip().encode("utf-8"), expected
    )


def includeme(config, multiproc_dir: str) -> None:
    settings = config.registry.settings
    metrics = metrics_of(config.registry)
    source = MultiProcessRegistry(multiproc_dir) if multiproc_dir else metrics.registry
    port = settings["sensorhub.metrics.port"]
    if port:
        if config.registry.get("sensorhub.process", "server") == "server":
            host = settings["sensorhub.metrics.host"]
            config.registry[SERVER_KEY] = start_http_server(port, addr=host, registry=source)
            log.info("metrics_server_started", host=host, port=port)
        return
    config.add_route(ROUTE_NAME, settings["sensorhub.metrics.path"])
    protected = bool(settings["sensorhub.metrics.token"])
    config.add_view(
        metrics_view_factory(source, settings["sensorhub.metrics.token"]),
        route_name=ROUTE_NAME,
        request_method=("GET", "HEAD"),
        openapi=Operation(
            "Prometheus metrics, for a scraper",
            description="Protected by sensorhub.metrics.token (a bearer token of its own) "
            "when it is set.",
            tags=("metrics",),
            responses={200: ("the text exposition format", {"text/plain": str})},
            errors=(401,) if protected else (),
        ),
    )
    config.add_api_capability(
        "metrics",
        description="Prometheus metrics (RED, USE, domain)",
        url=settings["sensorhub.metrics.path"],
        protected=protected,
    )
