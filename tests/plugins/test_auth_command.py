"""``sensorhub-admin sensor …``: an operator manages sensors from a shell, with the app's own
settings and database (run here through ``sensorhub.scripts.admin.main``)."""

import json

import pytest
import webtest
from sqlalchemy import update

from sensorhub.models.sensor import Sensor
from sensorhub.scripts.admin import main as admin
from tests.conftest import empty_all_tables
from tests.plugins.test_auth_support import AUTH_SETTINGS, bearer


@pytest.fixture(scope="module")
def plugins():
    return ["auth"]


@pytest.fixture(scope="module")
def app_settings():
    # A command is another app (in production, another process): its changes reach the server
    # within the lookup TTL. With none, the server sees each change at its next request.
    return {**AUTH_SETTINGS, "sensorhub.auth.token_cache_ttl": "0"}


@pytest.fixture(autouse=True)
def engines_disposed(monkeypatch):
    """Each command bootstraps its own app and engine; close its connections when it ends
    (the runner's closer does not, and PostgreSQL connections left to the garbage collector
    raise ResourceWarning)."""
    import sensorhub.scripts.admin as runner

    def bootstrap(*args, **kwargs):
        env = real_bootstrap(*args, **kwargs)
        close = env["closer"]

        def closer():
            close()
            env["registry"]["dbengine"].dispose()

        env["closer"] = closer
        return env

    real_bootstrap = runner.bootstrap
    monkeypatch.setattr(runner, "bootstrap", bootstrap)


@pytest.fixture
def ini_file(tmp_path, database_url, dbengine):
    path = tmp_path / "admin.ini"
    path.write_text(f"""
[app:main]
use = egg:sensorhub
sensorhub.plugins = auth
sensorhub.database.url = {database_url}
""")
    yield str(path)
    empty_all_tables(dbengine)  # the commands commit for real


@pytest.fixture
def client(app):
    return webtest.TestApp(app)


def sensor(capsys, action, ini_file, *argv):
    """Run ``sensorhub-admin sensor <action> <ini> <argv>`` and return its JSON output."""
    capsys.readouterr()  # drop what the app logged before
    assert admin(["sensor", action, ini_file, *argv]) == 0
    captured = capsys.readouterr()
    return json.loads(captured.out)


def test_operator_creates_a_sensor_whose_token_works_at_once(ini_file, capsys, client):
    [created] = sensor(
        capsys, "create", ini_file, "--name", "roof", "--metadata", '{"site": "north"}', "--json"
    )
    assert created["token"].startswith("shs_")
    answer = client.get("/api/v1/sensor", headers=bearer(created["token"])).json
    assert answer["name"] == "roof" and answer["metadata"] == {"site": "north"}


def test_the_token_is_printed_once_with_a_reminder_on_stderr(ini_file, capsys):
    assert admin(["sensor", "create", ini_file, "--name", "roof"]) == 0
    captured = capsys.readouterr()
    assert "shs_" in captured.out and "not shown again" in captured.err
    assert "shs_" not in captured.err


def test_list_prints_a_table_or_json(ini_file, capsys):
    [created] = sensor(capsys, "create", ini_file, "--name", "cellar", "--json")
    assert admin(["sensor", "list", ini_file]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["SENSORID", "NAME", "DISABLED", "ACTIVETOKENS"]
    assert table[1].split()[:4] == [created["sensorId"], "cellar", "False", "1"]
    rows = sensor(capsys, "list", ini_file, "--json")
    assert [(r["sensorId"], r["activeTokens"]) for r in rows] == [(created["sensorId"], 1)]


def test_rotate_then_revoke_the_old_token(ini_file, capsys, client):
    [old] = sensor(capsys, "create", ini_file, "--name", "mast", "--json")
    [new] = sensor(capsys, "rotate", ini_file, old["sensorId"], "--expires-in", "90d", "--json")
    assert new["expiresAt"]
    for token in (old["token"], new["token"]):
        client.get("/api/v1/sensor", headers=bearer(token), status=200)

    [revoked] = sensor(
        capsys, "revoke", ini_file, old["sensorId"], "--token", old["tokenId"], "--json"
    )
    assert revoked["state"] == "revoked"
    client.get("/api/v1/sensor", headers=bearer(old["token"]), status=401)
    client.get("/api/v1/sensor", headers=bearer(new["token"]), status=200)

    shown = sensor(capsys, "show", ini_file, old["sensorId"], "--json")
    assert {t["tokenId"]: t["state"] for t in shown} == {
        old["tokenId"]: "revoked",
        new["tokenId"]: "active",
    }


def test_rotate_with_revoke_others_leaves_one_token(ini_file, capsys, client):
    [old] = sensor(capsys, "create", ini_file, "--name", "mast", "--json")
    [new] = sensor(capsys, "rotate", ini_file, old["sensorId"], "--revoke-others", "--json")
    assert new["revokedOthers"] == 1
    client.get("/api/v1/sensor", headers=bearer(old["token"]), status=401)
    client.get("/api/v1/sensor", headers=bearer(new["token"]), status=200)


def test_disable_and_enable_a_sensor(ini_file, capsys, client):
    [created] = sensor(capsys, "create", ini_file, "--name", "gate", "--json")
    [row] = sensor(capsys, "disable", ini_file, created["sensorId"], "--json")
    assert row["disabled"] is True
    client.get("/api/v1/sensor", headers=bearer(created["token"]), status=401)
    sensor(capsys, "disable", ini_file, created["sensorId"], "--enable", "--json")
    client.get("/api/v1/sensor", headers=bearer(created["token"]), status=200)


def test_revoke_all(ini_file, capsys, client):
    [created] = sensor(capsys, "create", ini_file, "--name", "gate", "--json")
    sensor(capsys, "rotate", ini_file, created["sensorId"], "--json")
    rows = sensor(capsys, "revoke", ini_file, created["sensorId"], "--all", "--json")
    assert {r["state"] for r in rows} == {"revoked"} and len(rows) == 2


@pytest.mark.parametrize(
    ("action", "argv", "message"),
    [
        ("show", ["sen_nope"], "no sensor sen_nope; see the sensors there are: "),
        ("revoke", ["{id}", "--token", "tok_nope"], "has no token tok_nope; see its tokens: "),
        ("create", ["--name", " "], "name: required"),
        ("create", ["--name", "x", "--metadata", "{oops"], "--metadata is not valid JSON"),
    ],
)
def test_operator_mistakes_exit_1_with_one_line(ini_file, capsys, action, argv, message):
    [created] = sensor(capsys, "create", ini_file, "--name", "x", "--json")
    argv = [created["sensorId"] if arg == "{id}" else arg for arg in argv]
    assert admin(["sensor", action, ini_file, *argv]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"sensorhub-admin sensor {action}: ")
    assert message in line


@pytest.mark.parametrize("action", [["create", "--name", "x"], ["rotate", "sen_x"]])
@pytest.mark.parametrize(
    "lifetime, message",
    [
        ("90", "expected a duration with a unit, such as 500ms, 30s"),
        ("0", "must be more than 0"),  # not a token that never expires
    ],
)
def test_a_token_lifetime_without_a_unit_or_of_zero_is_refused_before_anything_runs(
    capsys, action, lifetime, message
):
    with pytest.raises(SystemExit) as exit_info:
        admin(["sensor", action[0], "no-such.ini", *action[1:], "--expires-in", lifetime])
    assert exit_info.value.code == 2
    assert f"argument --expires-in: {message}" in capsys.readouterr().err


def test_the_old_order_with_the_ini_last_still_works_for_one_release(ini_file, capsys):
    [created] = sensor(capsys, "create", ini_file, "--name", "attic", "--json")
    assert admin(["sensor", "show", created["sensorId"], "--json", ini_file]) == 0
    captured = capsys.readouterr()
    assert [token["tokenId"] for token in json.loads(captured.out)] == [created["tokenId"]]
    [line] = captured.err.splitlines()
    assert line == (
        f"sensorhub-admin sensor show: deprecated: the ini goes first, as in "
        f"'sensorhub-admin sensor show {ini_file} {created['sensorId']}'; the ini-last order "
        "stops working in the next release"
    )


HOSTILE_NAME = "\x1b[31mred\x1b[0m \u202egnp.exe \u2028next line\x85"


@pytest.fixture
def hostile_sensor(ini_file, capsys, dbengine):
    """A sensor whose name and metadata were stored before names refused control characters:
    written straight into the database, past every check."""
    [created] = sensor(capsys, "create", ini_file, "--name", "plain", "--json")
    with dbengine.begin() as connection:
        connection.execute(
            update(Sensor)
            .where(Sensor.id == created["sensorId"])
            .values(name=HOSTILE_NAME, meta={"site": "\x1b]0;owned\x07"})
        )
    return created


def test_a_table_escapes_unprintable_characters_of_stored_names(ini_file, capsys, hostile_sensor):
    assert admin(["sensor", "list", ini_file]) == 0
    out = capsys.readouterr().out
    assert r"\x1b[31mred\x1b[0m \u202egnp.exe \u2028next line\x85" in out
    assert all(line.isprintable() for line in out.split("\n"))  # one row, one line


def test_json_output_escapes_them_and_still_decodes_to_the_stored_text(
    ini_file, capsys, hostile_sensor
):
    assert admin(["sensor", "list", ini_file, "--json"]) == 0
    out = capsys.readouterr().out
    assert out.isascii() and "\x1b" not in out
    [row] = json.loads(out)
    assert row["name"] == HOSTILE_NAME and row["metadata"] == {"site": "\x1b]0;owned\x07"}


def test_an_error_line_escapes_what_the_operator_typed(ini_file, capsys):
    assert admin(["sensor", "show", ini_file, "sen_\x1b[2J"]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert r"no sensor sen_\x1b[2J;" in line and "\x1b" not in line
