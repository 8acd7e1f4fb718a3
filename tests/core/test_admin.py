"""sensorhub-admin: one-off processes with the app's own settings."""

import json

import pytest
from sqlalchemy import create_engine, inspect

from sensorhub.scripts.admin import main as admin


@pytest.fixture
def ini_file(tmp_path):
    database = tmp_path / "admin.sqlite"
    path = tmp_path / "admin.ini"
    path.write_text(f"""
[app:main]
use = egg:sensorhub
sensorhub.plugins =
sensorhub.database.url = sqlite:///{database}
sensorhub.threads = 4
""")
    return path


def run_admin(capsys, *argv):
    exit_code = admin(list(argv))
    return exit_code, capsys.readouterr().out


def test_settings_shows_each_value_and_where_it_came_from(ini_file, capsys, monkeypatch):
    monkeypatch.setenv("SENSORHUB_PORT", "7777")
    code, out = run_admin(capsys, "settings", "--json", str(ini_file))
    assert code == 0
    rows = {row["key"]: row for row in json.loads(out)}
    assert rows["sensorhub.port"] == {
        "key": "sensorhub.port",
        "value": "7777",
        "source": "env",
        "env": "SENSORHUB_PORT",
        "owner": "core",
    }
    assert rows["sensorhub.threads"]["source"] == "ini"
    assert rows["sensorhub.health.timeout"]["source"] == "default"


def test_settings_masks_secrets(ini_file, capsys, monkeypatch):
    monkeypatch.setenv("SENSORHUB_DATABASE_URL", "postgresql+psycopg://app:pa55word@db/x")
    code, out = run_admin(capsys, "settings", str(ini_file))
    assert code == 0
    assert "pa55word" not in out
    assert "SENSORHUB_DATABASE_URL" in out and "env" in out


def test_migrate_creates_the_schema_and_is_safe_to_repeat(ini_file, capsys, tmp_path):
    for _ in range(2):
        code, out = run_admin(capsys, "migrate", str(ini_file))
        assert code == 0
        assert out.splitlines()[-1].startswith("database at ")
    tables = inspect(create_engine(f"sqlite:///{tmp_path / 'admin.sqlite'}")).get_table_names()
    assert {"sensors", "alembic_version"} <= set(tables)


def test_a_failing_command_exits_non_zero_with_one_line(tmp_path, capsys):
    bad_ini = tmp_path / "bad.ini"
    bad_ini.write_text(
        "[app:main]\nuse = egg:sensorhub\n"
        "sensorhub.database.url = sqlite:////proc/forbidden/x.sqlite\n"
    )
    with pytest.raises(SystemExit):
        admin(["migrate", str(bad_ini)])


def test_admin_processes_are_told_apart_from_servers(ini_file):
    """Plugins see registry["sensorhub.process"]: the logging plugin sends an admin command's
    logs to stderr so its stdout stays the command's own output."""
    from pyramid.paster import bootstrap

    env = bootstrap(str(ini_file), options={"sensorhub.process": "admin"})
    try:
        assert env["registry"]["sensorhub.process"] == "admin"
    finally:
        env["closer"]()
