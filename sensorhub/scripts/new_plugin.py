"""``make plugin name=<name>``: a new SensorHub plugin from ``templates/plugin`` (cookiecutter).

::

    python -m sensorhub.scripts.new_plugin demo                # plugins/demo/ in this checkout
    python -m sensorhub.scripts.new_plugin demo --with-model   # ... with a table and a migration
    python -m sensorhub.scripts.new_plugin demo --package      # ../sensorhub-demo/, distributable

On a terminal it asks for the template's choices (the name and options given become the
defaults); otherwise (CI, scripts, ``--no-input``) it takes them as given. The name is checked by
the template's pre-gen hook (loaded from there, so the rules live in one place) before anything
is written; the template's post-gen hook prints the exact next steps.

A development tool: it needs a SensorHub checkout (the template is not in the wheel).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "templates" / "plugin"
NAME_HOOK = TEMPLATE / "hooks" / "pre_gen_project.py"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="make plugin name=<name>",
        description="Create a SensorHub plugin from templates/plugin (see docs/plugins.md).",
    )
    parser.add_argument(
        "name",
        nargs="?",
        help="the plugin's name: a lowercase Python "
        "identifier, also its settings area and URL (e.g. weather_station)",
    )
    parser.add_argument(
        "--package",
        action="store_true",
        help="a separate distributable package with its own setup.py/setup.cfg "
        "and an entry point, instead of plugins/<name>/ in this checkout",
    )
    parser.add_argument(
        "--with-model",
        action="store_true",
        help="add a SQLAlchemy model and its own Alembic migration",
    )
    parser.add_argument("--description", help="one line: what the plugin adds")
    parser.add_argument(
        "--output-dir",
        type=Path,
        help="where to create it (default: plugins/ for an in-tree plugin, the "
        "checkout's parent directory for a package)",
    )
    prompts = parser.add_mutually_exclusive_group()
    prompts.add_argument(
        "--no-input",
        dest="interactive",
        action="store_false",
        default=None,
        help="never ask; take the name and options as given",
    )
    prompts.add_argument(
        "--interactive",
        dest="interactive",
        action="store_true",
        help="ask for every choice even without a terminal",
    )
    return parser


def name_check() -> Callable[[str], str | None]:
    """The template's own name rules (``problem_with`` in its pre-gen hook)."""
    spec = importlib.util.spec_from_file_location("sensorhub_plugin_template_pre_gen", NAME_HOOK)
    if spec is None or spec.loader is None:  # never for a .py path; checked for the type
        raise ImportError(f"cannot load the template's name rules from {NAME_HOOK}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    problem_with: Callable[[str], str | None] = module.problem_with
    return problem_with


def ask(defaults: Mapping[str, str]) -> dict[str, Any]:
    """Cookiecutter's own prompts, with ``defaults`` preselected; returns the public answers."""
    from cookiecutter.generate import generate_context
    from cookiecutter.prompt import prompt_for_config

    context = generate_context(
        context_file=str(TEMPLATE / "cookiecutter.json"), extra_context=defaults
    )
    answers = prompt_for_config(context)
    return {key: value for key, value in answers.items() if not key.startswith("_")}


def default_output_dir(layout: str) -> Path:
    # A package next to the checkout, not inside it: it has its own setup.cfg and tests.
    return ROOT / "plugins" if layout == "in-tree" else ROOT.parent


def project_dir_name(answers: Mapping[str, str]) -> str:
    name = answers["plugin_name"]
    return name if answers["layout"] == "in-tree" else "sensorhub-" + name.replace("_", "-")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not (TEMPLATE / "cookiecutter.json").is_file():
        sys.stderr.write(
            f"error: no plugin template at {TEMPLATE}; run this from a SensorHub "
            "checkout (make plugin name=<name>)\n"
        )
        return 2
    interactive = args.interactive
    if interactive is None:
        interactive = sys.stdin.isatty() and sys.stdout.isatty()
    answers = {
        "layout": "package" if args.package else "in-tree",
        "with_model": "yes" if args.with_model else "no",
    }
    if args.name:
        answers["plugin_name"] = args.name
    if args.description:
        answers["description"] = args.description
    if interactive:
        answers = ask(answers)
    elif not args.name:
        sys.stderr.write(
            "error: give the plugin's name: make plugin name=<name> "
            "(or run it on a terminal to be asked)\n"
        )
        return 2

    problem = name_check()(answers["plugin_name"])
    if problem:
        sys.stderr.write(
            f"error: cannot use {answers['plugin_name']!r} as a plugin name: {problem}.\n"
        )
        return 2
    output_dir = (args.output_dir or default_output_dir(answers["layout"])).resolve()
    target = output_dir / project_dir_name(answers)
    if target.exists():
        sys.stderr.write(f"error: {target} already exists; choose another name or remove it\n")
        return 2

    from cookiecutter.exceptions import FailedHookException
    from cookiecutter.main import cookiecutter

    output_dir.mkdir(parents=True, exist_ok=True)
    try:
        cookiecutter(
            str(TEMPLATE), no_input=True, extra_context=answers, output_dir=str(output_dir)
        )
    except FailedHookException:
        return 2  # the hook has said why on stderr
    return 0


if __name__ == "__main__":
    sys.exit(main())
