"""Where one request's time goes, in one process: ``make bench-breakdown``.

The load benchmark says *how fast*; this says *what costs*. One thread, no HTTP (the WSGI app is
called directly with a prepared environ), a fresh SQLite file (or ``--database-url``), all four
production plugins (``logging metrics auth ingest``; the logging plugin's JSON lines go to a
file in the temp dir, not the terminal). Each piece of a single-event POST is timed alone with
the app's own objects, median µs per call over several repeats:

1. the **budget** of one single-event POST, one row per piece, then their sum, the whole POST
   and what the pieces leave unaccounted (the commit wait among it);
2. the whole requests, for scale;
3. details: how a request's session and auth's reads decompose, and bigger writes.

``--json PATH`` saves ``{label: µs}``; ``--compare BEFORE.json`` prints before, after and their
ratio (``bench/baselines/`` keeps runs worth comparing with). A profile in numbers, not a
target: absolute figures move with the machine, so compare runs made on the same one.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from .hello import pyramid_app
from .servers import ADMIN_TOKEN, migrate

PLUGINS = "logging metrics auth ingest"

# The budget of one single-event POST. Rows marked "summed" add up to SUM; the others are shown
# for comparison (the cold auth path, a 100-event parse) and not added. The request's session
# is not summed: a POST by a remembered sensor no longer begins it (the credential generation is
# read outside it); GET /api/v1/sensor still pays it. (Baselines before that change summed it.)
ROUTING = "routing + tweens (GET /api/v1/ less its pieces)"
SESSION = "session + transaction (tm, checkout, BEGIN, end)"
AUTH_REMEMBERED = "auth lookup, remembered (checks + generation read)"
AUTH_COLD = "auth lookup, cold (checks + token/sensor join)"
PARSE_1 = "validation: parse_body, 1 event"
PARSE_100 = "validation: parse_body, 100 events"
WRITE_1 = "storage write: 1 event, until its COMMIT"
RENDER = "response rendering: the POST's 201 body"
LOG_LINE = "log line: request_finished (summary tween)"
METRICS_RED = "metrics: RED tween (in flight, count, duration)"
METRICS_DOMAIN = "metrics: auth + ingest counters (domain events)"
SUM = "sum of the summed pieces"
POST_SINGLE = "POST /api/v1/events, 1 event (whole, commits)"
UNACCOUNTED = "unaccounted: POST - sum (commit wait, body, view)"
BUDGET = (
    (ROUTING, True),
    (SESSION, False),
    (AUTH_REMEMBERED, True),
    (AUTH_COLD, False),
    (PARSE_1, True),
    (PARSE_100, False),
    (WRITE_1, True),
    (RENDER, True),
    (LOG_LINE, True),
    (METRICS_RED, True),
    (METRICS_DOMAIN, True),
)
BUDGET_LABELS = (*(label for label, _ in BUDGET), SUM, POST_SINGLE, UNACCOUNTED)

GET_ROOT = "GET /api/v1/ (whole; no DB)"
GET_SENSOR = "GET /api/v1/sensor (whole)"
GET_EVENTS = "GET /api/v1/events?limit=100 (whole)"
RENDER_ROOT = "render GET /api/v1/'s body (for routing)"
WHOLE_LABELS = (GET_ROOT, GET_SENSOR, GET_EVENTS, POST_SINGLE)

Timed = Callable[[], object]


@dataclass
class Bench:
    app: Any
    sensor_id: str
    token: str


def build(database_url: str) -> Bench:
    """The app as production.ini loads it (all four plugins, metrics and JSON logs on), on a
    fresh schema, with one sensor provisioned through the API."""
    from sensorhub import make_app

    settings = {
        "sensorhub.database.url": database_url,
        "sensorhub.plugins": PLUGINS,
        "sensorhub.auth.admin_token": ADMIN_TOKEN,
        "sensorhub.logging.format": "json",
        # One sensor calls thousands of times a second here: the per-sensor limit would answer
        # 429 (cheaply) and the figures would time the refusal, as the load bench's servers know.
        "sensorhub.auth.sensor_rate": "0",
    }
    migrate(settings)
    app = make_app(settings, environ={})
    created = json.loads(
        call(
            app,
            "POST",
            "/api/v1/sensors",
            json.dumps({"name": "breakdown"}).encode(),
            {"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )()
    )
    return Bench(app, created["sensorId"], created["token"])


def call(
    app, method: str, path: str, body: bytes | Callable[[], bytes] = b"", headers=None
) -> Callable[[], bytes]:
    """A whole request as a WSGI server makes it, minus the HTTP: a copy of a prepared environ
    with a fresh body stream, the app called, its body read and closed. ``body`` may be a
    function that gives each call's body. Every call checks that the answer is a 2xx (a
    timed refusal is not the request being measured)."""
    from webob import Request

    headers = dict(headers or {})
    if body:
        headers.setdefault("Content-Type", "application/json")
    template = Request.blank(
        path, method=method, headers=headers, POST=None, remote_addr="127.0.0.1"
    ).environ
    body_of = body if callable(body) else lambda: body
    last_status = [""]

    def start_response(status, response_headers, exc_info=None):
        last_status[0] = status

    def request() -> bytes:
        content = body_of()
        environ = dict(template)
        environ["CONTENT_LENGTH"] = str(len(content))
        environ["wsgi.input"] = io.BytesIO(content)
        result = app(environ, start_response)
        try:
            answer = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        if last_status[0][0] != "2":
            raise RuntimeError(f"{method} {path}: {last_status[0]}: {answer[:300]!r}")
        return answer

    request()
    return request


def measure(fn: Timed, number: int, repeats: int) -> float:
    """Median µs per call of ``fn`` over ``repeats`` rounds of ``number`` calls."""
    fn()
    rounds = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(number):
            fn()
        rounds.append((time.perf_counter() - started) / number * 1e6)
    return statistics.median(rounds)


def measure_part(fn: Callable[[], float], number: int, repeats: int) -> float:
    """Like :func:`measure` for an ``fn`` that times a part of itself and returns its seconds
    (what it does after that part, e.g. a rollback that only undoes the part, is not timed)."""
    fn()
    rounds = []
    for _ in range(repeats):
        rounds.append(sum(fn() for _ in range(number)) / number * 1e6)
    return statistics.median(rounds)


def prepared_request(app, method: str, path: str, route: str, headers=None, body=b""):
    """A request of the app's own class as the router hands it to tweens and views: registry
    set, route matched, ``remote_addr``, headers and body as a client sends them."""
    from pyramid.interfaces import IRoutesMapper

    request = app.request_factory.blank(
        path, method=method, headers=headers or {}, remote_addr="127.0.0.1"
    )
    if body:
        request.content_type = "application/json"
        request.body = body
    request.registry = app.registry
    request.matched_route = app.registry.getUtility(IRoutesMapper).get_route(route)
    return request


@contextlib.contextmanager
def open_session(app, request):
    """``request.dbsession`` in an open reader transaction, for the pieces that read: the app's
    test hook (environ ``sensorhub.dbsession``) and ``tm.active``, as pyramid_tm sets it."""
    import transaction

    from sensorhub.db import DBSESSION_ENVIRON_KEY, get_tm_session

    manager = transaction.TransactionManager(explicit=True)
    manager.begin()
    session = get_tm_session(app.registry["dbsession_factory.reader"], manager, request)
    session.connection()
    request.environ[DBSESSION_ENVIRON_KEY] = session
    request.environ["tm.active"] = True
    try:
        yield session
    finally:
        manager.abort()
        request.environ.pop(DBSESSION_ENVIRON_KEY, None)
        request.environ.pop("tm.active", None)


def budget_pieces(bench: Bench, number: int, repeats: int) -> dict[str, float]:
    import orjson
    import transaction
    from pyramid.renderers import RendererHelper
    from pyramid.response import Response

    from plugins.ingest.parsing import parse_body
    from plugins.ingest.storage import WriteJob, write_jobs
    from plugins.logging.summary import request_summary_tween_factory
    from plugins.metrics import metrics_of
    from plugins.metrics.domain import subscribers
    from plugins.metrics.red import red_tween_factory
    from sensorhub.api import api_root
    from sensorhub.db import get_tm_session
    from sensorhub.events import EventsIngested, SensorAuthenticated

    app, registry = bench.app, bench.app.registry
    engine = registry["dbengine"]
    bearer = {"Authorization": f"Bearer {bench.token}"}
    sequence = iter(range(10**9))
    figures: dict[str, float] = {}

    def timed(label: str, fn: Timed) -> None:
        figures[label] = measure(fn, number, repeats)

    # Whole requests.
    get_root = call(app, "GET", "/api/v1/")
    get_sensor = call(app, "GET", f"/api/v1/sensor?sensorId={bench.sensor_id}", headers=bearer)
    single = {"type": "temperature", "value": 21.5, "unit": "Cel", "eventId": "breakdown-0"}
    posted = orjson.loads(call(app, "POST", "/api/v1/events", orjson.dumps(single), bearer)())

    # The POST's body differs every call (a new eventId), as a sensor's does.
    post_single = call(
        app,
        "POST",
        "/api/v1/events",
        lambda: orjson.dumps({**single, "eventId": f"single-{next(sequence)}"}),
        bearer,
    )

    timed(GET_ROOT, get_root)
    timed(GET_SENSOR, get_sensor)
    # A page of 100 of the sensor's events, as the bench's events_read reads (posted once).
    earlier = int(time.time() * 1000) - 60_000
    page = [{**single, "ts": earlier + i, "eventId": f"page-{i}"} for i in range(100)]
    call(app, "POST", "/api/v1/events", orjson.dumps(page), bearer)()
    timed(GET_EVENTS, call(app, "GET", "/api/v1/events?limit=100", headers=bearer))
    timed(POST_SINGLE, post_single)

    # The POST's request as tweens and views see it; reused by the pieces below.
    post = prepared_request(
        app, "POST", "/api/v1/events", "ingest.events", bearer, orjson.dumps(single)
    )
    root = prepared_request(app, "GET", "/api/v1/", "api_root")

    # Session: the reader session every authenticated request opens, with its first statement's
    # checkout (and BEGIN on PostgreSQL; SQLite's readers send none, the label stays so that
    # older runs compare); ended by a rollback here (the POST commits it before its view).
    def session_only() -> None:
        manager = transaction.TransactionManager(explicit=True)
        manager.begin()
        get_tm_session(registry["dbsession_factory.reader"], manager).connection()
        manager.abort()

    timed(SESSION, session_only)

    # Auth: the policy's own authentication (a private method: identity() caches per request,
    # so it would answer from that cache after the first call) inside one open transaction, so
    # the session is not counted twice (it has its own row). It also publishes
    # SensorAuthenticated to the logging and metrics subscribers, as a request does.
    policy = registry["sensorhub.auth.policy"]  # the app's BearerTokenSecurityPolicy
    authenticate = policy._authenticate  # private: what identity() caches per request
    with open_session(app, post):
        assert authenticate(post).identity is not None  # and a fresh touch: no write below
        timed(AUTH_REMEMBERED, lambda: authenticate(post))

        def cold() -> None:
            policy._lookups.clear()  # private: forget the remembered lookup, not the touch
            authenticate(post)

        timed(AUTH_COLD, cold)

    # Validation: the view's parse of the POST's body, and of a 100-event batch.
    limits = registry["ingest.config"].limits  # the view's, from the settings
    one_body = orjson.dumps(single)
    now_ms = int(time.time() * 1000)
    hundred = orjson.dumps(
        [
            {
                "type": "temperature",
                "value": 21.37,
                "unit": "Cel",
                "ts": now_ms,
                "eventId": f"breakdown-{i}",
                "data": {"fw": "1.4.2", "rssi": -57},
            }
            for i in range(100)
        ]
    )
    timed(PARSE_1, lambda: parse_body(one_body, "application/json", limits=limits))
    timed(PARSE_100, lambda: parse_body(hundred, "application/json", limits=limits))

    # Storage: the rows parse_body makes, written without the commit wait (the metrics plugin's
    # transaction-duration listener on BEGIN runs in it, as it does in the writer).
    def rows(count: int) -> list[dict]:
        batch = next(sequence)
        template = parse_body(one_body, "application/json", limits=limits).rows[0]
        return [{**template, "event_id": f"w{batch}-{i}"} for i in range(count)]

    def write(jobs_of: Callable[[], list], commit: bool = False) -> Callable[[], float]:
        """As the ingest writer does it (``engine.begin()``, ``write_jobs``): checkout, BEGIN
        and the statements are timed, and with ``commit`` the COMMIT and the release too.
        It always commits: the database grows as in production (rolling each write back made
        the next one slower than after a commit on PostgreSQL, which steps over the aborted
        versions of the sensor's counters row)."""

        def run() -> float:
            jobs = jobs_of()
            started = time.perf_counter()
            with engine.connect() as connection:
                connection.begin()
                write_jobs(connection, jobs)
                elapsed = time.perf_counter() - started
                connection.commit()
            return time.perf_counter() - started if commit else elapsed

        return run

    figures[WRITE_1] = measure_part(
        write(lambda: [WriteJob(bench.sensor_id, rows(1))]), number, repeats
    )

    # Rendering: the view's dict through the app's "json" renderer as Pyramid's view machinery
    # calls it (BeforeRender, the renderer, a new request.response with the body set).
    helper = RendererHelper(name="json", package=None, registry=registry)

    def render(request, value) -> Timed:
        def run() -> None:
            request.__dict__.pop("response", None)  # reified: each request makes its own
            helper.render_view(request, value, None, None)

        return run

    timed(RENDER, render(post, posted))
    timed(RENDER_ROOT, render(root, api_root(root)))

    # The log line and the RED metrics: each plugin's own tween, made by its own factory, around
    # a handler that answers at once with the POST's response. (GET /api/v1/'s line and RED
    # tween, taken out of it for routing below, cost the same but for a few fields.)
    answer = Response(body=orjson.dumps(posted), status=201, content_type="application/json")
    summary_tween = request_summary_tween_factory(lambda request: answer, registry)
    red_tween = red_tween_factory(lambda request: answer, registry)
    timed(LOG_LINE, lambda: summary_tween(post))
    timed(METRICS_RED, lambda: red_tween(post))

    # Domain counters: the metrics plugin's subscribers for what a POST publishes.
    on = subscribers(metrics_of(registry))
    authenticated = SensorAuthenticated(post, bench.sensor_id)
    ingested = EventsIngested(post, bench.sensor_id, 1, 1, 0, 0)

    def domain_counters() -> None:
        on[SensorAuthenticated](authenticated)
        on[EventsIngested](ingested)

    timed(METRICS_DOMAIN, domain_counters)

    # Routing + tweens, derived: GET /api/v1/ has a trivial view (a dict from the registry) and
    # no database, so what it costs beyond rendering its body, its log line and its RED tween
    # is Pyramid's router, the core tweens (request ID, admission, pyramid_retry, pyramid_tm,
    # the exception view) and the view lookup.
    figures[ROUTING] = figures[GET_ROOT] - figures[RENDER_ROOT] - figures[LOG_LINE]
    figures[ROUTING] -= figures[METRICS_RED]
    figures[SUM] = sum(figures[label] for label, summed in BUDGET if summed)
    figures[UNACCOUNTED] = figures[POST_SINGLE] - figures[SUM]

    detail_pieces(bench, figures, number, repeats, write, rows)
    return figures


def detail_pieces(bench: Bench, figures: dict[str, float], number, repeats, write, rows) -> None:
    """How a request's session and auth's reads decompose, and bigger writes."""
    import transaction
    from pyramid.request import Request

    from plugins.auth.security import _TOKEN_LOOKUP
    from plugins.ingest.storage import WriteJob, insert_all_new
    from sensorhub.db import get_tm_session

    registry = bench.app.registry
    engine = registry["dbengine"]
    reader = registry["dbsession_factory.reader"]
    digest = hashlib.sha256(bench.token.encode()).digest()
    sensor_id = bench.sensor_id
    policy = registry["sensorhub.auth.policy"]
    # GET /api/v1/sensor's read when no lookup was reused: the profile with the counters.
    self_read = policy._self_read.statement

    def in_a_session(depth: int) -> Timed:
        """A request's session alone (0), with auth's cold lookup and the profile's read
        (2): the session + transaction row is depth 1."""

        def run() -> None:
            manager = transaction.TransactionManager(explicit=True)
            manager.begin()
            session = get_tm_session(reader, manager)
            if depth >= 1:
                connection = session.connection()
            if depth >= 2:
                connection.execute(_TOKEN_LOOKUP, {"digest": digest}).one_or_none()
                connection.execute(self_read, {"sensor_id": sensor_id}).one_or_none()
            manager.abort()

        return run

    outside_a_transaction = Request.blank("/")
    outside_a_transaction.registry = registry

    def driver_read() -> None:
        """How GET /api/v1/sensor reads it now: on the driver, no session begun."""
        policy.read_self(outside_a_transaction, sensor_id)

    timed = [
        # The framework's own floor under GET /api/v1/: what "routing + tweens" adds to it is
        # SensorHub's stack (request ID, admission, pyramid_tm, pyramid_retry, the plugins').
        ("bare Pyramid: one route, one JSON view, no tweens", call(pyramid_app(), "GET", "/")),
        ("transaction manager + session + zope.sqlalchemy", in_a_session(0)),
        ("  ... + 2 one-row Core SELECTs (GET /sensor's cold)", in_a_session(2)),
        ("GET /sensor's profile + counters as a DriverRead", driver_read),
    ]
    if engine.dialect.name == "sqlite":  # qmark SQL as compiled runs as is on sqlite3
        values = {"digest": digest, "sensor_id": sensor_id}
        compiled = [statement.compile(engine) for statement in (_TOKEN_LOOKUP, self_read)]
        both = [
            (str(each), tuple(values[name] for name in each.positiontup or ())) for each in compiled
        ]
        raw = engine.raw_connection()

        def raw_selects() -> None:
            # The same statements on the bare sqlite3 driver: the database's own share.
            cursor = raw.cursor()
            cursor.execute("BEGIN")
            for sql, parameters in both:
                cursor.execute(sql, parameters).fetchall()
            raw.rollback()

        timed.append(("the same 2 SELECTs on the bare driver", raw_selects))
    writes = [
        (
            "write 1 single-event job and commit",
            write(lambda: [WriteJob(sensor_id, rows(1))], commit=True),
        ),
        (
            "write 8 single-event jobs together, until COMMIT",
            write(lambda: [WriteJob(sensor_id, rows(1)) for _ in range(8)]),
        ),
        ("write 100 events, until COMMIT", write(lambda: [WriteJob(sensor_id, rows(100))])),
    ]
    if engine.dialect.name == "sqlite":

        def one_statement() -> float:
            # How the ingest writer stores a group of new events on SQLite: one statement
            # that commits itself (plugins.ingest.storage.insert_all_new), the fsync included.
            jobs = [WriteJob(sensor_id, rows(1))]
            started = time.perf_counter()
            if not insert_all_new(engine, jobs):
                raise RuntimeError("the one-statement path declined a new single event")
            return time.perf_counter() - started

        writes.insert(1, ("write 1 single-event job in one statement (commits)", one_statement))
    for label, fn in timed:
        figures[label] = measure(fn, number, repeats)
    for label, part in writes:
        figures[label] = measure_part(part, number, repeats)
    if engine.dialect.name == "sqlite":
        raw.close()


def print_table(
    figures: dict[str, float], before: dict[str, float] | None, out: TextIO, width: int = 52
) -> None:
    def row(label: str, mark: str = " ") -> None:
        after = figures[label]
        line = f"{mark} {label:{width}s} {after:9.1f}"
        if before is not None:
            was = before.get(label)
            line = (
                f"{mark} {label:{width}s} {'-' if was is None else f'{was:.1f}':>9s} {after:9.1f}"
                f" {'' if not was else f'{after / was:6.2f}x'}"
            )
        print(line, file=out)

    head = f"  {'':{width}s} {'µs':>9s}"
    if before is not None:
        head = f"  {'':{width}s} {'before':>9s} {'after':>9s}  ratio"
    print("\nbudget of one single-event POST (* = in the sum)", file=out)
    print(head, file=out)
    for label, summed in BUDGET:
        row(label, "*" if summed else " ")
    for label in (SUM, POST_SINGLE, UNACCOUNTED):
        row(label)
    print("\nwhole requests", file=out)
    for label in WHOLE_LABELS:
        row(label)
    print("\ndetails", file=out)
    shown = {*BUDGET_LABELS, *WHOLE_LABELS}
    for label in figures:
        if label not in shown:
            row(label)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.breakdown",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--number", type=int, default=300, help="calls per repeat (300)")
    parser.add_argument("--repeats", type=int, default=5, help="repeats; medians (5)")
    parser.add_argument("--database-url", help="instead of a fresh SQLite file")
    parser.add_argument("--json", type=Path, help="also write {label: µs} to this file")
    parser.add_argument(
        "--compare", type=Path, help="a --json file of an earlier run: before, after, ratio"
    )
    args = parser.parse_args(argv)
    before = json.loads(args.compare.read_text()) if args.compare else None
    out = sys.stdout
    with tempfile.TemporaryDirectory(prefix="sensorhub-breakdown-") as scratch:
        url = args.database_url or f"sqlite:///{Path(scratch) / 'breakdown.sqlite'}"
        # The logging plugin writes to sys.stdout as it is at each line: a file here.
        with open(Path(scratch) / "log.jsonl", "w") as sink, contextlib.redirect_stdout(sink):
            bench = build(url)
            engine = bench.app.registry["dbengine"]
            print(
                f"one thread, no HTTP, {engine.dialect.name}, plugins {PLUGINS}; median µs per "
                f"call over {args.repeats} x {args.number}",
                file=out,
                flush=True,
            )
            try:
                figures = budget_pieces(bench, args.number, args.repeats)
            finally:
                from sensorhub.lifecycle import close_app

                close_app(bench.app.registry)
                engine.dispose()
    print_table(figures, before, out)
    if args.json:
        args.json.write_text(json.dumps({k: round(v, 1) for k, v in figures.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
