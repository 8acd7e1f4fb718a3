"""``sensorhub-admin prune <ini> [--older-than 30d] [--chunk-size N] [--dry-run]``.

Deletes events whose ``ts`` is older than the cutoff, sensor by sensor, in chunks of at most
``--chunk-size`` rows, each chunk its own short transaction (which also decrements that
sensor's counters), so writers are never locked out for long and an interrupted prune keeps
what it already did. Prints progress per sensor and a total; returns the number deleted.
"""

from __future__ import annotations

import argparse
import sys
import time

import structlog

from sensorhub.scripts.admin import duration_option
from sensorhub.text import printable
from sensorhub.timestamps import format_timestamp, now_us

from .storage import count_prunable, prune_sensor_chunk, sensors_with_events

log = structlog.get_logger(__name__)


def _positive(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError("expected an integer >= 1")
    return int(raw)


class PruneCommand:
    help = "delete events older than a cutoff (default: sensorhub.ingest.retention), in chunks"

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--older-than",
            type=duration_option,
            default=None,
            metavar="DURATION",
            help="e.g. 30d, 12h (default: the sensorhub.ingest.retention setting)",
        )
        parser.add_argument(
            "--chunk-size",
            type=_positive,
            default=5000,
            help="most rows deleted per transaction (default 5000)",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="say which sensors have events to prune, delete nothing",
        )

    def run(self, args, env) -> int:
        registry = env["registry"]
        engine = registry["dbengine"]
        older_than = args.older_than or registry.settings["sensorhub.ingest.retention"]
        cutoff = now_us() - int(older_than * 1_000_000)
        out = sys.stdout.write
        out(f"pruning events older than {format_timestamp(cutoff)}\n")
        with engine.connect().execution_options(sqlite_begin="DEFERRED") as connection:
            sensors = sensors_with_events(connection)
        started = time.perf_counter()
        total = 0
        for sensor_id in sensors:
            deleted = self._prune_sensor(engine, sensor_id, cutoff, args)
            if deleted:
                total += deleted
                verb = "would delete" if args.dry_run else "deleted"
                out(f"{printable(sensor_id)}: {verb} {deleted} (total {total})\n")
        elapsed = time.perf_counter() - started
        verb = "would delete" if args.dry_run else "deleted"
        out(f"{verb} {total} events from {len(sensors)} sensors in {elapsed:.1f}s\n")
        log.info(
            "events_pruned", deleted=total, cutoff=format_timestamp(cutoff), dry_run=args.dry_run
        )
        return 0 if args.dry_run else total

    @staticmethod
    def _prune_sensor(engine, sensor_id: str, cutoff: int, args) -> int:
        deleted = 0
        while True:
            with engine.begin() as connection:
                if args.dry_run:
                    return count_prunable(connection, sensor_id, cutoff)
                chunk = prune_sensor_chunk(connection, sensor_id, cutoff, args.chunk_size)
            deleted += chunk
            if chunk < args.chunk_size:
                return deleted


command = PruneCommand()
