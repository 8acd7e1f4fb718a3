"""The shape of the code: the core knows no plugin, no plugin knows another, the core runs alone.

The import rules are checked on the import graph: every module under ``sensorhub/`` and
``plugins/`` (the plugins' migration folders included) is parsed with ``ast`` and each of its
``import`` statements, wherever it sits (in a function, under ``if TYPE_CHECKING:``), is
resolved to the module it names, relative forms and ``from package import submodule`` included.
Loading plugins by name at run time (``sensorhub.plugins``, entry points) is not an import
statement, and is how the core is meant to reach them.

Then the core is run with the ``plugins`` package made unimportable, in a process of its own:
every core module imports, an app with no plugin is built on a fresh database migrated by the
core's own history, and it answers ``/healthz``, ``/readyz`` and ``/api/v1/``. (The core's test
folder as a whole cannot run that way: its session schema holds the built-in plugins' tables for
the modules that load them, and ``tests/core/test_server.py`` and ``test_prefork.py`` run the
servers with real plugins on purpose.)

Last, importing every one of those modules registers no SQLAlchemy listener: listeners belong
to the app whose ``includeme`` attached them, and leave with it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = "plugins"


def module_name(path: Path) -> str:
    """``plugins/auth/models.py`` -> ``plugins.auth.models``; a package is its ``__init__``."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def imported_modules(source: str, module: str, package: bool, known: set[str]) -> set[str]:
    """Every module ``source`` (the text of ``module``) imports, resolved to absolute names.

    ``from x import y`` names ``x.y`` when that is a module (``from plugins import auth``,
    ``from . import views``), else ``x`` (``y`` is an attribute of it)."""
    found = set()
    # A package's relative imports start from itself; a plain module's from its package.
    anchor = module.split(".") if package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                up = node.level - 1
                if up > len(anchor):
                    raise ValueError(f"{module}: relative import beyond the top package")
                base = ".".join(anchor[: len(anchor) - up] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in known else base)
    return found


def modules_of(*tops: str) -> dict[str, Path]:
    return {
        module_name(path): path
        for top in tops
        for path in sorted((ROOT / top).rglob("*.py"))
        if "__pycache__" not in path.parts
    }


@pytest.fixture(scope="module")
def import_graph() -> dict[str, set[str]]:
    """Module -> the modules it imports, for the core and the plugins."""
    modules = modules_of("sensorhub", PLUGINS)
    known = set(modules)
    return {
        name: imported_modules(path.read_text(), name, is_package(path), known)
        for name, path in modules.items()
    }


def belongs_to(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def plugin_of(module: str) -> str | None:
    """``plugins.auth.views`` -> ``auth``; the bare ``plugins`` package is no plugin."""
    parts = module.split(".")
    return parts[1] if parts[0] == PLUGINS and len(parts) > 1 else None


def test_the_import_resolver_sees_every_form_of_import():
    """The rules below are only as good as this: relative imports climb from the right place,
    and ``from package import module`` counts as importing the module."""
    known = {"plugins.auth", "plugins.auth.models", "plugins.ingest", "plugins.ingest.views"}
    source = textwrap.dedent("""
        import plugins.ingest.views as v
        from plugins import ingest
        from . import models
        from .models import SensorToken
        from ..ingest.views import post_events
        from .. import ingest as other
        def later():
            from plugins.ingest import views
    """)
    as_module = imported_modules(source, "plugins.auth.service", False, known)
    assert as_module == {
        "plugins.ingest.views",
        "plugins.ingest",
        "plugins.auth.models",
    }
    package_source = "from . import models\nfrom .. import ingest"
    as_package = imported_modules(package_source, "plugins.auth", True, known)
    assert as_package == {"plugins.auth.models", "plugins.ingest"}


def test_the_graph_covers_the_core_the_plugins_and_their_migrations(import_graph):
    assert {"sensorhub.plugins", "sensorhub.settings"} <= import_graph["sensorhub"]  # from .x
    assert "plugins.auth.models" in import_graph["plugins.auth.security"]  # from .models import
    assert "sensorhub.settings" in import_graph["plugins.ingest"]
    for plugin in ("auth", "ingest"):
        migrations = [name for name in import_graph if name.startswith(f"plugins.{plugin}.migr")]
        assert migrations, f"no migration of the {plugin} plugin was parsed"
        assert all("alembic" in import_graph[name] for name in migrations)


def test_the_core_imports_no_plugin(import_graph):
    offenders = sorted(
        f"{module} imports {target}"
        for module, targets in import_graph.items()
        if belongs_to(module, "sensorhub")
        for target in targets
        if belongs_to(target, PLUGINS)
    )
    assert offenders == []


def test_no_plugin_imports_another_plugin(import_graph):
    offenders = sorted(
        f"{module} imports {target}"
        for module, targets in import_graph.items()
        if (own := plugin_of(module)) is not None
        for target in targets
        if plugin_of(target) not in (None, own)
    )
    assert offenders == []


# Runs in a fresh interpreter: the plugins package is refused before anything is imported.
WITHOUT_PLUGINS = textwrap.dedent("""
    import importlib, pkgutil, sys

    class RefusePlugins:
        def find_spec(self, name, path=None, target=None):
            if name == "plugins" or name.startswith("plugins."):
                raise ModuleNotFoundError(f"No module named {name!r} (hidden)", name=name)
            return None

    sys.meta_path.insert(0, RefusePlugins())
    try:
        import plugins
    except ModuleNotFoundError:
        pass
    else:
        raise SystemExit("the plugins package is still importable")

    import sensorhub
    # Every core module, scripts included; env.py is Alembic's script, run only by Alembic.
    for info in pkgutil.walk_packages(sensorhub.__path__, "sensorhub."):
        if info.name != "sensorhub.migrations.env":
            importlib.import_module(info.name)

    import webtest
    from sensorhub import make_app, migrations

    settings = {"sensorhub.database.url": "sqlite:///" + sys.argv[1], "sensorhub.plugins": ""}
    app = make_app(settings, environ={})
    migrations.upgrade(app.registry["dbengine"], migrations.migration_locations(app.registry))
    client = webtest.TestApp(app, extra_environ={"HTTP_HOST": "example.com"})
    assert client.get("/healthz").json == {"status": "ok"}
    assert client.get("/readyz").json == {"status": "ok", "checks": {"database": "ok"}}
    assert client.get("/api/v1/").json["plugins"] == []
    app.registry["dbengine"].dispose()
    loaded = sorted(name for name in sys.modules if name.split(".")[0] == "plugins")
    assert loaded == [], loaded
    print("served without plugins")
""")


def last_line_of(script: str, *args: str) -> str:
    """Run ``script`` in a fresh interpreter (nothing imported yet); its last line of output."""
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_the_core_imports_builds_and_serves_with_the_plugins_package_missing(tmp_path):
    script_output = last_line_of(WITHOUT_PLUGINS, str(tmp_path / "core-only.sqlite"))
    assert script_output == "served without plugins"


IMPORT_EVERYTHING = textwrap.dedent("""
    import importlib
    import sys

    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session


    def listeners():
        engine = create_engine("sqlite://")
        counts = {}
        for label, dispatch in [
            ("Session", Session().dispatch),
            ("Engine", engine.dispatch),
            ("Pool", engine.pool.dispatch),
        ]:
            for name in dispatch._event_names:
                counts[f"{label}.{name}"] = len(getattr(dispatch, name))
        engine.dispose()
        return counts


    before = listeners()
    for name in sys.argv[1:]:
        importlib.import_module(name)
    after = listeners()
    changed = {key: (before[key], after[key]) for key in before if before[key] != after[key]}
    assert not changed, f"registered at import: {changed}"

    from sensorhub.models import Base

    for mapper in Base.registry.mappers:
        dispatch = mapper.dispatch
        found = {name: len(getattr(dispatch, name)) for name in dispatch._event_names}
        found = {name: count for name, count in found.items() if count}
        assert not found, f"{mapper.class_.__name__}: mapper listeners at import: {found}"
    print("nothing registered")
""")


def test_importing_any_module_registers_no_sqlalchemy_listener():
    """State hangs off the app that made it: a listener on the global ``Session``, on an engine
    or pool class or on a mapped class would feed every app in the process (and outlive them)."""
    names = [name for name in modules_of("sensorhub", PLUGINS) if ".migrations." not in name]
    assert last_line_of(IMPORT_EVERYTHING, *names) == "nothing registered"
