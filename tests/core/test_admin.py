"""sensorhub-admin: one-off processes with the app's own settings."""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from sensorhub.scripts.admin import add_config_uri, build_parser
from sensorhub.scripts.admin import main as admin

ADMIN = str(Path(sys.executable).parent / "sensorhub-admin")


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
    code, out = run_admin(capsys, "settings", str(ini_file), "--json")
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


def test_a_setting_that_stops_the_app_exits_2_with_its_one_line(tmp_path, capsys):
    bad_ini = tmp_path / "bad.ini"
    bad_ini.write_text(
        "[app:main]\nuse = egg:sensorhub\n"
        "sensorhub.database.url = sqlite:////proc/forbidden/x.sqlite\n"
    )
    assert admin(["migrate", str(bad_ini)]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("sensorhub-admin migrate: sensorhub: cannot start: ")
    assert "point it at a writable path" in line


def test_every_command_takes_the_ini_first_whatever_order_it_adds_arguments_in():
    """The runner makes the ini the first positional of every command's parser, nested
    actions (``sensor show``) included, so a plugin's command cannot get the order wrong."""
    parser = build_parser()
    args = parser.parse_args(["sensor", "show", "development.ini", "sen_1"])
    assert (args.config_uri, args.sensor_id) == ("development.ini", "sen_1")
    args = parser.parse_args(["prune", "development.ini", "--older-than", "30d"])
    assert (args.config_uri, args.older_than) == ("development.ini", 30 * 86400)


def test_add_config_uri_puts_the_ini_first_even_when_called_last():
    parser = argparse.ArgumentParser()
    parser.add_argument("sensor_id")
    add_config_uri(parser)
    add_config_uri(parser)  # once more, as the runner does: still one ini, first
    args = parser.parse_args(["site.ini", "sen_1"])
    assert (args.config_uri, args.sensor_id) == ("site.ini", "sen_1")
    assert parser.format_usage().split()[-2:] == ["INI", "sensor_id"]


# --- operator mistakes, as an operator meets them: a real process, one line on stderr


def run_process(*argv, cwd):
    """``sensorhub-admin <argv>`` in a process of its own (killed if it outlives the timeout)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SENSORHUB_")}
    return subprocess.run(
        [ADMIN, *argv], cwd=cwd, env=environ, capture_output=True, text=True, timeout=120
    )


def one_line(result) -> str:
    """The operator's line: stderr holds it and, with the logging plugin, log records (JSON
    objects, one a line, when stderr is not a terminal), never a traceback."""
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if not line.startswith('{"timestamp"')]
    return line


@pytest.fixture
def plugin_ini(tmp_path):
    """An ini with the auth plugin and the logging plugin (which writes an admin command's logs
    to stderr: they must not add to the one line) on a database never migrated."""
    path = tmp_path / "site.ini"
    path.write_text(f"""
[app:main]
use = egg:sensorhub
sensorhub.plugins = logging auth
sensorhub.database.url = sqlite:///{tmp_path / "site.sqlite"}
""")
    return path


def test_a_missing_ini_is_named_with_what_to_give_instead(tmp_path):
    result = run_process("sensor", "list", "nowhere.ini", cwd=tmp_path)
    assert result.returncode == 2
    assert one_line(result) == (
        "sensorhub-admin sensor list: nowhere.ini: no such ini file; "
        "give the path of one, e.g. development.ini"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_ini_says_so(plugin_ini):
    plugin_ini.chmod(0)
    result = run_process("migrate", str(plugin_ini), cwd=plugin_ini.parent)
    assert result.returncode == 2
    assert one_line(result).endswith("cannot read it (permission denied); run as a user who can")


def test_a_file_that_is_not_a_sensorhub_ini_says_what_it_needs(tmp_path):
    (tmp_path / "other.ini").write_text("[something]\nkey = value\n")
    result = run_process("migrate", "other.ini", cwd=tmp_path)
    assert result.returncode == 2
    assert one_line(result).endswith(
        "it needs an [app:main] section with use = egg:sensorhub, as development.ini has"
    )


def test_an_unknown_command_points_at_help(tmp_path):
    result = run_process("sensors", "development.ini", cwd=tmp_path)
    assert result.returncode == 2
    line = one_line(result)
    assert line.startswith("sensorhub-admin: argument COMMAND: invalid choice: 'sensors'")
    assert line.endswith("; see: sensorhub-admin --help")


def test_a_database_not_yet_migrated_says_to_run_migrate(plugin_ini):
    result = run_process("sensor", "list", "site.ini", cwd=plugin_ini.parent)
    assert result.returncode == 1
    assert one_line(result) == (
        "sensorhub-admin sensor list: the database is not migrated to this version (missing "
        "tables or columns): run sensorhub-admin migrate site.ini"
    )


def test_an_unknown_sensor_id_says_where_to_find_the_ids(plugin_ini):
    assert run_process("migrate", "site.ini", cwd=plugin_ini.parent).returncode == 0
    result = run_process("sensor", "show", "site.ini", "sen_nope", cwd=plugin_ini.parent)
    assert result.returncode == 1
    assert one_line(result) == (
        "sensorhub-admin sensor show: no sensor sen_nope; see the sensors there are: "
        "sensorhub-admin sensor list site.ini"
    )


def test_admin_processes_are_told_apart_from_servers(ini_file):
    """Plugins see registry["sensorhub.process"]: the logging plugin sends an admin command's
    logs to stderr so its stdout stays the command's own output."""
    from pyramid.paster import bootstrap

    env = bootstrap(str(ini_file), options={"sensorhub.process": "admin"})
    try:
        assert env["registry"]["sensorhub.process"] == "admin"
    finally:
        env["closer"]()


def test_a_command_missing_its_arguments_names_them_in_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        admin(["sensor", "show"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        "sensorhub-admin sensor show: the following arguments are required: INI, sensor_id; "
        "see: sensorhub-admin sensor show --help\n"
    )
