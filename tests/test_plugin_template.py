"""The plugin template (``templates/plugin``, ``make plugin name=<name>``) can never rot.

Each shape is baked with cookiecutter into a temporary directory, then used for real: an in-tree
plugin is loaded by its dotted name from a stand-in checkout; a packaged plugin is installed with
pip (into a throwaway ``--target``, never the project's .venv) so its entry point gives the short
name; then the generated plugin's own tests run in a fresh interpreter, under SensorHub's pytest
settings (warnings are errors), and its code passes the project's lint, format and type check.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cookiecutter.exceptions import FailedHookException
from cookiecutter.main import cookiecutter

from sensorhub.scripts import new_plugin

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "templates" / "plugin"

PLUGIN_FILES = {"__init__.py", "settings.py", "subscribers.py", "views.py"}
MODEL_FILES = {"models.py", "migrations/{name}_0001_initial.py"}
TEST_FILES = {"tests/__init__.py", "tests/conftest.py", "tests/test_{name}.py"}
MODEL_TEST_FILES = {"tests/test_{name}_models.py"}
PACKAGING_FILES = {"setup.py", "setup.cfg", "MANIFEST.in", "README.md"}


def bake(output_dir: Path, **context) -> Path:
    return Path(
        cookiecutter(
            str(TEMPLATE), no_input=True, extra_context=context, output_dir=str(output_dir)
        )
    )


def files_in(directory: Path) -> set[str]:
    return {
        path.relative_to(directory).as_posix()
        for path in directory.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def expected(name: str, *groups: set[str], package: str = "") -> set[str]:
    return {
        (
            f"{package}/"
            if package and not path.startswith("tests/") and path not in PACKAGING_FILES
            else ""
        )
        + path.format(name=name)
        for group in groups
        for path in group
    }


def run_generated_tests(tests: Path, cwd: Path, pythonpath: Path, basetemp: Path, *options):
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", f"--basetemp={basetemp}", *options, str(tests)],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(pythonpath)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module", params=["no", "yes"], ids=["plain", "with-model"])
def in_tree(request, tmp_path_factory):
    """A stand-in checkout whose ``plugins`` package holds one freshly baked plugin."""
    checkout = tmp_path_factory.mktemp("checkout")
    (checkout / "plugins").mkdir()
    shutil.copy(ROOT / "plugins" / "__init__.py", checkout / "plugins")
    name = "demo" if request.param == "no" else "weather_station"
    plugin = bake(checkout / "plugins", plugin_name=name, with_model=request.param)
    return checkout, plugin, name, request.param == "yes"


@pytest.fixture(scope="module", params=["no", "yes"], ids=["plain", "with-model"])
def packaged(request, tmp_path_factory):
    """A baked distributable package, pip-installed into a throwaway target directory."""
    work = tmp_path_factory.mktemp("package")
    name = "demo" if request.param == "no" else "weather_station"
    project = bake(work / "src", plugin_name=name, layout="package", with_model=request.param)
    site = work / "site"
    # No build isolation, no index: builds offline with the venv's setuptools and wheel.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            "--target",
            str(site),
            str(project),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, (
        "pip could not install the baked package (it needs setuptools and wheel, both in "
        "SensorHub's testing extra):\n" + result.stdout + result.stderr
    )
    return project, site, name, request.param == "yes"


def test_an_in_tree_plugin_has_the_shape_of_the_built_in_ones(in_tree):
    _, plugin, name, with_model = in_tree
    groups = [PLUGIN_FILES, TEST_FILES, {"README.md"}]
    if with_model:
        groups += [MODEL_FILES, MODEL_TEST_FILES]
    assert files_in(plugin) == expected(name, *groups)


def test_an_in_tree_plugin_loads_by_dotted_name_and_passes_its_own_tests(in_tree, tmp_path):
    checkout, plugin, _, with_model = in_tree
    # SensorHub's own pytest settings, as `pytest plugins/<name>` in the checkout would use.
    output = run_generated_tests(
        plugin, checkout, checkout, tmp_path, "-c", str(ROOT / "setup.cfg"), f"--rootdir={checkout}"
    )
    assert f"{8 if with_model else 6} passed" in output


def test_a_packaged_plugin_has_its_own_packaging_and_tests(packaged):
    project, _, name, with_model = packaged
    groups = [PLUGIN_FILES, TEST_FILES, PACKAGING_FILES]
    if with_model:
        groups += [MODEL_FILES, MODEL_TEST_FILES]
    assert files_in(project) - files_in(project / "build") - {
        path for path in files_in(project) if ".egg-info/" in path
    } >= expected(name, *groups, package=f"sensorhub_{name}")


def test_installing_a_packaged_plugin_registers_its_short_name(packaged):
    _, site, name, _ = packaged
    (distribution,) = importlib.metadata.distributions(path=[str(site)])
    plugins = distribution.entry_points.select(group="sensorhub.plugins")
    assert {(ep.name, ep.value) for ep in plugins} == {(name, f"sensorhub_{name}")}


def test_a_packaged_plugin_loads_by_short_name_and_passes_its_own_tests(packaged, tmp_path):
    project, site, _, with_model = packaged
    # Its tests build the app with the short name, so this proves the entry point works too.
    output = run_generated_tests(project / "tests", project, site, tmp_path)
    assert f"{8 if with_model else 6} passed" in output


def generated_code(in_tree, packaged) -> list[str]:
    return [
        str(in_tree[1]),
        str(packaged[0] / f"sensorhub_{packaged[2]}"),
        str(packaged[0] / "tests"),
    ]


def run_tool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.mark.database_independent
def test_every_generated_file_passes_the_projects_lint_and_format(in_tree, packaged):
    config = ("--config", str(ROOT / "ruff.toml"))
    code = generated_code(in_tree, packaged)
    result = run_tool("ruff", "check", "--no-cache", *config, *code)
    assert result.returncode == 0, result.stdout + result.stderr
    result = run_tool("ruff", "format", "--check", "--no-cache", *config, *code)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.database_independent
def test_generated_code_passes_the_projects_type_check(in_tree, packaged, tmp_path):
    # The same settings as the built-in plugins (gradual: annotated code is checked).
    for path, cwd in (
        (in_tree[1], in_tree[0]),
        (packaged[0] / f"sensorhub_{packaged[2]}", packaged[0]),
    ):
        result = run_tool(
            "mypy",
            "--config-file",
            str(ROOT / "setup.cfg"),
            "--cache-dir",
            str(tmp_path / "mypy-cache"),
            str(path),
            cwd=cwd,
        )
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "name, reason",
    [
        ("Demo", "lowercase"),
        ("2fast", "starting with a letter"),
        ("weather-station", "underscores"),
        ("class", "keyword"),
        ("match", "keyword"),
        ("list", "built-in"),
        ("database", "core already uses it"),
        ("auth", "already installed"),
        ("a_name_far_too_long_for_alembic", "at most 24 characters"),
        ("demo_", "trailing"),
    ],
)
def test_a_name_that_cannot_work_is_refused_with_the_reason(name, reason):
    assert reason in new_plugin.name_check()(name)


def test_names_that_can_work_are_accepted():
    check = new_plugin.name_check()
    assert [check(name) for name in ("demo", "weather_station", "co2", "x9")] == [None] * 4


def test_baking_with_a_bad_name_fails_in_the_pre_gen_hook_and_leaves_nothing(tmp_path, capfd):
    with pytest.raises(FailedHookException):
        bake(tmp_path, plugin_name="Bad-Name")
    assert "cannot use 'Bad-Name' as a plugin name" in capfd.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_make_plugin_creates_an_in_tree_plugin_and_prints_the_next_steps(tmp_path, capfd):
    assert new_plugin.main(["demo", "--no-input", "--output-dir", str(tmp_path)]) == 0
    out = capfd.readouterr().out
    assert (tmp_path / "demo" / "__init__.py").is_file()
    assert f"-m pytest -q {tmp_path / 'demo'}" in out
    assert "add plugins.demo to sensorhub.plugins" in out
    assert "curl http://127.0.0.1:6543/api/v1/demo/" in out
    assert "demo = plugins.demo" in out


def test_make_plugin_makes_a_package_with_a_model_when_asked(tmp_path, capfd):
    assert (
        new_plugin.main(
            ["probe", "--package", "--with-model", "--no-input", "--output-dir", str(tmp_path)]
        )
        == 0
    )
    project = tmp_path / "sensorhub-probe"
    assert (project / "sensorhub_probe" / "migrations" / "probe_0001_initial.py").is_file()
    out = capfd.readouterr().out
    assert f"pip install -e '{project}[testing]'" in out
    assert "add probe to sensorhub.plugins" in out


def test_make_plugin_without_a_name_and_without_a_terminal_says_how_to_give_one(capfd):
    assert new_plugin.main(["--no-input"]) == 2
    assert "make plugin name=<name>" in capfd.readouterr().err


def test_make_plugin_never_overwrites_an_existing_plugin(tmp_path, capfd):
    (tmp_path / "demo").mkdir()
    assert new_plugin.main(["demo", "--no-input", "--output-dir", str(tmp_path)]) == 2
    assert "already exists" in capfd.readouterr().err
    assert list((tmp_path / "demo").iterdir()) == []
