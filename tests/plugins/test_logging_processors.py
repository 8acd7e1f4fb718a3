"""The logging plugin's processors on their own: what redaction censors and keeps, and how a
record stays one line whatever its values contain."""

from __future__ import annotations

import json

from plugins.logging.processors import (
    dumps_one_line,
    escape_control_characters,
    redact_secrets,
    redact_text,
)

TOKEN = "shs_" + "a1B2" * 9 + "xy"


def redact(**event):
    return redact_secrets(None, "info", event)


def test_secret_keys_are_censored_at_any_depth_and_in_any_case():
    event = redact(
        Authorization="Bearer x",
        nested={
            "X-Api-Key": "k",
            "rows": [
                {"password": "p", "db_password": "q", "Set-Cookie": "c"},
                ("client_secret", 1),
            ],
        },
        admin_token="t",
    )
    assert event == {
        "Authorization": "[REDACTED]",
        "admin_token": "[REDACTED]",
        "nested": {
            "X-Api-Key": "[REDACTED]",
            "rows": [
                {"password": "[REDACTED]", "db_password": "[REDACTED]", "Set-Cookie": "[REDACTED]"},
                ["client_secret", 1],
            ],
        },
    }


def test_public_facts_about_secrets_are_kept():
    assert redact(token_id="tok_1", password=None, reason="token_in_query") == {
        "token_id": "tok_1",
        "password": None,
        "reason": "token_in_query",
    }


def test_tokens_bearer_credentials_and_url_passwords_are_censored_inside_text():
    assert redact_text(f"sensor used {TOKEN}.") == "sensor used shs_[REDACTED]."
    assert redact_text("Authorization: bearer abc,def") == "Authorization: bearer [REDACTED]"
    assert redact_text("Basic dXNlcjpwYXNz") == "Basic [REDACTED]"
    assert (
        redact_text("postgresql+psycopg://app:s3cret@db/sensorhub")
        == "postgresql+psycopg://app:[REDACTED]@db/sensorhub"
    )
    assert redact_text("shs_short") == "shs_short"  # not a token: too short to be one


def test_a_placeholder_in_documentation_text_is_left_readable():
    assert (
        redact_text("send 'Authorization: Bearer <token>'")
        == "send 'Authorization: Bearer <token>'"
    )


def test_objects_are_rendered_before_redaction_so_their_repr_cannot_leak():
    class Credentials:
        def __repr__(self):
            return f"Credentials({TOKEN})"

    assert redact(creds=Credentials(), raw=TOKEN.encode()) == {
        "creds": "Credentials(shs_[REDACTED])",
        "raw": "shs_[REDACTED]",
    }


def test_json_output_is_one_line_whatever_the_values_contain():
    value = "a\nb\rc\x00d\x1be\u2028f\u2029g\x85h"
    line = dumps_one_line({"event": value, "big": 2**80, 3: "int key"})
    assert len(line.splitlines()) == 1
    assert json.loads(line)["event"] == value


def test_console_values_are_escaped_and_a_traceback_is_indented():
    event = escape_control_characters(
        None,
        "info",
        {
            "event": "line\n2026-01-01 [error] forged",
            "agent": "\x1b[31mred",
            "exception": "Traceback (most recent call last):\n  File x\nValueError: a\x1bb\n",
        },
    )
    assert event["event"] == "line\\n2026-01-01 [error] forged"
    assert event["agent"] == "\\x1b[31mred"
    assert event["exception"] == (
        "  Traceback (most recent call last):\n    File x\n  ValueError: a\\x1bb"
    )


def test_scheme_credentials_are_censored_in_any_case_and_in_non_ascii_text():
    assert redact_text("auth BeArEr abc") == "auth BeArEr [REDACTED]"
    assert redact_text("é Bearer abc") == "é Bearer [REDACTED]"
    # Python's case-insensitive matching folds "ſ" (long s) to "s": still a scheme.
    assert redact_text("Baſic dXNlcjpwYXNz") == "Baſic [REDACTED]"
    assert redact_text(f"ünïcode {TOKEN}") == "ünïcode shs_[REDACTED]"


def test_redaction_leaves_the_callers_objects_alone_and_copies_only_what_changes():
    headers = {"Authorization": "Bearer x", "Accept": "text/plain"}
    clean = {"rows": [{"n": 1}, "plain"]}
    event = redact(headers=headers, clean=clean, tags=("a", "b"))
    assert headers == {"Authorization": "Bearer x", "Accept": "text/plain"}  # not mutated
    assert event["headers"] == {"Authorization": "[REDACTED]", "Accept": "text/plain"}
    assert event["clean"] is clean  # nothing to censor: not rebuilt
    assert event["tags"] == ["a", "b"]


def test_a_dict_subclass_becomes_a_plain_dict_so_its_own_repr_is_never_shown():
    class Loud(dict):
        def __repr__(self):
            return TOKEN

    event = redact(mapping=Loud(a=1))
    assert type(event["mapping"]) is dict and event["mapping"] == {"a": 1}
