"""Text shown to an operator's terminal: what came from stored data is escaped first.

A sensor name or token hint stored before names were validated may hold an escape sequence
(``"\\x1b[31m"``), a C1 control, a line separator (U+2028) or a bidi override (U+202E) that
would recolour, rewrite or reorder what the operator reads. Every ``sensorhub-admin`` table
cell and error line goes through :func:`printable`; JSON output goes through :func:`to_json`.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any


def printable(text: str) -> str:
    """``text`` with every character Python does not call printable (controls, format
    characters such as bidi overrides, line and paragraph separators) written as its escape,
    e.g. ``\\x1b`` or ``\\u202e``; printable text, accents and all, is returned as it is."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def to_json(value: Any) -> str:
    """Indented JSON for scripts, ASCII only: json's ``ensure_ascii`` writes every non-ASCII
    character (U+2028 and U+202E among them) as ``\\uXXXX``, and control characters are escaped
    by JSON itself, so the output is safe on a terminal and still decodes to the stored text."""
    return json.dumps(value, indent=2, ensure_ascii=True, default=_json_default) + "\n"


def _json_default(value: Any) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
