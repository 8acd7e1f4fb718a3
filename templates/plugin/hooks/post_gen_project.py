"""Shape the generated plugin for its layout, then print the exact next steps.

Runs inside the generated directory. The template always renders the distributable-package
shape; for ``in-tree`` the package's modules move up into ``plugins/<name>/`` and the packaging
files go (SensorHub's own setup.cfg packages ``plugins.*``). Without a model, the model, its
migrations and its tests go. The code is then put in SensorHub's format (``ruff format``, line
length 100), which depends on the plugin's name, so the template cannot fix it for every name.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

NAME = {{ cookiecutter.plugin_name | tojson }}
LAYOUT = {{ cookiecutter.layout | tojson }}
WITH_MODEL = {{ cookiecutter.with_model | tojson }} == "yes"
MODULE = {{ cookiecutter.__module | tojson }}
PACKAGE_DIR = {{ cookiecutter.__package_dir | tojson }}
DISTRIBUTION = {{ cookiecutter.__distribution | tojson }}

PACKAGING_FILES = ("setup.py", "setup.cfg", "MANIFEST.in")


def drop_model(project: Path) -> None:
    package = project / PACKAGE_DIR
    (package / "models.py").unlink()
    shutil.rmtree(package / "migrations")
    (project / "tests" / f"test_{NAME}_models.py").unlink()


def flatten_into_plugins_dir(project: Path) -> None:
    package = project / PACKAGE_DIR
    for path in sorted(package.iterdir()):
        path.rename(project / path.name)
    package.rmdir()
    for name in PACKAGING_FILES:
        (project / name).unlink()


def sensorhub_checkout(project: Path) -> Path | None:
    """The checkout this in-tree plugin was generated into, if it was (plugins/<name>)."""
    root = project.parent.parent
    if project.parent.name == "plugins" and (root / "setup.cfg").is_file() \
            and (root / "sensorhub").is_dir():
        return root
    return None


def in_tree_steps(project: Path) -> list[str]:
    root = sensorhub_checkout(project)
    where = f"plugins/{NAME}" if root else str(project)
    python = ".venv/bin/python" if root and (root / ".venv/bin/python").exists() \
        else sys.executable
    steps = [
        f"Created the in-tree plugin {NAME!r} in {project} (module {MODULE}).",
        "",
        f"Next steps{f', from {root}' if root else ''}:",
        f"  1. Run its tests:  {python} -m pytest -q {where}",
        f"  2. Load it by its dotted name: add {MODULE} to sensorhub.plugins in development.ini,",
        f"     or for one run:  SENSORHUB_PLUGINS=\"logging metrics auth ingest {MODULE}\" make run",
    ]
    if WITH_MODEL:
        steps += ["     Its table: `make run` migrates first; elsewhere run",
                  "     `.venv/bin/sensorhub-admin migrate <ini>` with the plugin listed."]
    steps += [
        f"  3. Try it:  curl http://127.0.0.1:6543/api/v1/{NAME}/",
        f"  4. To load it by its short name {NAME!r}, register it in setup.cfg under",
        "     [options.entry_points] sensorhub.plugins:",
        f"         {NAME} = {MODULE}",
        "     then `make install` (re-reads the entry points) and `make docs` (its settings",
        "     join docs/operations.md).",
        "  Contracts and rules: docs/plugins.md.",
    ]
    return steps


def package_steps(project: Path) -> list[str]:
    python = sys.executable
    steps = [
        f"Created the plugin package {DISTRIBUTION!r} in {project}",
        f"(module {MODULE}; entry point {NAME} = {MODULE} in the sensorhub.plugins group).",
        "",
        "Next steps:",
        "  1. Install it into SensorHub's environment:",
        f"       {python} -m pip install -e '{project}[testing]'",
        f"  2. Run its tests:  cd {project} && {python} -m pytest -q",
        f"  3. Load it by its short name: add {NAME} to sensorhub.plugins in your ini,",
        f"     or for one run:  SENSORHUB_PLUGINS=\"logging metrics auth ingest {NAME}\" make run",
    ]
    if WITH_MODEL:
        steps += ["     Its table: `make run` migrates first; elsewhere run",
                  "     `sensorhub-admin migrate <ini>` with the plugin listed."]
    steps += [
        f"  4. Try it:  curl http://127.0.0.1:6543/api/v1/{NAME}/",
        "  Contracts and rules: docs/plugins.md in SensorHub.",
    ]
    return steps


def format_code(project: Path) -> None:
    """SensorHub's format, where its formatter is installed (it is in SensorHub's venv)."""
    if importlib.util.find_spec("ruff") is None:
        return
    subprocess.run(  # noqa: S603 - this interpreter's own ruff, on the files just generated
        [sys.executable, "-m", "ruff", "format", "--quiet", "--no-cache", "--line-length=100",
         "--target-version=py311", str(project)],
        check=False,
    )


def main() -> int:
    project = Path.cwd()
    if not WITH_MODEL:
        drop_model(project)
    if LAYOUT == "in-tree":
        flatten_into_plugins_dir(project)
        steps = in_tree_steps(project)
    else:
        steps = package_steps(project)
    format_code(project)
    sys.stdout.write("\n".join(steps) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
