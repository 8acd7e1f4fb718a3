"""Bench only: a logging plugin that logs each request the way structlog's performance docs
say is fastest, to measure the logging plugin's tax against in the same run.

It configures structlog as those docs show (``make_filtering_bound_logger``,
``cache_logger_on_first_use``, ``JSONRenderer`` on orjson, bytes to stdout through
``BytesLoggerFactory``) and logs one ``request_finished`` line per request with the production
line's fields, from a tween in the summary tween's place (under the request-ID tween, so the line
carries ``request_id``; over pyramid_tm and the exception view). Nothing else: no redaction, no
per-logger levels, no stdlib records in the same pipeline, no line-separator guarantees, so
SensorHub could not ship it. ``api_root`` on a server that loads it in place of ``logging``
says what the library's own fast path costs a request under the same load
(docs/benchmarks.md).
"""

from __future__ import annotations

import logging
import time

import orjson
import structlog
from pyramid.tweens import EXCVIEW

from sensorhub.requests import matched_route_name, raw_path


def request_line_tween_factory(handler, registry):
    log = structlog.get_logger("sensorhub.request")

    def request_line_tween(request):
        started = time.perf_counter()
        response = handler(request)
        log.info(
            "request_finished",
            method=request.method,
            route=matched_route_name(request),
            path=raw_path(request),
            status=response.status_code,
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
            sensor_id=None,
            bytes_in=request.content_length or 0,
            bytes_out=response.content_length,
            client_addr=request.environ.get("REMOTE_ADDR"),
        )
        return response

    return request_line_tween


def includeme(config) -> None:
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.BytesLoggerFactory(),
        cache_logger_on_first_use=True,
    )
    config.add_tween(
        "bench.fast_path_logging.request_line_tween_factory",
        under="sensorhub.request_id.request_id_tween_factory",
        over=("pyramid_tm.tm_tween_factory", EXCVIEW),
    )
