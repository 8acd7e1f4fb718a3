"""The checks a teammate runs locally are the ones CI runs: the pre-commit hooks are valid and
run the same tools as ``make lint``; coverage measures subprocesses and has a floor."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_the_pre_commit_configuration_is_valid_and_mirrors_make_lint():
    config = ROOT / ".pre-commit-config.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "pre_commit", "validate-config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    entries = [
        hook["entry"]
        for repo in yaml.safe_load(config.read_text())["repos"]
        for hook in repo["hooks"]
    ]
    lint_recipe = (ROOT / "Makefile").read_text().split("\nlint:")[1].split("\n\n")[0]
    for tool in ("ruff check", "ruff format --check", "mypy"):
        assert any(tool in entry for entry in entries), f"no pre-commit hook runs {tool}"
        assert f"$(BIN)/{tool}" in lint_recipe, f"make lint does not run {tool}"


def test_coverage_counts_subprocesses_and_enforces_a_floor():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    patches = {patch.strip() for patch in config["coverage:run"]["patch"].split(",")}
    assert {"subprocess", "fork", "_exit"} <= patches
    assert config["coverage:run"].getboolean("branch")
    assert float(config["coverage:report"]["fail_under"]) >= 93.5
