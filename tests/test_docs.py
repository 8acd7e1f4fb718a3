"""The operator and plugin-author docs say what the code does.

The settings reference in docs/operations.md is generated from the settings table; this fails
when they disagree and says how to regenerate it (``make docs``). Settings named in the prose
must exist, links must resolve, and every built-in plugin is linked as a worked example.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from plugins.logging import as_level, as_logger_levels
from plugins.metrics.metrics import as_buckets
from sensorhub.scripts.settings_reference import (
    BEGIN,
    END,
    built_in_plugins,
    declared_settings,
    describe_default,
    describe_type,
    splice,
    stale_lines,
)
from sensorhub.settings import (
    ResolvedSetting,
    Setting,
    as_choice,
    as_duration,
    as_int,
    as_list,
    as_size,
)

ROOT = Path(__file__).resolve().parent.parent
OPERATIONS = ROOT / "docs" / "operations.md"
PLUGINS = ROOT / "docs" / "plugins.md"


def generated_section(document: str) -> str:
    return document[document.index(BEGIN) + len(BEGIN) : document.index(END)]


def prose(document: str) -> str:
    return document.replace(generated_section(document), "")


def test_the_settings_reference_matches_the_settings_the_code_declares():
    # A fresh interpreter: building the app with every plugin configures process-wide logging.
    result = subprocess.run(
        [sys.executable, "-m", "sensorhub.scripts.settings_reference", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_the_reference_lists_the_core_and_every_built_in_plugin():
    section = generated_section(OPERATIONS.read_text())
    assert "### Core" in section
    for name in built_in_plugins():
        assert f"### Plugin `{name}`" in section


def test_a_stale_reference_shows_what_changed():
    document = f"intro\n{BEGIN}\n\n| old row |\n\n{END}\noutro\n"
    difference = stale_lines(document, "| new row |")
    assert "-| old row |" in difference and "+| new row |" in difference
    assert stale_lines(splice(document, "| new row |"), "| new row |") == []


def test_regenerating_replaces_only_the_text_between_the_markers():
    document = f"intro\n{BEGIN}\nold\n{END}\noutro\n"
    assert splice(document, "new") == f"intro\n{BEGIN}\n\nnew\n\n{END}\noutro\n"


def test_a_document_without_the_markers_is_refused():
    with pytest.raises(ValueError, match="markers"):
        splice("no markers here", "table")


@pytest.mark.parametrize(
    "parse, described",
    [
        (as_int(1, 200), "integer, 1 to 200"),
        (as_int(0), "integer ≥ 0"),
        (as_choice("json", "console"), "one of: json, console"),
        (as_duration, "duration"),
        (as_size, "size in bytes"),
        (as_list, "list"),
        (as_logger_levels, "logger levels"),  # a plugin's own function, named after itself
    ],
)
def test_a_settings_type_reads_as_what_an_operator_may_write(parse, described):
    assert describe_type(parse) == described


@pytest.mark.parametrize(
    "parse, default, shown",
    [
        (as_duration, 60.0, "`1m`"),
        (as_duration, 0.25, "`250ms`"),
        (as_duration, 30 * 86400.0, "`30d`"),
        (as_size, 1024 * 1024, "`1MiB`"),
        (as_size, 8192, "`8KiB`"),
        (as_list, ["healthz", "readyz"], "`healthz readyz`"),
        (as_list, [], "*empty*"),
    ],
)
def test_a_default_reads_in_the_units_an_operator_would_write(parse, default, shown):
    resolved = ResolvedSetting(Setting("sensorhub.x.y", parse, default), default, "default", "core")
    assert describe_default(resolved) == shown


@pytest.mark.parametrize(
    "parse, default, shown",
    [
        (as_level, 20, "`INFO`"),
        (as_logger_levels, {"waitress": 30}, "`waitress=WARNING`"),
        (as_logger_levels, {}, "*empty*"),
        (as_buckets, (0.5, 1.0), "`0.5 1`"),
    ],
)
def test_a_default_of_a_plugins_own_parser_reads_plainly(parse, default, shown):
    resolved = ResolvedSetting(Setting("sensorhub.x.y", parse, default), default, "default", "core")
    assert describe_default(resolved) == shown


def test_a_required_setting_says_so():
    resolved = ResolvedSetting(Setting("sensorhub.x.key"), "value", "env", "core")
    assert describe_default(resolved) == "*required*"


def test_one_app_lists_a_plugins_required_setting_without_provoking_its_error(
    tmp_path, monkeypatch
):
    (tmp_path / "needs_a_key").mkdir()
    (tmp_path / "needs_a_key" / "__init__.py").write_text("")
    (tmp_path / "needs_a_key" / "plugin.py").write_text(
        "from sensorhub.settings import Setting, as_duration\n"
        "def includeme(config):\n"
        "    config.declare_settings(\n"
        "        Setting('sensorhub.needs_a_key.key', help='the key'),\n"
        "        Setting('sensorhub.needs_a_key.every', as_duration, 90.0, 'how often'),\n"
        "    )\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    declared = {item.setting.key: item for item in declared_settings(["needs_a_key.plugin"])}
    assert "sensorhub.port" in declared and "sensorhub.plugins" in declared
    assert describe_default(declared["sensorhub.needs_a_key.key"]) == "*required*"
    assert describe_default(declared["sensorhub.needs_a_key.every"]) == "`90s`"
    assert declared["sensorhub.needs_a_key.key"].owner == "needs_a_key"


def test_a_plugin_that_does_not_load_stops_the_reference_with_one_line():
    with pytest.raises(SystemExit, match="cannot build the settings reference.*no_such_module"):
        declared_settings(["no_such_module.plugin"])


def test_every_setting_named_in_the_prose_exists():
    declared = set(
        re.findall(r"^\| `(sensorhub\.[\w.]+)` \|", generated_section(OPERATIONS.read_text()), re.M)
    )
    areas = {key.split(".")[1] for key in declared}
    unknown = []
    for doc in (OPERATIONS, PLUGINS):
        for key in re.findall(
            r"`(sensorhub\.[a-z_]+(?:\.[a-z_]+)?)`",
            prose(doc.read_text()) if doc == OPERATIONS else doc.read_text(),
        ):
            if key.split(".")[1] in areas and key not in declared:
                unknown.append(f"{doc.name}: {key}")
    assert unknown == []


@pytest.mark.parametrize("doc", [OPERATIONS, PLUGINS], ids=lambda path: path.name)
def test_every_relative_link_resolves(doc):
    targets = re.findall(r"\]\((?!https?:|#)([^)#\s]+)", doc.read_text())
    assert targets
    assert [t for t in targets if not (doc.parent / t).exists()] == []


def test_every_built_in_plugin_is_a_linked_worked_example():
    text = PLUGINS.read_text()
    for name in built_in_plugins():
        assert f"[`{name}`](../plugins/{name}/__init__.py)" in text
