"""Refuse a plugin name that would not work, before anything is generated.

The name becomes a Python module (``plugins.<name>`` or ``sensorhub_<name>``), the settings area
(``sensorhub.<name>.*``, env ``SENSORHUB_<NAME>_*``), the URL prefix (``/api/v1/<name>/``), the
entry-point short name, the Alembic branch label and revision id (``<name>_0001``: Alembic keeps
revision ids in a VARCHAR(32)) and part of table names.

``sensorhub.scripts.new_plugin`` loads this file to check a name before baking, so the rules live
here only; the template value is read in the ``__main__`` block alone.
"""

from __future__ import annotations

import builtins
import keyword
import re
import sys

MAX_LENGTH = 24
# Areas of SensorHub's own settings and words its URLs, modules or migrations already use.
RESERVED = {
    "api", "core", "database", "errors", "events", "health", "healthz", "host", "identity",
    "migrations", "models", "plugins", "port", "readyz", "sensor", "sensor_info", "sensorhub",
    "sensors", "server", "settings", "test", "tests", "threads", "trusted_proxy", "views",
}


def installed_plugin_names() -> set[str]:
    """Short names already taken in the ``sensorhub.plugins`` entry-point group."""
    try:
        from sensorhub.plugins import available_plugins
    except ImportError:  # baked outside SensorHub's environment: nothing to compare with
        return set()
    return set(available_plugins())


def problem_with(name: str, taken: set[str] | None = None) -> str | None:
    """Why ``name`` cannot be a plugin name, or None when it can."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        return ("use lowercase letters, digits and underscores, starting with a letter "
                "(it becomes a Python module, a settings area and a URL)")
    if name.endswith("_") or "__" in name:
        return "no trailing or doubled underscores"
    if len(name) > MAX_LENGTH:
        return (f"at most {MAX_LENGTH} characters (it is part of an Alembic revision id, "
                "which must fit in 32)")
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        return "it is a Python keyword"
    if name in dir(builtins):
        return "it shadows a Python built-in"
    if name in RESERVED:
        return "SensorHub's core already uses it (settings area, URL or module)"
    if name in (installed_plugin_names() if taken is None else taken):
        return "a plugin with this name is already installed (see sensorhub.plugins)"
    return None


def main(name: str) -> int:
    problem = problem_with(name)
    if problem:
        sys.stderr.write(f"ERROR: cannot use {name!r} as a plugin name: {problem}.\n"
                         "Choose another, e.g. weather_station.\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main({{ cookiecutter.plugin_name | tojson }}))
