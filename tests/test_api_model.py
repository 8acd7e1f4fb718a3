"""The API against a model of it (Hypothesis stateful testing, issue 13).

A state machine drives the real app through WebTest, every request committing for real with
group commit on (as in production), through sequences of: enrolling sensors, posting batches
(fresh eventIds, sometimes with invalid items: refused whole with 422, counted as rejected),
retrying a batch (all duplicates), resending eventIds with another payload (conflicts: counted
with the duplicates, nothing stored), rotating tokens, revoking them (the revoked token gets
401) and restarting the app on the same database (nothing acknowledged is lost, counters
survive). After every step the database, read directly, and ``GET /api/v1/sensor`` must equal
the model: each sensor's stored events by eventId with their payload, its counters and
lastEventAt, and which of its tokens are revoked.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import orjson
import pytest
import webtest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select

from plugins.auth.models import SensorToken
from plugins.ingest.models import events_table, stats_table
from sensorhub.lifecycle import close_app
from sensorhub.timestamps import format_timestamp
from tests.conftest import empty_all_tables
from tests.plugins.test_ingest_support import ADMIN, AUTH_SETTINGS, post_events

APP_SETTINGS = {
    **AUTH_SETTINGS,
    # Revoked tokens are tried on purpose: the brute-force guard would rightly turn a long run's
    # 401s into 429s from this one address (its own tests prove it).
    "sensorhub.auth.failure_threshold": "0",
    # Group commit and the token cache stay at their production defaults: a revocation made
    # through the app must apply at once despite the cache, and restarting must lose nothing.
}
MAX_SENSORS = 3
# One reading: (type, value, unit, ts in epoch ms, data). Generated ts lie within the last hour,
# inside the accepted window whatever the machine's clock.
types = st.sampled_from(["temperature", "humidity", "door.open"])
values = st.one_of(st.none(), st.integers(-1000, 1000), st.sampled_from([0.5, -2.25, 1e300]))
units = st.sampled_from([None, "Cel", "%RH"])
datas = st.one_of(
    st.none(), st.dictionaries(st.sampled_from("abc"), st.integers(-5, 5), max_size=2)
)
readings = st.tuples(types, values, units, st.integers(0, 3_600_000), datas)
# How an item is made invalid (each refused by validation, so the whole batch gets 422).
INVALID = {
    "value": ("value", "warm"),
    "unknown": ("sensorId", "not-yours"),
    "type": ("type", "has/slash"),
}


@dataclass
class Payload:
    type: str
    value: float | None
    unit: str | None
    ts_us: int
    data: dict | None

    def event(self, event_id: str) -> dict:
        event = {"eventId": event_id, "type": self.type, "ts": self.ts_us // 1000}
        for name in ("value", "unit", "data"):
            if getattr(self, name) is not None:
                event[name] = getattr(self, name)
        return event


@dataclass
class SensorModel:
    sensor_id: str
    tokens: dict[str, str] = field(default_factory=dict)  # token id -> token
    revoked: dict[str, str] = field(default_factory=dict)  # token id -> token
    events: dict[str, Payload] = field(default_factory=dict)  # eventId -> what is stored
    counters: dict[str, int] = field(
        default_factory=lambda: {"eventCount": 0, "duplicateCount": 0, "rejectedCount": 0}
    )
    last_batch: list[dict] = field(default_factory=list)  # the last batch acknowledged

    def last_event_at(self) -> int | None:
        """The newest stored ts (epoch µs): what the counters keep as lastEventAt."""
        return max((payload.ts_us for payload in self.events.values()), default=None)

    def header(self) -> dict:
        token = next(reversed(self.tokens.values()))  # the newest active token
        return {"Authorization": f"Bearer {token}"}


def payload_of(reading, now_ms: int) -> Payload:
    kind, value, unit, age_ms, data = reading
    return Payload(
        kind, None if value is None else float(value), unit, (now_ms - age_ms) * 1000, data
    )


class SensorHubModel(RuleBasedStateMachine):
    """Set ``build_app`` and ``dbengine`` on the class before running it."""

    build_app = None
    dbengine = None
    # Steps that did what their name says: the scripted test checks that each kind did, so a
    # change that makes a rule always bail out cannot leave the generated runs vacuous.
    done: Counter = Counter()

    def __init__(self):
        super().__init__()
        self.app = None
        self.testapp: webtest.TestApp | None = None
        self.sensors: list[SensorModel] = []
        self.next_event = 0
        self.now_ms = time.time_ns() // 1_000_000

    # --- steps

    @initialize()
    def start(self):
        self._start_app()
        self._enrol()

    @precondition(lambda self: len(self.sensors) < MAX_SENSORS)
    @rule()
    def enrol(self):
        self._enrol()

    @rule(pick=st.integers(0, MAX_SENSORS - 1), batch=st.lists(readings, min_size=1, max_size=6))
    def post_batch(self, pick, batch):
        sensor = self._sensor(pick)
        payloads = [payload_of(reading, self.now_ms) for reading in batch]
        events = [payload.event(self._new_event_id()) for payload in payloads]
        answer = post_events(self.testapp, sensor.header(), events).json
        assert [result["status"] for result in answer["results"]] == ["accepted"] * len(events)
        for event, payload in zip(events, payloads, strict=True):
            sensor.events[event["eventId"]] = payload
        sensor.counters["eventCount"] += len(events)
        sensor.last_batch = events
        self.done["post"] += 1

    @rule(
        pick=st.integers(0, MAX_SENSORS - 1),
        batch=st.lists(readings, min_size=1, max_size=6),
        invalid=st.lists(
            st.tuples(st.integers(0, 5), st.sampled_from(sorted(INVALID))), min_size=1, max_size=3
        ),
    )
    def post_batch_with_invalid_items(self, pick, batch, invalid):
        sensor = self._sensor(pick)
        events = [payload_of(r, self.now_ms).event(self._new_event_id()) for r in batch]
        bad = {position % len(events): how for position, how in invalid}
        for position, how in bad.items():
            name, wrong = INVALID[how]
            events[position][name] = wrong
        problem = post_events(self.testapp, sensor.header(), events, status=422).json
        assert sorted(error["path"] for error in problem["errors"]) == sorted(
            f"events[{position}].{INVALID[how][0]}" for position, how in bad.items()
        )
        # All or nothing: no item of the batch is stored, the refused ones are counted.
        sensor.counters["rejectedCount"] += len(bad)
        self.done["refused"] += 1

    @precondition(lambda self: self._having(lambda sensor: sensor.last_batch))
    @rule(pick=st.integers(0, MAX_SENSORS - 1))
    def retry_last_batch(self, pick):
        sensor = self._pick(self._having(lambda sensor: sensor.last_batch), pick)
        answer = post_events(self.testapp, sensor.header(), sensor.last_batch).json
        assert [r["status"] for r in answer["results"]] == ["duplicate"] * len(sensor.last_batch)
        assert (answer["accepted"], answer["duplicates"]) == (0, len(sensor.last_batch))
        sensor.counters["duplicateCount"] += len(sensor.last_batch)
        self.done["retry"] += 1

    @precondition(lambda self: self._having(lambda sensor: sensor.events))
    @rule(
        pick=st.integers(0, MAX_SENSORS - 1),
        which=st.lists(st.integers(0, 1000), min_size=1, max_size=3, unique=True),
        change=st.sampled_from(["value", "type", "data", "ts"]),
    )
    def resend_with_another_payload(self, pick, which, change):
        sensor = self._pick(self._having(lambda sensor: sensor.events), pick)
        stored = sorted(sensor.events)
        event_ids = sorted({stored[index % len(stored)] for index in which})
        events = [
            self._altered(sensor.events[event_id], change).event(event_id) for event_id in event_ids
        ]
        answer = post_events(self.testapp, sensor.header(), events).json
        assert [r["status"] for r in answer["results"]] == ["conflict"] * len(events)
        assert (answer["accepted"], answer["duplicates"], answer["conflicts"]) == (
            0,
            len(events),
            len(events),
        )
        sensor.counters["duplicateCount"] += len(events)
        self.done["conflict"] += 1

    @rule(pick=st.integers(0, MAX_SENSORS - 1))
    def rotate(self, pick):
        sensor = self._sensor(pick)
        issued = self.testapp.post_json(
            f"/api/v1/sensors/{sensor.sensor_id}/tokens", {}, headers=ADMIN, status=201
        ).json
        sensor.tokens[issued["tokenId"]] = issued["token"]
        self.done["rotate"] += 1

    # A sensor keeps one token to post with (revoking a last token: tests/plugins/test_auth.py).
    @precondition(lambda self: self._having(lambda sensor: len(sensor.tokens) > 1))
    @rule(pick=st.integers(0, MAX_SENSORS - 1), which=st.integers(0, 10))
    def revoke(self, pick, which):
        sensor = self._pick(self._having(lambda sensor: len(sensor.tokens) > 1), pick)
        token_id = sorted(sensor.tokens)[which % len(sensor.tokens)]
        self.testapp.delete(
            f"/api/v1/sensors/{sensor.sensor_id}/tokens/{token_id}", headers=ADMIN, status=200
        )
        sensor.revoked[token_id] = sensor.tokens.pop(token_id)
        refused = self.testapp.get(
            "/api/v1/sensor",
            headers={"Authorization": f"Bearer {sensor.revoked[token_id]}"},
            status=401,
        )
        assert "revoked" in refused.headers["WWW-Authenticate"]
        self.done["revoke"] += 1

    @rule()
    def restart(self):
        close_app(self.app.registry)  # the server's last step: the writer commits its queue
        self._start_app()
        self.done["restart"] += 1

    # --- the model equals the database and the API after every step

    @invariant()
    def database_equals_the_model(self):
        # A read-only transaction: it must not take SQLite's write lock from the writer thread.
        with self.dbengine.connect().execution_options(sqlite_begin="DEFERRED") as connection:
            for sensor in self.sensors:
                rows = connection.execute(
                    select(
                        events_table.c.event_id,
                        events_table.c.type,
                        events_table.c.value,
                        events_table.c.unit,
                        events_table.c.ts,
                        events_table.c.data,
                    ).where(events_table.c.sensor_id == sensor.sensor_id)
                ).all()
                stored = {
                    row.event_id: Payload(
                        row.type,
                        row.value,
                        row.unit,
                        row.ts,
                        None if row.data is None else orjson.loads(row.data),
                    )
                    for row in rows
                }
                assert len(rows) == len(stored)  # one row per eventId
                assert stored == sensor.events
                counters = connection.execute(
                    select(
                        stats_table.c.event_count,
                        stats_table.c.duplicate_count,
                        stats_table.c.rejected_count,
                        stats_table.c.last_event_at,
                    ).where(stats_table.c.sensor_id == sensor.sensor_id)
                ).first()
                expected = (*sensor.counters.values(), sensor.last_event_at())
                assert tuple(counters or (0, 0, 0, None)) == expected
                revoked = connection.execute(
                    select(SensorToken.id).where(
                        SensorToken.sensor_id == sensor.sensor_id,
                        SensorToken.revoked_at.is_not(None),
                    )
                ).scalars()
                assert set(revoked) == set(sensor.revoked)

    @invariant()
    def the_api_reports_the_model_counters(self):
        for sensor in self.sensors:
            info = self.testapp.get("/api/v1/sensor", headers=sensor.header()).json
            assert {name: info[name] for name in sensor.counters} == sensor.counters
            last = sensor.last_event_at()
            assert info["lastEventAt"] == (None if last is None else format_timestamp(last))

    def teardown(self):
        if self.app is not None:
            close_app(self.app.registry)

    # --- helpers

    def _start_app(self):
        self.app = type(self).build_app(["auth", "ingest"], APP_SETTINGS)
        self.testapp = webtest.TestApp(self.app, extra_environ={"HTTP_HOST": "example.com"})

    def _enrol(self):
        created = self.testapp.post_json(
            "/api/v1/sensors", {"name": f"model-{len(self.sensors)}"}, headers=ADMIN, status=201
        ).json
        sensor = SensorModel(created["sensorId"])
        sensor.tokens[created["tokenId"]] = created["token"]
        self.sensors.append(sensor)

    def _sensor(self, pick: int) -> SensorModel:
        return self._pick(self.sensors, pick)

    @staticmethod
    def _pick(sensors: list[SensorModel], pick: int) -> SensorModel:
        return sensors[pick % len(sensors)]

    def _having(self, wanted) -> list[SensorModel]:
        return [sensor for sensor in self.sensors if wanted(sensor)]

    def _new_event_id(self) -> str:
        self.next_event += 1
        return f"model-{self.next_event}"

    @staticmethod
    def _altered(payload: Payload, change: str) -> Payload:
        other = Payload(payload.type, payload.value, payload.unit, payload.ts_us, payload.data)
        if change == "value":
            # Not "+ 1" for every value: 1e300 + 1 is 1e300.
            small = payload.value is not None and abs(payload.value) < 1e15
            other.value = payload.value + 1.0 if small else 7.0
        elif change == "type":
            other.type = payload.type + ".other"
        elif change == "data":
            other.data = {**(payload.data or {}), "changed": True}
        else:
            other.ts_us = payload.ts_us - 1000
        return other


@pytest.fixture
def model_machine(app_factory, dbengine):
    SensorHubModel.build_app = staticmethod(app_factory)
    SensorHubModel.dbengine = dbengine
    SensorHubModel.done = Counter()
    yield SensorHubModel
    empty_all_tables(dbengine)


def test_the_api_and_its_database_equal_a_model_through_posts_retries_conflicts_rotations_revocations_and_restarts(  # noqa: E501
    model_machine,
):
    run_state_machine_as_test(
        model_machine,
        settings=settings(
            max_examples=15,
            stateful_step_count=12,
            deadline=None,
            derandomize=True,  # seeded from the test, not the clock; no example database
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


def test_one_of_every_step_in_turn_keeps_the_database_and_the_api_equal_to_the_model(
    model_machine,
):
    """The generated runs above choose their steps by chance (how many of each differs from
    run to run); this sequence takes every kind once, so none can silently stop being tested."""
    machine = model_machine()
    reading = ("temperature", 21, "Cel", 1000, {"a": 1})
    steps = [
        lambda: machine.post_batch(0, [reading, ("humidity", None, None, 5, None)]),
        lambda: machine.retry_last_batch(0),
        lambda: machine.resend_with_another_payload(0, [0, 1], "value"),
        lambda: machine.post_batch_with_invalid_items(0, [reading] * 3, [(1, "type")]),
        lambda: machine.rotate(0),
        lambda: machine.revoke(0, 0),
        lambda: machine.restart(),
        lambda: machine.retry_last_batch(0),
        lambda: machine.enrol(),
        lambda: machine.post_batch(1, [reading]),
    ]
    machine.start()
    try:
        for step in steps:
            step()
            machine.database_equals_the_model()
            machine.the_api_reports_the_model_counters()
    finally:
        machine.teardown()
    kinds = {"post", "refused", "retry", "conflict", "rotate", "revoke", "restart"}
    assert set(machine.done) == kinds, machine.done
