"""What a sensor's program can do with ``sensorhub_client.Client``; read as its API docs.

Against the real server where it gives the answer on demand (a refused token, rejected
events), against :class:`conftest.FakeHub` where only a scripted server can (a 413 after the
limits shrank, a 5xx, a Retry-After on cue).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from email.utils import formatdate
from pathlib import Path

import pytest
from conftest import ADMIN_TOKEN, call, free_port
from sensorhub_client import Client, ServerRefused, Spool, SpoolBusy, TokenRefused, uuid7
from sensorhub_client.transport import Answer


def accepted(*event_ids: str) -> dict:
    return {"results": [{"status": "accepted", "eventId": event_id} for event_id in event_ids]}


def test_send_returns_once_the_event_is_on_disk_with_a_time_ordered_event_id(tmp_path):
    unreachable = f"http://127.0.0.1:{free_port()}"
    client = Client(unreachable, "token", spool=tmp_path / "spool.sqlite", max_backoff=0.1)
    try:
        first = client.send({"type": "temperature", "value": 21.5, "unit": "Cel"})
        second = client.send({"type": "temperature", "value": 21.6, "eventId": "my-own-id"})
        third = client.send({"type": "temperature", "value": 21.7})
        assert second == "my-own-id"  # an eventId of the caller's is kept
        assert uuid.UUID(first).version == 7 and first < third
        # Another connection to the file sees the events at once: they are committed.
        other = sqlite3.connect(tmp_path / "spool.sqlite")
        rows = other.execute("SELECT event_id FROM outbox ORDER BY seq").fetchall()
        other.close()
        assert [row[0] for row in rows] == [first, second, third]
    finally:
        client.close(timeout=0)


def test_uuid7_ids_carry_the_time_and_strictly_increase():
    before = time.time_ns() // 1_000_000
    ids = [uuid7() for _ in range(5000)]
    after = time.time_ns() // 1_000_000
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert before <= ids[0].int >> 80 <= ids[-1].int >> 80 <= after + 1


def test_events_go_in_batches_of_the_servers_max_events_and_the_rest_after_max_age(
    tmp_path, fake_hub
):
    server = fake_hub(max_events=10)
    with Client(server.url, "token", spool=tmp_path / "spool.sqlite", max_age=1.0) as client:
        started = time.monotonic()
        client.send_many({"type": "t", "value": n} for n in range(25))
        deadline = time.monotonic() + 5
        while len(server.posts) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert server.batch_sizes() == [10, 10, 5]
    assert server.posts[1][0] - started < 0.8  # full batches go at once
    assert server.posts[2][0] - started >= 0.95  # the remainder waits for max_age


def test_a_batch_stays_within_the_servers_max_body_bytes_and_big_bodies_are_gzipped(
    tmp_path, fake_hub
):
    server = fake_hub(max_body_bytes=2000)
    with Client(server.url, "t", spool=tmp_path / "spool.sqlite", gzip_above=1000) as client:
        client.send_many({"type": "t", "value": n, "data": {"pad": "x" * 100}} for n in range(40))
        assert client.flush(5)
    assert sum(server.batch_sizes()) == 40 and len(server.posts) > 1
    for _, headers, events in server.posts:
        body = len(('{"events":[' + ",".join(map(compact, events)) + "]}").encode())
        assert body <= 2000
        assert headers.get("Content-Encoding") == ("gzip" if body > 1000 else None)


def compact(event: dict) -> str:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


def test_429_and_503_are_retried_only_after_their_retry_after(tmp_path, fake_hub):
    server = fake_hub()
    busy = {"type": "about:blank", "status": 503, "detail": "at capacity"}
    server.answers = [(503, {"Retry-After": "1"}, busy), (429, {"Retry-After": "1"}, busy)]
    with Client(server.url, "token", spool=tmp_path / "spool.sqlite", max_age=0) as client:
        client.send({"type": "t", "value": 1})
        assert client.flush(10)
    times = [at for at, _, _ in server.posts]
    assert len(times) == 3
    assert times[1] - times[0] >= 1.0 and times[2] - times[1] >= 1.0
    assert len(server.stored) == 1


def test_5xx_and_no_answer_are_retried_with_jittered_exponential_backoff(tmp_path, fake_hub):
    server = fake_hub()
    oops = {"detail": "oops"}
    server.answers = [(500, {}, oops), (502, {}, oops), (500, {}, oops)]
    spool = tmp_path / "spool.sqlite"
    with Client(server.url, "token", spool=spool, max_age=0, max_backoff=1) as client:
        client.send({"type": "t", "value": 1})
        assert client.flush(10)
        waits = client.stats().waits
    # The ceiling doubles from 0.5 s up to max_backoff; each wait is drawn from its upper half.
    assert len(waits) == 3
    for failures, wait in enumerate(waits, start=1):
        ceiling = min(1.0, 0.25 * 2**failures)
        assert ceiling / 2 <= wait <= ceiling
    assert len(server.stored) == 1


def test_a_batch_the_server_finds_too_large_is_split_and_a_lone_one_rejected(tmp_path, fake_hub):
    # The server advertised 1000 events, then (restarted with lower limits) refuses big bodies.
    server = fake_hub()
    too_large = (413, {}, {"status": 413, "detail": "the body is larger than the limit"})
    server.answers = [too_large, too_large, too_large]
    rejected = []
    with Client(
        server.url, "t", spool=tmp_path / "spool.sqlite", max_age=0, on_rejected=rejected.append
    ) as client:
        ids = client.send_many({"type": "t", "value": n} for n in range(8))
        assert client.flush(5)
    # 8 → 413; 4 → 413; 2 → 413; then 1 at a time (the split is kept), all accepted.
    assert server.batch_sizes()[:4] == [8, 4, 2, 1]
    assert sorted(server.stored) == sorted(ids) and rejected == []
    server.answers = [too_large]
    with Client(
        server.url, "t", spool=tmp_path / "spool.sqlite", max_age=0, on_rejected=rejected.append
    ) as client:
        lone = client.send({"type": "t", "data": {"pad": "x" * 5000}})
        assert client.flush(5)
    assert [(r.event_id, r.reason) for r in rejected] == [(lone, "too_large")]


@pytest.mark.parametrize("partial", [False, True], ids=["all-or-nothing", "partial"])
def test_rejected_events_are_reported_set_aside_and_never_resent(
    tmp_path, hub, default_hub, partial
):
    # All or nothing (the server's default) answers 422 naming the bad items; partial mode
    # answers 201 with a result per item. Either way only the bad ones are set aside.
    server = hub(SENSORHUB_INGEST_PARTIAL="true") if partial else default_hub
    sensor = server.new_sensor()
    rejected = []
    with Client(
        server.url, sensor["token"], spool=tmp_path / "spool.sqlite", on_rejected=rejected.append
    ) as client:
        good = client.send_many({"type": "ok", "value": n} for n in range(5))
        bad = client.send({"type": "no spaces allowed", "value": 1})
        too_new = client.send({"type": "ok", "value": 1, "ts": int(time.time() + 3600) * 1000})
        assert client.flush(10)
        stats = client.stats()
        assert client.rejected() == rejected
    assert {(r.event_id, r.reason) for r in rejected} == {
        (bad, "invalid_field"),
        (too_new, "ts_in_future"),
    }
    assert sorted(event_id for event_id, _ in server.stored(sensor["sensorId"])) == sorted(good)
    assert (stats.accepted, stats.rejected) == (5, 2)
    # A new client on the same spool has nothing to send: the rejected stay set aside.
    with Client(server.url, sensor["token"], spool=tmp_path / "spool.sqlite") as again:
        assert again.pending == 0 and len(again.rejected()) == 2


def test_an_event_id_already_stored_with_another_payload_is_reported_as_a_conflict(
    tmp_path, default_hub
):
    sensor = default_hub.new_sensor()
    rejected = []
    with Client(
        default_hub.url,
        sensor["token"],
        spool=tmp_path / "spool.sqlite",
        on_rejected=rejected.append,
    ) as client:
        first = client.send({"type": "ok", "value": 1, "eventId": "reading-1"})
        assert client.flush(10)
        client.send({"type": "ok", "value": 2, "eventId": "reading-1"})  # not what it sent
        assert client.flush(10) and client.pending == 0
    assert [(r.event_id, r.reason) for r in rejected] == [(first, "conflict")]
    assert [value for _, value in default_hub.stored(sensor["sensorId"])] == [1.0]


def test_a_revoked_token_stops_sending_and_says_why_keeping_the_events(tmp_path, default_hub):
    server = default_hub
    sensor = server.new_sensor()
    path = f"/api/v1/sensors/{sensor['sensorId']}/tokens/{sensor['tokenId']}"
    assert call(server.port, "DELETE", path, token=ADMIN_TOKEN)[0] in (200, 204)
    client = Client(server.url, sensor["token"], spool=tmp_path / "spool.sqlite")
    client.send({"type": "t", "value": 1})
    with pytest.raises(TokenRefused, match="token has been revoked.*1 events stay in the spool"):
        client.flush(10)
    with pytest.raises(TokenRefused):
        client.send({"type": "t", "value": 2})
    with pytest.raises(TokenRefused):
        client.close()
    with Spool(tmp_path / "spool.sqlite") as spool:
        assert spool.pending() == 1


def test_events_left_by_a_stopped_client_are_sent_by_the_next_one(tmp_path, fake_hub):
    unreachable = f"http://127.0.0.1:{free_port()}"
    offline = Client(unreachable, "t", spool=tmp_path / "spool.sqlite", max_backoff=0.1)
    ids = offline.send_many({"type": "t", "value": n} for n in range(3))
    assert not offline.flush(0.3)
    offline.close(timeout=0)  # e.g. the sensor is switched off
    server = fake_hub()
    with Client(server.url, "t", spool=tmp_path / "spool.sqlite") as online:
        assert online.pending == 3
        assert online.flush(5)
    assert sorted(server.stored) == sorted(ids)


def test_a_spool_belongs_to_one_sender_at_a_time(tmp_path):
    with Spool(tmp_path / "spool.sqlite"), pytest.raises(SpoolBusy, match="in use"):
        Spool(tmp_path / "spool.sqlite")


def test_only_events_that_can_be_sent_as_json_are_spooled(tmp_path):
    unreachable = f"http://127.0.0.1:{free_port()}"
    with Client(unreachable, "t", spool=tmp_path / "spool.sqlite") as client:
        with pytest.raises(TypeError):
            client.send(["not", "a", "mapping"])  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            client.send({"type": "t", "value": float("nan")})
        with pytest.raises(TypeError):
            client.send({"type": "t", "eventId": 7})
        assert client.pending == 0


def test_the_readmes_example_runs_as_written(tmp_path, default_hub):
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    example = readme.split("## A runnable example", 1)[1].split("```python\n", 1)[1]
    (tmp_path / "example.py").write_text(example.split("```", 1)[0])
    sensor = default_hub.new_sensor("readme")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SENSORHUB_")}
    result = subprocess.run(
        [sys.executable, "example.py"],
        cwd=tmp_path,
        env={**environ, "SENSORHUB_URL": default_hub.url, "SENSORHUB_TOKEN": sensor["token"]},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "refused " in result.stdout and "invalid_field at events[4].type" in result.stdout
    assert result.stdout.endswith("delivered 4, waiting 0\n")
    assert len(default_hub.stored(sensor["sensorId"])) == 4


@pytest.mark.parametrize(
    "answer, says",
    [
        ((404, {}, {"status": 404, "detail": "no such page"}), "refused the events \\(404\\)"),
        ((308, {"Location": "https://hub.example/api/v1/events"}, {}), "redirects.*https://hub"),
    ],
    ids=["not-found", "redirect"],
)
def test_a_wrong_url_stops_sending_with_server_refused(tmp_path, fake_hub, answer, says):
    server = fake_hub()
    server.answers = [answer]
    client = Client(server.url, "t", spool=tmp_path / "spool.sqlite")
    client.send({"type": "t"})
    with pytest.raises(ServerRefused, match=says):
        client.flush(5)
    with pytest.raises(ServerRefused):
        client.close()


def test_a_server_without_ingest_is_refused_before_anything_is_posted(tmp_path, fake_hub):
    server = fake_hub()
    server.limits = None  # GET /api/v1/ lists no ingest capability
    client = Client(server.url, "t", spool=tmp_path / "spool.sqlite")
    client.send({"type": "t"})
    with pytest.raises(ServerRefused, match="does not take events"):
        client.flush(5)
    with pytest.raises(ServerRefused):
        client.close()
    assert server.posts == []


def test_retry_after_is_read_as_seconds_or_as_an_http_date():
    def after(value: str) -> float | None:
        return Answer(503, {"retry-after": value}, b"").retry_after()

    assert after("7") == 7.0
    assert after(formatdate(time.time() + 30, usegmt=True)) == pytest.approx(30, abs=2)
    assert after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # already past: at once
    assert after("soon") is None  # unreadable: back off as without one
