"""What a sensor can count on when things break: every event it sent is stored exactly once,
and its spool ends empty, whatever was killed or overloaded on the way.

Each test starts the real server on loopback, breaks something mid-stream, and then counts
from the server's own database: events sent, rows stored, duplicates the server saw (resends
whose first answer was lost), events lost. The figures are printed (``pytest -s``) for the
record; the assertions are the guarantees.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter

from conftest import BIN, stop_group
from sensorhub_client import Client


def figures(hub, sensor: dict, sent: list, scenario: str, by: str = "eventId") -> dict:
    """Sent, stored, duplicates (resends the server answered ``duplicate``), lost; asserts
    that each sent event is stored exactly once, matched ``by`` its eventId or its value."""
    rows = hub.stored(sensor["sensorId"])
    stored = [event_id if by == "eventId" else value for event_id, value in rows]
    counters = hub.counters(sensor["token"])
    result = {
        "sent": len(sent),
        "stored": len(stored),
        "duplicates": counters["duplicateCount"],
        "lost": len(set(sent) - set(stored)),
    }
    print(f"\n{scenario}: {result}")
    assert Counter(stored) == Counter(sent), "not every event stored exactly once"
    assert counters["eventCount"] == len(sent) == len({event_id for event_id, _ in rows})
    return result


def wait_until(condition, timeout: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_a_server_killed_mid_stream_and_restarted_stores_every_event_exactly_once(hub, tmp_path):
    server = hub(SENSORHUB_INGEST_MAX_EVENTS="50")  # many small requests: a kill lands mid-one
    sensor = server.new_sensor()
    sent: list[str] = []
    with Client(
        server.url, sensor["token"], spool=tmp_path / "spool.sqlite", max_age=0.05, max_backoff=0.5
    ) as client:
        sent += client.send_many({"type": "reading", "value": n} for n in range(2000))
        wait_until(lambda: client.stats().accepted >= 400, what="deliveries")
        server.kill()
        # Offline: the sensor keeps sending; its events wait in the spool.
        sent += client.send_many({"type": "offline", "value": n} for n in range(200))
        time.sleep(0.3)
        server.start()
        assert client.flush(60)
        assert client.pending == 0
        assert client.stats().connection_failures > 0
    figures(server, sensor, sent, "server SIGKILLed mid-stream, restarted")
    assert spooled(tmp_path / "spool.sqlite") == 0


def test_a_sender_killed_mid_stream_and_restarted_stores_every_line_exactly_once(
    default_hub, tmp_path
):
    server = default_hub
    sensor = server.new_sensor()
    lines = 3000
    source = tmp_path / "readings.ndjson"
    source.write_text("".join(f'{{"type": "line", "value": {n}}}\n' for n in range(lines)))
    token_file = tmp_path / "token"
    token_file.write_text(sensor["token"] + "\n")
    spool = tmp_path / "sender-spool.sqlite"
    command = [
        str(BIN / "sensorhub-send"),
        "--url",
        server.url,
        "--token-file",
        str(token_file),
        "--spool",
        str(spool),
        "--max-age",
        "0.05",
        "--batch-size",
        "50",  # many small requests: the kill lands mid-stream
        str(source),
    ]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SENSORHUB_")}
    sender = subprocess.Popen(command, env=environ, start_new_session=True)
    try:
        wait_until(lambda: 500 <= server.counters(sensor["token"])["eventCount"], what="sending")
        stop_group(sender, signal.SIGKILL)
        assert server.counters(sensor["token"])["eventCount"] < lines, "killed too late"
        sender = subprocess.Popen(command, env=environ, start_new_session=True)
        assert sender.wait(60) == 0
    finally:
        stop_group(sender, signal.SIGKILL)
    # The sender gave the lines their eventIds: each line is known by its value.
    sent = list(range(lines))
    figures(server, sensor, sent, "sensorhub-send SIGKILLed mid-stream, restarted", by="value")
    assert spooled(spool) == 0


def test_an_overloaded_server_is_waited_for_as_it_asks_and_stores_every_event_once(hub, tmp_path):
    # The production server with one request at a time and no queueing (503 + Retry-After),
    # and 4 requests a second per sensor (429 + Retry-After); four sensors start at once and
    # deliver 250 events each, 25 per request: 10 requests each, 1.5 s at the sensor rate.
    server = hub(
        "sensorhub-serve",
        SENSORHUB_WORKERS="1",
        SENSORHUB_THREADS="1",
        SENSORHUB_QUEUE_TIMEOUT="0",
        SENSORHUB_AUTH_SENSOR_RATE="4",
        SENSORHUB_AUTH_SENSOR_BURST="4",
        SENSORHUB_INGEST_MAX_EVENTS="25",
        SENSORHUB_SHUTDOWN_GRACE="1s",  # nothing is in flight when the test stops it
    )
    fleet = [server.new_sensor(f"fleet-{n}") for n in range(4)]
    clients = [
        Client(server.url, s["token"], spool=tmp_path / f"spool-{n}.sqlite", max_age=0.05)
        for n, s in enumerate(fleet)
    ]
    sent: list[list[str]] = [[] for _ in fleet]
    try:

        def deliver(n: int) -> None:
            sent[n] = clients[n].send_many({"type": "busy", "value": v} for v in range(250))

        threads = [threading.Thread(target=deliver, args=(n,)) for n in range(len(fleet))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for client in clients:
            assert client.flush(60)
        stats = [client.stats() for client in clients]
    finally:
        for client in clients:
            client.close()
    statuses = sum((s.statuses for s in stats), Counter())
    print(f"\noverload: answers {dict(statuses)}")
    assert statuses[429] > 0, "the sensor rate limit never answered 429"
    assert statuses[503] > 0, "one slot for four senders never answered 503"
    # Every refusal here says Retry-After: 1, and the senders waited at least that each time.
    assert sum(s.connection_failures for s in stats) == 0
    waits = [wait for s in stats for wait in s.waits]
    assert len(waits) == statuses[429] + statuses[503] and min(waits) >= 1.0
    for n, sensor in enumerate(fleet):
        figures(server, sensor, sent[n], f"overload, sensor {n}")
        assert spooled(tmp_path / f"spool-{n}.sqlite") == 0


def spooled(path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])
    finally:
        db.close()
