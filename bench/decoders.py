"""Micro-benchmark of the ingest hot path's JSON decoding, on a realistic 100-event batch body
(the same shape bench/lua/events.lua posts):

- decode only: stdlib ``json.loads`` against ``orjson.loads`` (and ``msgspec`` if installed);
- decode + validate: the ingest plugin's own ``plugins.ingest.parsing.parse_body``, once with
  each decoder when it takes a ``loads`` argument, so the share of decoding in the whole
  parse is visible.

Medians of ``timeit`` repeats (each repeat auto-ranged to about 0.2 s); ratios to stdlib json.
"""

from __future__ import annotations

import importlib
import inspect
import json
import statistics
import time
import timeit
from collections.abc import Callable

INGEST_PARSER = "plugins.ingest.parsing:parse_body"
TYPES = (("temperature", "Cel"), ("humidity", "%RH"), ("pressure", "hPa"), ("battery", "V"))


def batch_body(events: int = 100) -> bytes:
    now_ms = int(time.time()) * 1000
    items = []
    for sequence in range(1, events + 1):
        kind, unit = TYPES[sequence % len(TYPES)]
        items.append(
            {
                "type": kind,
                "value": round(20 + (sequence % 1000) / 100, 2),
                "unit": unit,
                "ts": now_ms,
                "eventId": f"micro-1-{sequence}",
                "data": {"fw": "1.4.2", "rssi": -40 - sequence % 50},
            }
        )
    return json.dumps(items, separators=(",", ":")).encode()


def _median_seconds(fn: Callable[[], object], repeat: int) -> float:
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    return statistics.median(t / number for t in timer.repeat(repeat=repeat, number=number))


def _decoders() -> list[tuple[str, Callable[[bytes], object]]]:
    found: list[tuple[str, Callable[[bytes], object]]] = [("json", json.loads)]
    try:
        import orjson

        found.append(("orjson", orjson.loads))
    except ImportError:
        pass
    try:
        import msgspec

        found.append(("msgspec", msgspec.json.Decoder().decode))
    except ImportError:
        pass
    return found


def _ingest_parser():
    module_name, attr = INGEST_PARSER.split(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError):
        return None


def run(repeat: int = 7) -> dict:
    body = batch_body()
    cases: list[tuple[str, Callable[[], object]]] = []
    for name, loads in _decoders():
        cases.append((f"decode: {name}", lambda loads=loads: loads(body)))
    notes = []
    parser = _ingest_parser()
    if parser is None:
        notes.append(
            f"{INGEST_PARSER} not found: the ingest plugin's parse+validate is not measured"
        )
    else:
        takes_loads = "loads" in inspect.signature(parser).parameters
        parsed = parser(body)
        rejected = len(getattr(parsed, "rejections", []))
        if rejected:
            notes.append(
                f"parse_body rejected {rejected} of the 100 bench events: the "
                "figures below include rejection work"
            )
        for name, loads in _decoders() if takes_loads else [("default", None)]:
            if loads is None:
                cases.append(("parse_body (decode+validate)", lambda: parser(body)))
            else:
                cases.append(
                    (
                        f"parse_body (decode+validate) with {name}",
                        lambda loads=loads: parser(body, loads=loads),
                    )
                )
    results = []
    for name, fn in cases:
        seconds = _median_seconds(fn, repeat)
        results.append({"case": name, "us_per_body": seconds * 1e6, "events_per_s": 100 / seconds})
    baseline = results[0]["us_per_body"]
    for row in results:
        row["x_stdlib_decode"] = baseline / row["us_per_body"]
    return {
        "body_bytes": len(body),
        "events": 100,
        "repeat": repeat,
        "results": results,
        "notes": notes,
    }
