"""``sensorhub-send``: what a shell script or an operator can do with it; read as its docs."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import time

from conftest import BIN, free_port, stop_group
from sensorhub_client import Spool

SEND = str(BIN / "sensorhub-send")


def environ(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SENSORHUB_")}
    return {**base, **extra}


def send(server, tmp_path, stdin: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SEND, "--url", server.url, "--spool", str(tmp_path / "spool.sqlite"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environ(SENSORHUB_TOKEN="a-token", **env),
        timeout=30,
    )


def stored(server) -> list[dict]:
    return sorted(server.stored.values(), key=lambda event: event["eventId"])


def test_ndjson_on_stdin_is_delivered_with_the_token_from_the_environment(tmp_path, fake_hub):
    server = fake_hub()
    lines = '{"type": "t", "value": 1}\n{"type": "t", "value": 2, "eventId": "mine"}\n'
    result = send(server, tmp_path, lines)
    assert result.returncode == 0, result.stderr
    assert [event["value"] for event in stored(server)] == [1, 2]
    assert "mine" in server.stored
    assert server.posts[0][1]["Authorization"] == "Bearer a-token"


def test_csv_takes_the_header_for_names_and_puts_other_columns_in_data(tmp_path, fake_hub):
    server = fake_hub()
    table = "type,value,unit,site\ntemperature,21.5,Cel,north\nhumidity,,%RH,south\n"
    token = tmp_path / "token"
    token.write_text("file-token\n")
    result = send(server, tmp_path, table, "--format", "csv", "--token-file", str(token))
    assert result.returncode == 0, result.stderr
    events = [{k: v for k, v in e.items() if k not in ("eventId", "ts")} for e in stored(server)]
    assert events == [
        {"type": "temperature", "value": 21.5, "unit": "Cel", "data": {"site": "north"}},
        {"type": "humidity", "unit": "%RH", "data": {"site": "south"}},
    ]
    assert server.posts[0][1]["Authorization"] == "Bearer file-token"


def test_rejected_events_and_unreadable_lines_are_named_and_exit_1(tmp_path, fake_hub):
    server = fake_hub()
    invalid = {"status": 422, "errors": [{"path": "events[1].type", "reason": "invalid_field"}]}
    server.answers = [(422, {}, invalid)]
    lines = '{"type": "t"}\n{"type": "bad type"}\nnot json\n{"type": "t"}\n'
    result = send(server, tmp_path, lines)
    assert result.returncode == 1
    assert "stdin line 3: not JSON" in result.stderr
    assert "rejected" in result.stderr and "invalid_field at events[1].type" in result.stderr
    assert len(server.stored) == 2


def test_a_refused_token_stops_it_with_the_servers_reason_and_exit_3(tmp_path, fake_hub):
    server = fake_hub()
    why = (
        'Bearer realm="sensorhub", error="invalid_token", error_description="the token has expired"'
    )
    server.answers = [(401, {"WWW-Authenticate": why}, {"status": 401})]
    result = send(server, tmp_path, '{"type": "t"}\n')
    assert result.returncode == 3
    assert "refused the token (401): the token has expired" in result.stderr
    assert "1 events stay in the spool" in result.stderr


def test_following_a_file_sends_lines_as_written_across_rotation_and_resumes_where_it_stopped(
    tmp_path, fake_hub
):
    server = fake_hub()
    readings = tmp_path / "readings.ndjson"
    readings.write_text('{"type": "t", "value": 0}\n')
    command = [SEND, "--url", server.url, "--spool", str(tmp_path / "spool.sqlite")]
    follower = subprocess.Popen(
        [*command, "--follow", "--max-age", "0.05", str(readings)],
        env=environ(SENSORHUB_TOKEN="t"),
        start_new_session=True,
    )
    try:
        with readings.open("a") as out:
            for n in range(1, 4):
                out.write(f'{{"type": "t", "value": {n}}}\n')
                out.flush()
                wait_for(lambda n=n: len(server.stored) == n + 1)
            out.write('{"type": "t", "value": 4')  # half a line: not sent until it ends
            out.flush()
            time.sleep(0.3)
            assert len(server.stored) == 4
            out.write("}\n")
        wait_for(lambda: len(server.stored) == 5)
        # Rotated: the file is moved away and a new one started; the new one is read too.
        readings.rename(tmp_path / "readings.ndjson.1")
        readings.write_text('{"type": "t", "value": 5}\n')
        wait_for(lambda: len(server.stored) == 6)
        follower.send_signal(signal.SIGTERM)  # how a service manager stops it
        assert follower.wait(10) == 0
    finally:
        stop_group(follower, signal.SIGKILL)
    with readings.open("a") as out:
        out.write('{"type": "t", "value": 6}\n')
    again = subprocess.run(
        [*command, str(readings)], env=environ(SENSORHUB_TOKEN="t"), timeout=30, check=False
    )
    assert again.returncode == 0
    assert sorted(event["value"] for event in server.stored.values()) == list(range(7))
    assert sum(server.batch_sizes()) == 7  # no line was sent twice


def wait_for(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_on_a_terminal_it_shows_a_progress_line(tmp_path, fake_hub):
    server = fake_hub()
    leader, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [SEND, "--url", server.url, "--spool", str(tmp_path / "spool.sqlite")],
            stdin=subprocess.PIPE,
            stderr=terminal,
            env=environ(SENSORHUB_TOKEN="t"),
        )
        process.communicate(b'{"type": "t"}\n{"type": "t"}\n', timeout=30)
        assert process.returncode == 0
        shown = b""
        while select.select([leader], [], [], 0.5)[0]:
            shown += os.read(leader, 4096)
    finally:
        os.close(leader)
        os.close(terminal)
    assert b"2 read, 2 delivered (0 duplicate), 0 rejected, 0 waiting" in shown


def test_events_it_could_not_deliver_in_time_wait_in_the_spool_and_it_exits_4(tmp_path):
    result = send(UNREACHABLE, tmp_path, '{"type": "t"}\n{"type": "t"}\n', "--wait", "0.3")
    assert result.returncode == 4
    assert (
        "2 events are still spooled" in result.stderr and "the next run sends them" in result.stderr
    )


def test_two_senders_cannot_share_a_spool(tmp_path):
    with Spool(tmp_path / "spool.sqlite"):
        result = send(UNREACHABLE, tmp_path, '{"type": "t"}\n')
    assert result.returncode == 2 and "in use by another process" in result.stderr


def test_a_csv_file_read_again_goes_on_after_the_rows_already_sent(tmp_path, fake_hub):
    server = fake_hub()
    table = tmp_path / "readings.csv"
    table.write_text("type,value\nt,1\nt,2\n")
    assert send(server, tmp_path, "", str(table)).returncode == 0
    with table.open("a") as out:
        out.write("t,3\n")
    assert send(server, tmp_path, "", str(table)).returncode == 0
    assert sorted(event["value"] for event in server.stored.values()) == [1, 2, 3]
    assert sum(server.batch_sizes()) == 3


class Unreachable:
    url = f"http://127.0.0.1:{free_port()}"


UNREACHABLE = Unreachable()
