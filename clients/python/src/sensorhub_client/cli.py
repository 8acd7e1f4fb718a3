"""``sensorhub-send``: deliver NDJSON or CSV events from stdin or a file, exactly once.

    sensorhub-send --url http://hub:6543 --token-file /etc/sensor/token < events.ndjson
    sensorhub-send --url http://hub:6543 --follow --format csv /var/log/sensor/readings.csv

Every line read is in the spool before the next is read; a file's read position is saved in
the same transaction, so a sender that is killed and started again with the same arguments
goes on from the next line, and sends what was spooled but not yet acknowledged.
Exit status: 0 all delivered, 1 some events rejected or unreadable, 2 usage, 3 the server
refused the token or the URL, 4 events still spooled when ``--wait`` ran out (the next run
delivers them). SIGINT or SIGTERM (how ``--follow`` is stopped) ends reading, delivers for up
to 5 s more, and exits 0 or 4 likewise.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from .client import Client, ClientError
from .spool import Rejected, SourcePosition, SpoolBusy

READ_SIZE = 1 << 16
FOLLOW_POLL_SECONDS = 0.25
STOP_WAIT_SECONDS = 5.0  # on SIGINT/SIGTERM: how long to go on delivering before exiting
CSV_NUMBERS = ("value",)
EVENT_FIELDS = ("type", "value", "unit", "ts", "eventId")


def default_spool() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state) / "sensorhub-send" / "spool.sqlite"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sensorhub-send",
        description="Deliver events (NDJSON or CSV, one per line) to SensorHub exactly once, "
        "through a local spool that survives restarts and outages.",
    )
    p.add_argument("file", nargs="?", help="read this file (default: stdin)")
    p.add_argument(
        "--url", default=os.environ.get("SENSORHUB_URL"), help="the server (env SENSORHUB_URL)"
    )
    p.add_argument(
        "--token-file", help="a file holding the sensor's token (else env SENSORHUB_TOKEN)"
    )
    p.add_argument(
        "--spool",
        default=os.environ.get("SENSORHUB_SPOOL") or str(default_spool()),
        help="the spool file (env SENSORHUB_SPOOL; default %(default)s)",
    )
    p.add_argument(
        "--format", choices=("ndjson", "csv"), help="default: csv for *.csv, else ndjson"
    )
    p.add_argument(
        "-f", "--follow", action="store_true", help="keep reading FILE as it grows (like tail -F)"
    )
    p.add_argument(
        "--wait", type=float, default=120.0, help="seconds to wait for delivery at the end"
    )
    p.add_argument(
        "--batch-size", type=int, help="most events per request (default: the server's maxEvents)"
    )
    p.add_argument(
        "--max-age", type=float, default=1.0, help="longest an event waits for a batch, seconds"
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress line")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if not args.url:
        p.error("--url (or SENSORHUB_URL) is required")
    if args.follow and not args.file:
        p.error("--follow needs a FILE")
    token = read_token(args.token_file, p)
    signal.signal(signal.SIGTERM, _interrupt)
    fmt = args.format or ("csv" if args.file and args.file.endswith(".csv") else "ndjson")
    report = Report()
    try:
        client = Client(
            args.url,
            token,
            spool=args.spool,
            batch_size=args.batch_size,
            max_age=args.max_age,
            on_rejected=report.rejected,
        )
    except (SpoolBusy, ValueError) as error:
        say(str(error))
        return 2
    progress = Progress(client, report) if sys.stderr.isatty() and not args.quiet else None
    status = 0
    try:
        reader = Reader(client, report, fmt, args.file, follow=args.follow)
        reader.run()
        if not client.flush(args.wait):
            say(
                f"{client.pending} events are still spooled in {args.spool} after "
                f"{args.wait:g} s; the next run sends them"
            )
            status = 4
    except ClientError as error:
        say(str(error))
        status = 3
    except KeyboardInterrupt:  # SIGINT or SIGTERM: the normal end of --follow
        status = 0 if _flushed(client, STOP_WAIT_SECONDS) else 4
    finally:
        if progress is not None:
            progress.stop()
        try:
            client.close(timeout=0.0)
        except ClientError:
            status = status or 3
    if status == 0 and (report.refused or report.unreadable):
        status = 1
    return status


def _flushed(client: Client, timeout: float) -> bool:
    try:
        return client.flush(timeout)
    except ClientError:
        return False


def read_token(token_file: str | None, p: argparse.ArgumentParser) -> str:
    if token_file:
        try:
            token = Path(token_file).read_text().strip()
        except OSError as error:
            p.error(f"cannot read --token-file: {error}")
    else:
        token = os.environ.get("SENSORHUB_TOKEN", "").strip()
    if not token:
        p.error("no token: give --token-file FILE or set SENSORHUB_TOKEN")
    return token


def say(message: str) -> None:
    sys.stderr.write(f"sensorhub-send: {message}\n")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


class Report:
    """What the user is told about: refused events and unreadable lines, on stderr."""

    def __init__(self) -> None:
        self.read = 0
        self.refused = 0
        self.unreadable = 0

    def rejected(self, rejection: Rejected) -> None:
        self.refused += 1
        say(
            f"rejected {rejection.event_id} ({rejection.reason} at {rejection.path}): "
            f"{rejection.message}"
        )

    def bad_line(self, where: str, why: str) -> None:
        self.unreadable += 1
        say(f"{where}: {why}; line skipped")


class Reader:
    """Reads complete lines as they come and spools them, with the file's position."""

    def __init__(self, client: Client, report: Report, fmt: str, path: str | None, *, follow: bool):
        self.client = client
        self.report = report
        self.fmt = fmt
        self.follow = follow
        self.name = str(Path(path).resolve()) if path else None
        self.header: list[str] | None = None
        self.line_number = 0

    def run(self) -> None:
        if self.name is None:
            self._consume(sys.stdin.buffer.fileno(), 0, None)
            return
        while True:
            # Unbuffered: the reads below are os.read on its descriptor, which a buffered
            # file's readline and seek would leave at another offset than they report.
            with open(self.name, "rb", buffering=0) as handle:
                stat = os.fstat(handle.fileno())
                identity = f"{stat.st_dev}:{stat.st_ino}"
                saved = self.client.spool.source_position(self.name)
                start = saved.position if saved and saved.identity == identity else 0
                if start > stat.st_size:
                    start = 0  # truncated in place: a new file
                self.header = None
                if self.fmt == "csv" and start > 0:
                    self.header = next(csv.reader([handle.readline().decode()]), None)
                handle.seek(start)
                if not self._consume(handle.fileno(), start, identity):
                    return

    def _consume(self, fd: int, position: int, identity: str | None) -> bool:
        """Read to the end (or, following, until the file is replaced); True to reopen."""
        pending = b""
        while True:
            data = os.read(fd, READ_SIZE)
            if not data:
                if not self.follow:
                    if pending.strip():
                        self._spool([pending], position + len(pending), identity)
                    return False
                if self._replaced(position + len(pending), identity):
                    return True
                time.sleep(FOLLOW_POLL_SECONDS)
                continue
            pending += data
            complete, newline, pending = pending.rpartition(b"\n")
            if newline:
                position += len(complete) + 1
                self._spool(complete.split(b"\n"), position, identity)

    def _replaced(self, position: int, identity: str | None) -> bool:
        assert self.name is not None  # noqa: S101 - following needs a file
        try:
            stat = os.stat(self.name)
        except FileNotFoundError:
            return False  # being rotated: wait for the new file
        return f"{stat.st_dev}:{stat.st_ino}" != identity or stat.st_size < position

    def _spool(self, lines: list[bytes], position: int, identity: str | None) -> None:
        events = [event for event in map(self._event, lines) if event is not None]
        source = None
        if self.name is not None and identity is not None:
            source = (self.name, SourcePosition(identity, position))
        self.client.send_many(events, source=source)
        self.report.read += len(events)

    def _event(self, raw: bytes) -> dict[str, Any] | None:
        self.line_number += 1
        where = f"{self.name or 'stdin'} line {self.line_number}"
        text = raw.decode("utf-8", errors="replace").strip()
        if not text:
            return None
        if self.fmt == "csv":
            return self._csv_event(text, where)
        try:
            event = json.loads(text)
        except ValueError as error:
            self.report.bad_line(where, f"not JSON ({error})")
            return None
        if not isinstance(event, dict):
            self.report.bad_line(where, "not a JSON object")
            return None
        return event

    def _csv_event(self, text: str, where: str) -> dict[str, Any] | None:
        cells = next(csv.reader([text]), [])
        if self.header is None:
            self.header = [name.strip() for name in cells]
            return None
        if len(cells) != len(self.header):
            self.report.bad_line(where, f"{len(cells)} cells, the header has {len(self.header)}")
            return None
        return csv_event(dict(zip(self.header, cells, strict=True)))


def csv_event(row: dict[str, str]) -> dict[str, Any]:
    """A CSV row as an event: the event's own columns by name (``value`` a number, ``ts``
    epoch milliseconds when it is all digits), any other column into ``data``; empty cells
    are left out."""
    event: dict[str, Any] = {}
    data = {}
    for name, cell in row.items():
        if cell == "":
            continue
        if name not in EVENT_FIELDS:
            data[name] = cell
        elif name in CSV_NUMBERS:
            event[name] = _number(cell)
        elif name == "ts" and cell.isdigit():
            event[name] = int(cell)
        else:
            event[name] = cell
    if data:
        event["data"] = data
    return event


def _number(cell: str) -> float | str | None:
    if cell.strip() == "null":
        return None
    try:
        return float(cell)
    except ValueError:
        return cell  # the server says what is wrong with it


class Progress:
    """One line on the terminal, rewritten twice a second."""

    def __init__(self, client: Client, report: Report, stream: TextIO = sys.stderr):
        self.client = client
        self.report = report
        self.stream = stream
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def line(self) -> str:
        stats = self.client.stats()
        return (
            f"{self.report.read} read, {stats.accepted + stats.duplicates} delivered "
            f"({stats.duplicates} duplicate), {stats.rejected} rejected, "
            f"{self.client.pending} waiting"
        )

    def _run(self) -> None:
        while not self._done.wait(0.5):
            self.stream.write("\r" + self.line() + "\033[K")
            self.stream.flush()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()
        self.stream.write("\r" + self.line() + "\033[K\n")
        self.stream.flush()
