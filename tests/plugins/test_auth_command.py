"""``sensorhub-admin sensor …``: an operator manages sensors from a shell, with the app's own
settings and database (run here through ``sensorhub.scripts.admin.main``)."""

import json

import pytest
import webtest

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


def sensor(capsys, *argv):
    """Run ``sensorhub-admin sensor <argv>`` and return its JSON output."""
    capsys.readouterr()  # drop what the app logged before
    assert admin(["sensor", *argv]) == 0
    captured = capsys.readouterr()
    return json.loads(captured.out)


def test_operator_creates_a_sensor_whose_token_works_at_once(ini_file, capsys, client):
    [created] = sensor(
        capsys, "create", "--name", "roof", "--metadata", '{"site": "north"}', "--json", ini_file
    )
    assert created["token"].startswith("shs_")
    answer = client.get("/api/v1/sensor", headers=bearer(created["token"])).json
    assert answer["name"] == "roof" and answer["metadata"] == {"site": "north"}


def test_the_token_is_printed_once_with_a_reminder_on_stderr(ini_file, capsys):
    assert admin(["sensor", "create", "--name", "roof", ini_file]) == 0
    captured = capsys.readouterr()
    assert "shs_" in captured.out and "not shown again" in captured.err
    assert "shs_" not in captured.err


def test_list_prints_a_table_or_json(ini_file, capsys):
    [created] = sensor(capsys, "create", "--name", "cellar", "--json", ini_file)
    assert admin(["sensor", "list", ini_file]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["SENSORID", "NAME", "DISABLED", "ACTIVETOKENS"]
    assert table[1].split()[:4] == [created["sensorId"], "cellar", "False", "1"]
    rows = sensor(capsys, "list", "--json", ini_file)
    assert [(r["sensorId"], r["activeTokens"]) for r in rows] == [(created["sensorId"], 1)]


def test_rotate_then_revoke_the_old_token(ini_file, capsys, client):
    [old] = sensor(capsys, "create", "--name", "mast", "--json", ini_file)
    [new] = sensor(capsys, "rotate", old["sensorId"], "--expires-in", "90d", "--json", ini_file)
    assert new["expiresAt"]
    for token in (old["token"], new["token"]):
        client.get("/api/v1/sensor", headers=bearer(token), status=200)

    [revoked] = sensor(
        capsys, "revoke", old["sensorId"], "--token", old["tokenId"], "--json", ini_file
    )
    assert revoked["state"] == "revoked"
    client.get("/api/v1/sensor", headers=bearer(old["token"]), status=401)
    client.get("/api/v1/sensor", headers=bearer(new["token"]), status=200)

    shown = sensor(capsys, "show", old["sensorId"], "--json", ini_file)
    assert {t["tokenId"]: t["state"] for t in shown} == {
        old["tokenId"]: "revoked",
        new["tokenId"]: "active",
    }


def test_rotate_with_revoke_others_leaves_one_token(ini_file, capsys, client):
    [old] = sensor(capsys, "create", "--name", "mast", "--json", ini_file)
    [new] = sensor(capsys, "rotate", old["sensorId"], "--revoke-others", "--json", ini_file)
    assert new["revokedOthers"] == 1
    client.get("/api/v1/sensor", headers=bearer(old["token"]), status=401)
    client.get("/api/v1/sensor", headers=bearer(new["token"]), status=200)


def test_disable_and_enable_a_sensor(ini_file, capsys, client):
    [created] = sensor(capsys, "create", "--name", "gate", "--json", ini_file)
    [row] = sensor(capsys, "disable", created["sensorId"], "--json", ini_file)
    assert row["disabled"] is True
    client.get("/api/v1/sensor", headers=bearer(created["token"]), status=401)
    sensor(capsys, "disable", created["sensorId"], "--enable", "--json", ini_file)
    client.get("/api/v1/sensor", headers=bearer(created["token"]), status=200)


def test_revoke_all(ini_file, capsys, client):
    [created] = sensor(capsys, "create", "--name", "gate", "--json", ini_file)
    sensor(capsys, "rotate", created["sensorId"], "--json", ini_file)
    rows = sensor(capsys, "revoke", created["sensorId"], "--all", "--json", ini_file)
    assert {r["state"] for r in rows} == {"revoked"} and len(rows) == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["show", "sen_nope"], "no sensor sen_nope"),
        (["revoke", "{id}", "--token", "tok_nope"], "has no token tok_nope"),
        (["create", "--name", " "], "name: required"),
        (["create", "--name", "x", "--metadata", "{oops"], "not valid JSON"),
    ],
)
def test_operator_mistakes_exit_non_zero_with_one_line(ini_file, capsys, argv, message):
    [created] = sensor(capsys, "create", "--name", "x", "--json", ini_file)
    argv = [created["sensorId"] if arg == "{id}" else arg for arg in argv]
    with pytest.raises(SystemExit) as exit_info:
        admin(["sensor", *argv, ini_file])
    assert message in str(exit_info.value.code)
    assert "Traceback" not in capsys.readouterr().err


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
        admin(["sensor", *action, "--expires-in", lifetime, "no-such.ini"])
    assert exit_info.value.code == 2
    assert f"argument --expires-in: {message}" in capsys.readouterr().err
