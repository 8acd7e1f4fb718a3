"""Every metric SensorHub exports, on the app's own ``CollectorRegistry``.

Names follow Prometheus conventions (``_total`` counters, ``_seconds`` durations); every label
is a bounded set (methods, route names, status codes, outcomes, reason codes), never an id or a
path. Known label values are created at start with a zero, so ``rate()`` works from the first
scrape instead of after the first occurrence.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from sensorhub.__version__ import __version__
from sensorhub.events import AUTH_FAILURE_REASONS
from sensorhub.settings import Kind, described

# HTTP methods become a label; anything else a client invents is folded into "other".
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
EVENT_OUTCOMES = ("accepted", "duplicate", "rejected")
BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
GROUP_REQUESTS_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
GROUP_EVENTS_BUCKETS = (1, 10, 50, 100, 500, 1000, 5000, 10000, 50000)
DB_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def _show_buckets(buckets: tuple[float, ...]) -> str:
    return " ".join(f"{bucket:g}" for bucket in buckets)


@described(Kind("seconds, ascending", example="0.01 0.05 0.1 0.5 1 5"), show=_show_buckets)
def as_buckets(raw: str) -> tuple[float, ...]:
    """``"0.01 0.05 0.1 0.5 1"`` -> ascending seconds (``+Inf`` is always added)."""
    try:
        buckets = tuple(float(word) for word in raw.replace(",", " ").split())
    except ValueError:
        raise ValueError("ascending numbers of seconds, e.g. '0.01 0.05 0.1 0.5 1 5'") from None
    if not buckets or any(b <= 0 for b in buckets) or list(buckets) != sorted(set(buckets)):
        raise ValueError("ascending positive numbers of seconds, e.g. '0.01 0.05 0.1 0.5 1 5'")
    return buckets


class AppMetrics:
    """One app's metrics. ``registry`` is what ``/metrics`` serves in single-process mode."""

    def __init__(self, buckets, multiprocess: bool = False):
        self.multiprocess = multiprocess
        self.registry = registry = CollectorRegistry()

        # --- RED
        self.http_requests = Counter(
            "sensorhub_http_requests",
            "HTTP requests answered, by method, route name and status code",
            ["method", "route", "status"],
            registry=registry,
        )
        self.http_duration = Histogram(
            "sensorhub_http_request_duration_seconds",
            "Time from the request entering the "
            "app to its response (commit included), by method and route name",
            ["method", "route"],
            buckets=buckets,
            registry=registry,
        )
        self.http_in_flight = Gauge(
            "sensorhub_http_requests_in_flight",
            "Requests being handled right now (each holds a server thread)",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.http_retries = Counter(
            "sensorhub_http_request_retries",
            "Request attempts that failed with a retryable "
            "error (serialisation failure, deadlock) and were run again, by route name",
            ["route"],
            registry=registry,
        )

        # --- domain (after commit)
        self.events_ingested = Counter(
            "sensorhub_events_ingested",
            "Events received in committed requests, by outcome",
            ["outcome"],
            registry=registry,
        )
        self.events_rejected = Counter(
            "sensorhub_events_rejected",
            "Events refused by validation, by reason code",
            ["reason"],
            registry=registry,
        )
        self.ingest_batch_size = Histogram(
            "sensorhub_ingest_batch_size_events",
            "Events per ingestion request",
            buckets=BATCH_SIZE_BUCKETS,
            registry=registry,
        )
        self.auth_successes = Counter(
            "sensorhub_sensor_authentications",
            "Requests in which a sensor authenticated",
            registry=registry,
        )
        self.auth_failures = Counter(
            "sensorhub_auth_failures",
            "Refused credentials, by reason code",
            ["reason"],
            registry=registry,
        )
        self.rate_limited = Counter(
            "sensorhub_rate_limited_requests",
            "Requests refused with 429, by limit",
            ["scope"],
            registry=registry,
        )
        self.commit_groups = Counter(
            "sensorhub_ingest_commit_groups",
            "Group commits by the ingestion writer, by outcome",
            ["outcome"],
            registry=registry,
        )
        self.commit_group_requests = Histogram(
            "sensorhub_ingest_commit_group_requests",
            "Requests sharing one group commit",
            buckets=GROUP_REQUESTS_BUCKETS,
            registry=registry,
        )
        self.commit_group_events = Histogram(
            "sensorhub_ingest_commit_group_events",
            "Events written by one group commit",
            buckets=GROUP_EVENTS_BUCKETS,
            registry=registry,
        )
        self.commit_group_duration = Histogram(
            "sensorhub_ingest_commit_group_duration_seconds",
            "Time one group commit took",
            buckets=DB_BUCKETS,
            registry=registry,
        )
        self.db_transaction_duration = Histogram(
            "sensorhub_db_transaction_duration_seconds",
            "Time a database transaction stayed "
            "open, from BEGIN (on SQLite, the wait for the write lock included) to COMMIT or "
            "ROLLBACK, by outcome",
            ["outcome"],
            buckets=DB_BUCKETS,
            registry=registry,
        )

        # --- USE and identity
        self.server_threads = Gauge(
            "sensorhub_server_threads",
            "Worker threads the server was configured with",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.build_info = Gauge(
            "sensorhub_build_info",
            "Always 1; the version label says what is running",
            ["version"],
            registry=registry,
            multiprocess_mode="max",
        )

        self.build_info.labels(__version__).set(1)
        for outcome in EVENT_OUTCOMES:
            self.events_ingested.labels(outcome)
        for reason in AUTH_FAILURE_REASONS:
            self.auth_failures.labels(reason)
        self.rate_limited.labels("auth_failures")
        for outcome in ("succeeded", "failed"):
            self.commit_groups.labels(outcome)
        for outcome in ("commit", "rollback"):
            self.db_transaction_duration.labels(outcome)


def metrics_of(registry) -> AppMetrics:
    """The app's metrics (``registry`` is the Pyramid registry)."""
    return registry["sensorhub.metrics"]
