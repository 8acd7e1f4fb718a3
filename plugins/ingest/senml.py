"""SenML (RFC 8428) packs resolved into events, one per record.

Resolution follows RFC 8428 section 4.6: base fields (``bn``, ``bt``, ``bu``, ``bv``, ``bs``,
``bver``) apply to their record and every later one until replaced; the name is ``bn + n``,
the time ``bt + t`` seconds (a total below 2**28 is relative to now, as section 4.5.3 says),
the unit ``u`` else ``bu``, the value ``bv + v``, the sum ``bs + s``.

Mapping to an event: the resolved name is the event ``type`` (so it must fit ``type``'s
charset: a ``/`` in a SenML name is refused with that reason), ``v`` is ``value``; the other
value kinds (``vs``, ``vb``, ``vd``), the sum and ``ut`` go into ``data`` under their SenML
labels, so nothing a sensor sent is silently dropped. Unknown labels are ignored, as the RFC
requires, except "must understand" ones ending in ``_``, which reject the record. A record
after an invalid base field is rejected too (it would otherwise be resolved against the wrong
base).
"""

from __future__ import annotations

import math

from .rejection import Rejection

SENML_VERSION = 10
RELATIVE_TIME_LIMIT = 2**28  # seconds; RFC 8428 section 4.5.3
_BASE = ("bn", "bt", "bu", "bv", "bs", "bver")
_VALUE_KINDS = ("v", "vs", "vb", "vd")
_KNOWN = frozenset(_BASE + _VALUE_KINDS + ("n", "u", "s", "t", "ut"))
_NUMBER = (int, float)


def _finite(value):
    """A JSON number as a finite double (msgspec keeps an integer beyond 64 bits exact: it may
    not fit one), or None; anything else unchanged, for the type check to refuse."""
    if type(value) is int:
        try:
            return float(value)
        except OverflowError:
            return None
    if type(value) is float and not math.isfinite(value):
        return None
    return value


def resolve_senml(records: list, received_at_us: int):
    """Yield, per record, ``(event_dict, ts_us)`` for the event validator or a Rejection."""
    base = {"bn": "", "bt": 0.0, "bu": None, "bv": None, "bs": None, "bver": SENML_VERSION}
    poisoned: str | None = None  # path of an invalid base field seen earlier
    now_s = received_at_us / 1_000_000
    for index, record in enumerate(records):
        path = f"events[{index}]"
        if type(record) is not dict:
            yield Rejection(path, "invalid_senml", "a SenML record must be a JSON object")
            continue
        error = _update_base(base, record, path)
        if error:
            poisoned = poisoned or error.path
            yield error
            continue
        if poisoned:
            yield Rejection(
                path,
                "invalid_senml",
                f"an earlier record's base field "
                f"({poisoned}) is invalid, so this record cannot be resolved",
            )
            continue
        yield _resolve(base, record, path, now_s)


def _update_base(base: dict, record: dict, path: str) -> Rejection | None:
    for label, wanted in (
        ("bn", str),
        ("bu", str),
        ("bt", _NUMBER),
        ("bv", _NUMBER),
        ("bs", _NUMBER),
        ("bver", int),
    ):
        if label not in record:
            continue
        value = record[label]
        if wanted is _NUMBER:
            value = _finite(value)
        if (
            value is None
            or not isinstance(value, wanted)
            or type(value) is bool
            or (type(value) is float and not math.isfinite(value))
        ):
            kind = "a string" if wanted is str else "a number"
            return Rejection(f"{path}.{label}", "invalid_senml", f"{label} must be {kind}")
        if label == "bver" and isinstance(value, int) and value > SENML_VERSION:
            return Rejection(
                f"{path}.bver",
                "invalid_senml",
                f"SenML version {value} is newer than {SENML_VERSION}, the one "
                "this server understands",
            )
        base[label] = value
    return None


def _resolve(base: dict, record: dict, path: str, now_s: float):
    must_understand = sorted(
        label for label in record if label not in _KNOWN and label.endswith("_")
    )
    if must_understand:
        return Rejection(
            f"{path}.{must_understand[0]}",
            "invalid_senml",
            f"must-understand label(s) {', '.join(must_understand)} are not supported",
        )
    for label, wanted in (
        ("n", str),
        ("u", str),
        ("t", _NUMBER),
        ("v", _NUMBER),
        ("s", _NUMBER),
        ("ut", _NUMBER),
        ("vs", str),
        ("vb", bool),
        ("vd", str),
    ):
        value = record.get(label)
        if value is None:
            continue
        if wanted is _NUMBER and type(value) is not bool:
            record[label] = value = _finite(value)  # None: not a number a double can hold
        if (
            value is None
            or not isinstance(value, wanted)
            or (wanted is not bool and type(value) is bool)
        ):
            kind = "a string" if wanted is str else "a boolean" if wanted is bool else "a number"
            return Rejection(f"{path}.{label}", "invalid_senml", f"{label} must be {kind}")
    kinds = [label for label in _VALUE_KINDS if record.get(label) is not None]
    if len(kinds) > 1:
        return Rejection(
            f"{path}.{kinds[1]}",
            "invalid_senml",
            f"a record has at most one value field; got {', '.join(kinds)}",
        )
    name = base["bn"] + (record.get("n") or "")
    if not name:
        return Rejection(f"{path}.n", "invalid_senml", "the record has no name (n or bn)")
    event: dict = {"type": name}
    if "/" in name:  # give the SenML-specific reason rather than the generic charset one
        return Rejection(
            f"{path}.n",
            "invalid_senml",
            f"name {name!r} contains '/'; event types allow A-Z a-z 0-9 _ . : - only",
        )
    data = {}
    if kinds == ["v"]:
        event["value"] = (base["bv"] or 0) + record["v"]
    elif kinds:
        data[kinds[0]] = record[kinds[0]]
    elif base["bv"] is not None:
        event["value"] = base["bv"]
    if record.get("s") is not None:
        data["s"] = (base["bs"] or 0) + record["s"]
        # Two finite doubles may add up to infinity, which JSON cannot carry (it would be
        # stored as null): refused like a value or a time out of range.
        if type(data["s"]) is float and not math.isfinite(data["s"]):
            return Rejection(f"{path}.s", "invalid_senml", "the resolved sum is out of range")
    elif not kinds and base["bv"] is None:
        if base["bs"] is None:
            return Rejection(
                path, "invalid_senml", "the record has no value (v, vs, vb, vd) and no sum (s)"
            )
        data["s"] = base["bs"]
    if record.get("ut") is not None:
        data["ut"] = record["ut"]
    if data:
        event["data"] = data
    unit = record.get("u") or base["bu"]
    if unit is not None:
        event["unit"] = unit
    seconds = base["bt"] + (record.get("t") or 0)
    if seconds < RELATIVE_TIME_LIMIT:
        seconds += now_s
    if not math.isfinite(seconds) or abs(seconds) > 1e11:
        return Rejection(f"{path}.t", "invalid_senml", "the resolved time is out of range")
    return event, round(seconds * 1_000_000)
