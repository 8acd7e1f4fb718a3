"""The processors that make a log line safe: redaction, control-character escaping, rendering.

Redaction runs on every record after its traceback was turned into data, so a secret in an
exception message is censored too. It censors:

- the value of any key (at any depth, in dicts, lists and tuples) whose name contains
  ``token``, ``password``, ``passwd``, ``secret``, ``authorization``, ``cookie``, ``api_key`` /
  ``apikey``, ``credential`` or ``provisioning_key`` (case-insensitive; ``-`` counts as ``_``),
  except the keys in :data:`PUBLIC_KEYS` (a token's public id is an audit fact, not a secret);
- inside any string: SensorHub tokens (``shs_`` + 30 or more letters/digits), the credential
  after ``Bearer``/``Basic``, and the password in a URL's ``user:password@``.

Objects that are neither containers nor plain values are rendered with ``repr`` first, so a
secret cannot hide in an object's ``repr``.

JSON output is one line per record: orjson escapes every control character below U+0020, and
:func:`dumps_one_line` also escapes U+0085, U+2028 and U+2029, which some readers (Python's
``splitlines``, JavaScript) treat as line breaks. Console output escapes control characters in
every value (:func:`escape_control_characters`); a traceback keeps its own line breaks but is
indented, so nothing in it can pass for a record of its own.
"""

from __future__ import annotations

import datetime
import functools
import json
import re
import uuid
from collections.abc import MutableMapping
from typing import Any

import orjson
from structlog.typing import EventDict, WrappedLogger

from sensorhub.identity import TOKEN_IN_TEXT, TOKEN_PREFIX

REDACTED = "[REDACTED]"
PUBLIC_KEYS = frozenset({"token_id"})
_MAX_DEPTH = 12

_SENSITIVE_KEY = re.compile(
    r"token|passw(?:or)?d|secret|authorization|cookie|api_?key|credential|provisioning_key"
)
# A placeholder such as "Bearer <token>" (in help texts) is documentation, not a credential.
_SECRET_IN_TEXT = re.compile(
    rf"(?P<token>{TOKEN_IN_TEXT})"
    r"|(?P<scheme>\b(?i:bearer|basic)\s+)(?!<\w+>[\"'.,;)]*(?:\s|$))\S+"
    r"|(?P<userinfo>://[^/\s:@]*:)[^/\s@]+(?=@)"
)

_PLAIN = (int, float, bool, type(None), datetime.datetime, datetime.date, uuid.UUID)


@functools.lru_cache(maxsize=4096)
def is_sensitive_key(key: str) -> bool:
    normalized = key.lower().replace("-", "_")
    return normalized not in PUBLIC_KEYS and _SENSITIVE_KEY.search(normalized) is not None


def _censor_match(match: re.Match) -> str:
    if match["token"]:
        return TOKEN_PREFIX + REDACTED
    return (match["scheme"] or match["userinfo"]) + REDACTED


def redact_text(text: str) -> str:
    # Most strings hold none of the literals a match needs: a substring test answers for them
    # faster than the pattern scans them. Only for ASCII text, where (?i) means ASCII case and
    # lower() is exact; other text (where "ſ" matches "s", say) always goes to the pattern.
    if text.isascii() and "shs_" not in text and "://" not in text:
        lowered = text.lower()
        if "bearer" not in lowered and "basic" not in lowered:
            return text
    return _SECRET_IN_TEXT.sub(_censor_match, text)


def redact_value(value: Any, depth: int = 0) -> Any:
    """``value`` with its secrets censored: the same object when it holds none (a container is
    copied only when something in it changes; tuples and sets always become lists)."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, _PLAIN):
        return value
    if depth >= _MAX_DEPTH:
        return "[…]"
    if isinstance(value, dict):
        redacted = _redact_items(value, depth, copy=True)
        # A subclass could show its own repr (the console renderer's): always a plain dict.
        return redacted if type(redacted) is dict else dict(redacted)
    if isinstance(value, list | tuple | set | frozenset):
        items = [redact_value(item, depth + 1) for item in value]
        if type(value) is list and all(new is old for new, old in zip(items, value, strict=True)):
            return value
        return items
    if isinstance(value, bytes):
        return redact_text(value.decode("utf-8", "backslashreplace"))
    return redact_text(repr(value))


def _redact_items(mapping: MutableMapping, depth: int, copy: bool) -> MutableMapping:
    """Censors ``mapping``'s values; in a copy made at the first change when ``copy``, else in
    place (the event dict itself: structlog makes a new one for every call)."""
    result = mapping
    for key, item in mapping.items():
        if isinstance(key, str) and is_sensitive_key(key) and item is not None:
            new = REDACTED
        elif isinstance(item, str):  # the common cases first, without a call
            new = redact_text(item)
        elif isinstance(item, _PLAIN):
            continue
        else:
            new = redact_value(item, depth + 1)
        if new is not item:
            if result is mapping and copy:
                result = dict(mapping)
            result[key] = new  # an existing key: no resizing while the loop iterates
    return result


def redact_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Processor: censor secrets by key name and by pattern, at any depth."""
    return _redact_items(event_dict, 0, copy=False)


# --- console

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_KEEP_NEWLINE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(match: re.Match) -> str:
    char = match.group()
    return _NAMED.get(char) or (
        f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"
    )


def escape_control_characters(
    _logger: WrappedLogger, _method: str, event_dict: EventDict
) -> EventDict:
    """Processor (console): no value can break a line, forge a record or send terminal escapes.

    Nested containers are left alone: the console renderer shows them with ``repr``, which
    escapes by itself. A traceback keeps its line breaks and is indented by two spaces.
    """
    for key, value in event_dict.items():
        if not isinstance(value, str):
            continue
        if key == "exception":
            escaped = _CONTROL_KEEP_NEWLINE.sub(_escape_char, value)
            event_dict[key] = "  " + escaped.rstrip("\n").replace("\n", "\n  ")
        elif _CONTROL.search(value):
            event_dict[key] = _CONTROL.sub(_escape_char, value)
    return event_dict


# --- JSON

_LINE_SEPARATORS = (
    (b"\xc2\x85", b"\\u0085"),
    (b"\xe2\x80\xa8", b"\\u2028"),
    (b"\xe2\x80\xa9", b"\\u2029"),
)


def _fallback(value: Any) -> str:
    return repr(value)


_ESSENTIALS = ("timestamp", "level", "logger", "event", "request_id")


def put_essentials_first(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Processor (JSON): the keys a reader scans for come first in every line."""
    ordered = {key: event_dict.pop(key) for key in _ESSENTIALS if key in event_dict}
    ordered.update(event_dict)
    return ordered


def dumps_one_line(event_dict: dict, **_ignored) -> str:
    """JSONRenderer's serializer: orjson, one line guaranteed, never an exception.

    orjson refuses a few values (integers beyond 64 bits, odd keys); those records fall back to
    the stdlib encoder with ASCII output rather than being lost.
    """
    try:
        data = orjson.dumps(event_dict, default=_fallback, option=orjson.OPT_NON_STR_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(event_dict, default=_fallback, ensure_ascii=True)
    for raw, escaped in _LINE_SEPARATORS:
        if raw in data:
            data = data.replace(raw, escaped)
    return data.decode("utf-8")
