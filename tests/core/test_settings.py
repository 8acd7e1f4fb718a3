"""Settings: declared, typed, env > ini > default, and errors an operator can act on."""

import logging

import pytest

from sensorhub.settings import (
    Kind,
    Parser,
    Setting,
    SettingError,
    SettingsTable,
    as_bool,
    as_choice,
    as_database_url,
    as_duration,
    as_float,
    as_int,
    as_list,
    as_size,
    as_str,
    collecting_declarations,
    described,
    env_name_for,
    kind_of,
)

PORT = Setting("sensorhub.port", as_int(0, 65535), 6543, "TCP port")
PARTIAL = Setting("sensorhub.ingest.partial", as_bool, False, "accept batches in part")
TOKEN = Setting("sensorhub.auth.admin_token", default="", secret=True, env="SENSORHUB_ADMIN_TOKEN")


def resolve(setting, ini=None, env=None):
    table = SettingsTable(ini or {}, env or {})
    table.declare([setting], owner="tests")
    return next(iter(table))


def test_env_name_is_derived_from_the_key():
    assert env_name_for("sensorhub.ingest.max_events") == "SENSORHUB_INGEST_MAX_EVENTS"
    assert PORT.env_name == "SENSORHUB_PORT"
    assert TOKEN.env_name == "SENSORHUB_ADMIN_TOKEN"


def test_environment_wins_over_ini_which_wins_over_default():
    assert (resolve(PORT).value, resolve(PORT).source) == (6543, "default")
    from_ini = resolve(PORT, ini={"sensorhub.port": "7000"})
    assert (from_ini.value, from_ini.source) == (7000, "ini")
    from_env = resolve(PORT, ini={"sensorhub.port": "7000"}, env={"SENSORHUB_PORT": "8000"})
    assert (from_env.value, from_env.source) == (8000, "env")


def test_false_in_an_ini_is_false_not_a_truthy_string():
    assert resolve(PARTIAL, ini={"sensorhub.ingest.partial": "false"}).value is False
    assert resolve(PARTIAL, env={"SENSORHUB_INGEST_PARTIAL": "yes"}).value is True


def test_a_bad_value_names_the_key_the_env_variable_the_value_and_what_is_expected():
    with pytest.raises(SettingError) as error:
        resolve(PORT, env={"SENSORHUB_PORT": "eighty"})
    message = str(error.value)
    assert "\n" not in message
    for part in ("sensorhub.port", "SENSORHUB_PORT", "'eighty'", "an integer from 0 to 65535"):
        assert part in message


def test_a_bad_secret_value_is_not_echoed():
    secret_port = Setting("sensorhub.secret_port", as_int(), 1, secret=True)
    with pytest.raises(SettingError) as error:
        resolve(secret_port, ini={"sensorhub.secret_port": "hunter2"})
    assert "hunter2" not in str(error.value)


def test_a_missing_required_setting_says_how_to_set_it():
    required = Setting("sensorhub.database.password", help="the database password")
    with pytest.raises(SettingError) as error:
        resolve(required)
    assert "SENSORHUB_DATABASE_PASSWORD" in str(error.value)
    assert "sensorhub.database.password" in str(error.value)


def test_a_key_cannot_be_declared_twice():
    table = SettingsTable({}, {})
    table.declare([PORT], owner="core")
    with pytest.raises(ValueError, match="declared twice"):
        table.declare([PORT], owner="plugin")


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("250ms", 0.25),
        ("30s", 30),
        ("5m", 300),
        ("12h", 43200),
        ("30d", 2592000),
        ("1w", 604800),
        ("1.5 h", 5400),
        ("0", 0),
    ],
)
def test_durations_read_like_an_operator_writes_them(raw, seconds):
    assert as_duration(raw) == seconds


@pytest.mark.parametrize("raw", ["30", "7", "0.5", "30 days", "-5s", "s", ""])
def test_a_duration_without_a_unit_is_refused_saying_what_is_expected(raw):
    with pytest.raises(ValueError, match="a duration with a unit, such as 500ms, 30s"):
        as_duration(raw)


RETENTION = Setting("sensorhub.ingest.retention", as_duration, 30 * 86400.0, "keep events")


def test_a_bare_number_for_a_retention_stops_start_up_naming_the_setting_and_the_fix():
    with pytest.raises(SettingError) as error:
        resolve(RETENTION, env={"SENSORHUB_INGEST_RETENTION": "30"})
    message = str(error.value)
    assert "\n" not in message
    for part in (
        "sensorhub.ingest.retention",
        "SENSORHUB_INGEST_RETENTION",
        "'30'",
        "a duration with a unit, such as 500ms, 30s, 5m, 12h or 30d",
    ):
        assert part in message
    with pytest.raises(SettingError, match="ini key sensorhub.ingest.retention is '30'"):
        resolve(RETENTION, ini={"sensorhub.ingest.retention": "30"})
    assert resolve(RETENTION, ini={"sensorhub.ingest.retention": "30d"}).value == 2592000


def test_a_bare_duration_in_the_environment_stops_the_app(app_factory):
    with pytest.raises(SettingError, match="SENSORHUB_HEALTH_TIMEOUT.*with a unit"):
        app_factory(environ={"SENSORHUB_HEALTH_TIMEOUT": "2"})


@pytest.mark.parametrize(("raw", "size"), [("1MiB", 1048576), ("64kib", 65536), ("1000", 1000)])
def test_sizes_read_like_an_operator_writes_them(raw, size):
    assert as_size(raw) == size


# --- parsers describe themselves (the settings reference reads this, never their errors)


@pytest.mark.parametrize(
    ("parse", "kind", "shown"),
    [
        (as_str, Kind("string", example="127.0.0.1"), "string"),
        (as_bool, Kind("boolean", example="true"), "boolean"),
        (as_list, Kind("list", example="auth ingest"), "list"),
        (as_int(0, 64), Kind("integer", 0, 64, example="0"), "integer, 0 to 64"),
        (as_int(1), Kind("integer", 1, example="1"), "integer ≥ 1"),
        (as_int(maximum=9), Kind("integer", maximum=9, example="9"), "integer ≤ 9"),
        (as_int(), Kind("integer", example="0"), "integer"),
        (as_float(0.0, 1.0), Kind("number", 0.0, 1.0, example="0.0"), "number, 0.0 to 1.0"),
        (
            as_choice("json", "console"),
            Kind("choice", example="json", choices=("json", "console")),
            "one of: json, console",
        ),
        (as_duration, Kind("duration", unit="s", example="30s"), "duration"),
        (as_size, Kind("size in bytes", unit="B", example="64KiB"), "size in bytes"),
    ],
)
def test_each_parser_carries_what_it_accepts(parse, kind, shown):
    assert isinstance(parse, Parser)
    assert parse.kind == kind == kind_of(parse)
    assert str(parse.kind) == shown


def test_every_example_is_accepted_by_its_parser():
    for parse in (as_str, as_bool, as_list, as_int(1, 64), as_float(0.5), as_choice("a", "b")):
        parse(parse.kind.example)
    assert as_duration(as_duration.kind.example) == 30
    assert as_size(as_size.kind.example) == 65536
    assert as_database_url(as_database_url.kind.example).startswith("postgresql+psycopg://")
    assert as_database_url.kind.name == "database URL"


@pytest.mark.parametrize(
    ("parse", "value", "written"),
    [
        (as_duration, 0.25, "250ms"),
        (as_duration, 60.0, "1m"),
        (as_duration, 30 * 86400.0, "30d"),
        (as_duration, 1.5, "1500ms"),
        (as_duration, 0.0, "0s"),
        (as_size, 1024 * 1024, "1MiB"),
        (as_size, 1000, "1000"),
        (as_bool, False, "false"),
        (as_list, ["healthz", "readyz"], "healthz readyz"),
        (as_int(0, 9), 8, "8"),
    ],
)
def test_a_typed_value_is_written_back_as_an_operator_would_and_reads_the_same(
    parse, value, written
):
    assert parse.show(value) == written
    assert parse(written) == value


def test_a_plugins_own_parser_is_named_after_itself_until_it_is_described():
    def as_secret(raw: str) -> str:
        return raw

    assert kind_of(as_secret) == Kind("secret")

    @described(Kind("level", example="INFO", choices=("DEBUG", "INFO")), show=logging.getLevelName)
    def as_level(raw: str) -> int:
        return {"DEBUG": 10, "INFO": 20}[raw]

    assert as_level("INFO") == 20 and as_level.show(20) == "INFO"
    assert str(kind_of(as_level)) == "one of: DEBUG, INFO"
    assert Setting("sensorhub.x.level", as_level, 20).parse.kind.example == "INFO"


def test_collecting_declarations_leaves_a_required_setting_unset_instead_of_failing():
    required = Setting("sensorhub.database.password", help="the database password")
    with collecting_declarations():
        resolved = resolve(required)
    assert (resolved.value, resolved.source) == (None, "missing")
    with pytest.raises(SettingError, match="missing required"):
        resolve(required)


def test_lists_take_spaces_or_commas():
    assert as_list("auth, ingest  metrics,logging") == ["auth", "ingest", "metrics", "logging"]
    assert as_list("") == []


def test_secrets_are_masked_and_database_passwords_hidden():
    token = resolve(TOKEN, env={"SENSORHUB_ADMIN_TOKEN": "s3cret-admin-token"})
    assert SettingsTable.display_value(token) == "********"
    url = Setting("sensorhub.database.url", default="", secret=True)
    shown = SettingsTable.display_value(
        resolve(url, ini={"sensorhub.database.url": "postgresql://app:pw123@db/sensorhub"})
    )
    assert "pw123" not in shown and "db/sensorhub" in shown


def test_typed_values_reach_registry_settings(app_factory):
    app = app_factory(environ={"SENSORHUB_PORT": "7001", "SENSORHUB_HEALTH_TIMEOUT": "500ms"})
    assert app.registry.settings["sensorhub.port"] == 7001
    assert app.registry.settings["sensorhub.health.timeout"] == 0.5


def test_the_app_refuses_to_start_on_a_bad_env_value(app_factory):
    with pytest.raises(SettingError, match="SENSORHUB_DATABASE_POOL_SIZE"):
        app_factory(environ={"SENSORHUB_DATABASE_POOL_SIZE": "many"})


def test_paste_entry_point_turns_a_setting_error_into_one_line_and_exit(monkeypatch):
    from sensorhub import main

    monkeypatch.setenv("SENSORHUB_PORT", "not-a-port")
    with pytest.raises(SystemExit) as stop:
        main({}, **{"sensorhub.database.url": "sqlite://"})
    assert str(stop.value).startswith("sensorhub: cannot start: invalid setting sensorhub.port")


def test_a_mistyped_ini_key_is_reported_with_the_likely_intended_one(app_factory):
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        app_factory(settings={"sensorhub.health.timeuot": "1s", "sensorhub.metrics.path": "/m"})
    unknown = [entry for entry in logs if entry["event"] == "unknown_setting"]
    assert unknown == [
        {
            "event": "unknown_setting",
            "key": "sensorhub.health.timeuot",
            "did_you_mean": "sensorhub.health.timeout",
            "log_level": "warning",
        }
    ]
