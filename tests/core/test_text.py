"""sensorhub.text: what an operator's terminal is shown of stored data."""

import json

import pytest

from sensorhub.text import printable, to_json


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        ("\x1b[31mred", r"\x1b[31mred"),  # an escape sequence: colours, cursor moves, titles
        ("a\x85b", r"a\x85b"),  # a C1 control (NEL)
        ("one\u2028two\u2029", r"one\u2028two\u2029"),  # line and paragraph separators
        ("\u202egnp.exe", r"\u202egnp.exe"),  # a bidi override reverses what follows
        ("tab\tand\nnewline", r"tab\tand\nnewline"),
    ],
)
def test_unprintable_characters_are_shown_as_their_escapes(stored, shown):
    assert printable(stored) == shown


def test_printable_text_is_shown_as_it_is_accents_and_all():
    assert printable("Zürich 東京 sen_01") == "Zürich 東京 sen_01"


def test_json_is_ascii_and_decodes_to_the_stored_text():
    value = {"name": "\x1b[2J\u202e\u2028Zürich"}
    written = to_json(value)
    assert written.isascii() and written.endswith("\n")
    assert json.loads(written) == value
