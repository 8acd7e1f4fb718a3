"""RED per route: one tween counts and times every request by method, route name and status.

Placement: under the core's request-ID tween (so the logging plugin's summary and the request ID
wrap it) and over pyramid_tm, which is itself over the exception view. So the tween sees the
final status of every response: errors rendered by exception views, and a failed commit that
pyramid_tm renders; and the duration includes the commit. An exception that escapes everything
(the WSGI server answers it) is counted as a 500.

Cardinality: ``route`` is the matched route's *name*, or ``unmatched`` (a scanner probing random
paths creates no series); ``method`` is one of the standard methods or ``other``; ``status`` is
whatever the app answers (a small set). An attempt that pyramid_retry will run again is not a
request: it counts in ``sensorhub_http_request_retries_total`` and the final attempt is counted.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram

from sensorhub.requests import route_name, will_retry

from .metrics import KNOWN_METHODS, metrics_of


def red_tween_factory(handler, registry):
    metrics = metrics_of(registry)
    in_flight = metrics.http_in_flight
    # Label lookups take a lock and stringify; the children are cached per label set instead.
    counters: dict[tuple[str, str, int], Counter] = {}
    timers: dict[tuple[str, str], Histogram] = {}

    def observe(request, status: int, elapsed: float) -> None:
        method = request.method if request.method in KNOWN_METHODS else "other"
        route = route_name(request)
        counter = counters.get((method, route, status))
        if counter is None:
            counter = counters[(method, route, status)] = metrics.http_requests.labels(
                method, route, str(status)
            )
        timer = timers.get((method, route))
        if timer is None:
            timer = timers[(method, route)] = metrics.http_duration.labels(method, route)
        counter.inc()
        timer.observe(elapsed)

    def red_tween(request):
        in_flight.inc()
        started = time.perf_counter()
        try:
            response = handler(request)
        except Exception as error:
            if will_retry(request, error):
                metrics.http_retries.labels(route_name(request)).inc()
            else:
                observe(request, 500, time.perf_counter() - started)
            raise
        finally:
            in_flight.dec()
        if will_retry(request):  # an exception view answered a retryable error: dropped
            metrics.http_retries.labels(route_name(request)).inc()
        else:
            observe(request, response.status_code, time.perf_counter() - started)
        return response

    return red_tween


def includeme(config) -> None:
    config.add_tween(
        "plugins.metrics.red.red_tween_factory",
        under="sensorhub.request_id.request_id_tween_factory",
        over="pyramid_tm.tm_tween_factory",
    )
