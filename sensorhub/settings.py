"""Declared settings: one table, every key typed, every key overridable from the environment.

The core and each plugin declare their keys with ``config.declare_settings(Setting(...), ...)``.
A declared key is resolved at once, in this order of precedence:

    environment (``SENSORHUB_<AREA>_<NAME>``)  >  ini (``sensorhub.<area>.<name>``)  >  default

and the *typed* value is written back into ``registry.settings`` (so ``"false"`` from an ini is
``False``, never a truthy string). Where each value came from is remembered, for
``sensorhub-admin settings <ini>``.

A bad value or a missing required setting raises :class:`SettingError`, whose message is one
line naming the key, the environment variable, the offending value and what was expected.

Each parser (``as_int(1, 64)``, ``as_duration``, ...) is a :class:`Parser`: callable on the raw
string, and carrying a :class:`Kind` that says what it accepts (type, range, unit, example,
choices), from which the settings reference in ``docs/operations.md`` is generated. Durations
take a unit (``30s``, ``30d``): a bare ``30`` is refused at start-up.

Invariants:
- a key is declared once; declaring it twice is a programming error (``ValueError``);
- secrets are never shown: :meth:`SettingsTable.display_value` masks them;
- the environment mapping is injected (``make_app(settings, environ=...)``), so tests never
  touch ``os.environ``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pyramid.exceptions import ConfigurationError
from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from pyramid.config import Configurator
    from pyramid.registry import Registry

_REQUIRED = object()
_COLLECTING: ContextVar[bool] = ContextVar("sensorhub_settings_collecting", default=False)


class StartupError(ConfigurationError):  # type: ignore[misc]  # pyramid ships no types
    """A problem an operator must fix before SensorHub can start; its message says how."""


class SettingError(StartupError):
    """A setting is missing or has a value of the wrong type."""


# --- parsers: each takes the raw string and returns a typed value, or raises ValueError whose
# --- message says what was expected ("an integer", "one of: json, console"). Each also carries
# --- a Kind that says what it accepts, so tools (the settings reference) read it instead of
# --- provoking errors.

T = TypeVar("T")


@dataclass(frozen=True)
class Kind:
    """What a parser accepts, as data: ``str(kind)`` is how the settings reference shows it.

    ``name``: what the value is ("integer", "duration"); ``minimum``/``maximum``: the inclusive
    range of a number (None: open); ``unit``: the unit of the typed value ("s" for a duration,
    "B" for a size), which an operator writes as a suffix; ``example``: a value an operator may
    write; ``choices``: the only words accepted, for a choice.
    """

    name: str
    minimum: float | None = None
    maximum: float | None = None
    unit: str | None = None
    example: str = ""
    choices: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.choices:
            return "one of: " + ", ".join(self.choices)
        if self.minimum is not None and self.maximum is not None:
            return f"{self.name}, {self.minimum} to {self.maximum}"
        if self.minimum is not None:
            return f"{self.name} ≥ {self.minimum}"
        if self.maximum is not None:
            return f"{self.name} ≤ {self.maximum}"
        return self.name


@dataclass(frozen=True)
class Parser(Generic[T]):
    """A parser that describes itself: ``parser(raw)`` converts, ``parser.kind`` says what it
    accepts, ``parser.show(value)`` writes a typed value back as an operator would (``30d``)."""

    convert: Callable[[str], T]
    kind: Kind
    show: Callable[[T], str] = str

    def __call__(self, raw: str) -> T:
        return self.convert(raw)


def described(
    kind: Kind, show: Callable[[T], str] = str
) -> Callable[[Callable[[str], T]], Parser[T]]:
    """A decorator that gives a plugin's own parse function a description: put
    ``@described(Kind("level", example="INFO", choices=LEVELS), show=logging.getLevelName)``
    above ``def as_level(raw: str) -> int``; the call site (``Setting(key, as_level, ...)``)
    stays as it was."""

    def wrap(convert: Callable[[str], T]) -> Parser[T]:
        return Parser(convert, kind, show)

    return wrap


def kind_of(parse: Callable[[str], Any]) -> Kind:
    """The description of ``parse``; a plain function is named after itself (``as_secret`` ->
    "secret") until it is given a :class:`Kind`."""
    if isinstance(parse, Parser):
        return parse.kind
    name = getattr(parse, "__name__", "value")
    return Kind(re.sub(r"^(as|parse)_", "", name).replace("_", " "))


def _str(raw: str) -> str:
    return raw.strip()


as_str = Parser(_str, Kind("string", example="127.0.0.1"))


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("a boolean (true/false, yes/no, on/off, 1/0)")


as_bool = Parser(_bool, Kind("boolean", example="true"), show=lambda value: str(value).lower())


def _list(raw: str) -> list[str]:
    """Space- or comma-separated words (``"auth, ingest"`` and ``"auth ingest"`` are alike)."""
    return [word for word in re.split(r"[\s,]+", raw.strip()) if word]


as_list = Parser(_list, Kind("list", example="auth ingest"), show=" ".join)


def as_int(minimum: int | None = None, maximum: int | None = None) -> Parser[int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError(_expected("an integer", minimum, maximum)) from None
        _check_range(value, minimum, maximum, "an integer")
        return value

    example = minimum if minimum is not None else maximum if maximum is not None else 0
    return Parser(parse, Kind("integer", minimum, maximum, example=str(example)))


def as_float(minimum: float | None = None, maximum: float | None = None) -> Parser[float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError(_expected("a number", minimum, maximum)) from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("a finite number")
        _check_range(value, minimum, maximum, "a number")
        return value

    example = minimum if minimum is not None else maximum if maximum is not None else 0.0
    return Parser(parse, Kind("number", minimum, maximum, example=str(example)))


def as_choice(*choices: str) -> Parser[str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError("one of: " + ", ".join(choices))
        return value

    return Parser(parse, Kind("choice", example=choices[0] if choices else "", choices=choices))


_DURATION = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|m|h|d|w)?")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_EXPECTED = (
    "a duration with a unit, such as 500ms, 30s, 5m, 12h or 30d (only 0 may go without one)"
)


def _duration(raw: str) -> float:
    """Seconds, from ``"250ms"``, ``"30s"``, ``"5m"``, ``"12h"``, ``"30d"``, ``"1w"`` or ``"0"``.

    A bare number is refused (is a retention of ``30`` seconds or days?), except 0, which is 0
    in any unit.
    """
    match = _DURATION.fullmatch(raw.strip().lower())
    if not match:
        raise ValueError(_DURATION_EXPECTED)
    number, unit = float(match["number"]), match["unit"]
    if unit is None:
        if number:
            raise ValueError(_DURATION_EXPECTED)
        return 0.0
    return number * _DURATION_UNITS[unit]


def _in_units(value: float, units: Iterable[tuple[str, float]], fallback: str) -> str:
    """``value`` in the largest unit that writes it as a whole number (``2592000`` -> ``30d``)."""
    for unit, size in units:
        count = value / size
        if count >= 1 and abs(count - round(count)) < 1e-9:
            return f"{round(count)}{unit}"
    return f"{value:g}{fallback}"


def _show_duration(seconds: float) -> str:
    units = sorted(_DURATION_UNITS.items(), key=lambda item: -item[1])
    return _in_units(seconds, units, "s")


as_duration = Parser(_duration, Kind("duration", unit="s", example="30s"), show=_show_duration)


_SIZE = re.compile(r"(?P<number>\d+)\s*(?P<unit>b|kb|kib|mb|mib|gb|gib)?")
_SIZE_UNITS = {
    None: 1,
    "b": 1,
    "kb": 1000,
    "kib": 1024,
    "mb": 1000**2,
    "mib": 1024**2,
    "gb": 1000**3,
    "gib": 1024**3,
}


def _size(raw: str) -> int:
    """Bytes, from ``"1MiB"``, ``"64KiB"``, ``"1000"``."""
    match = _SIZE.fullmatch(raw.strip().lower())
    if not match:
        raise ValueError("a size in bytes such as 65536, 64KiB or 1MiB")
    return int(match["number"]) * _SIZE_UNITS[match["unit"]]


def _show_size(size: int) -> str:
    return _in_units(size, (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)), "")


as_size = Parser(_size, Kind("size in bytes", unit="B", example="64KiB"), show=_show_size)


def _database_url(raw: str) -> str:
    try:
        make_url(raw.strip())
    except Exception:
        raise ValueError(
            "an SQLAlchemy URL such as sqlite:///var/sensorhub.sqlite or "
            "postgresql+psycopg://user@127.0.0.1/sensorhub"
        ) from None
    return raw.strip()


as_database_url = Parser(
    _database_url, Kind("database URL", example="postgresql+psycopg://user@127.0.0.1/sensorhub")
)


def _expected(kind: str, minimum: Any, maximum: Any) -> str:
    if minimum is not None and maximum is not None:
        return f"{kind} from {minimum} to {maximum}"
    if minimum is not None:
        return f"{kind} >= {minimum}"
    if maximum is not None:
        return f"{kind} <= {maximum}"
    return kind


def _check_range(value: Any, minimum: Any, maximum: Any, kind: str) -> None:
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(_expected(kind, minimum, maximum))


# --- the table


def env_name_for(key: str) -> str:
    """``sensorhub.ingest.max_events`` -> ``SENSORHUB_INGEST_MAX_EVENTS``."""
    return re.sub(r"[^A-Za-z0-9]+", "_", key).upper()


@dataclass(frozen=True)
class Setting:
    """One declared setting. ``default`` is already typed; leave it out to make the key required."""

    key: str
    parse: Callable[[str], Any] = as_str
    default: Any = _REQUIRED
    help: str = ""
    secret: bool = False
    env: str | None = None

    @property
    def env_name(self) -> str:
        return self.env or env_name_for(self.key)

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED


@dataclass(frozen=True)
class ResolvedSetting:
    setting: Setting
    value: Any
    source: str  # "env", "ini", "default" (or "missing", only within collecting_declarations)
    owner: str  # "core" or the plugin that declared it


class SettingsTable:
    """Every declared setting with its effective value and where that value came from."""

    def __init__(self, raw: Mapping[str, Any], environ: Mapping[str, str]):
        self._raw = dict(raw)
        self._environ = environ
        self._resolved: dict[str, ResolvedSetting] = {}

    def declare(self, settings: Iterable[Setting], owner: str) -> dict[str, Any]:
        values = {}
        for setting in settings:
            if setting.key in self._resolved:
                raise ValueError(
                    f"setting {setting.key} is declared twice "
                    f"(by {self._resolved[setting.key].owner} and {owner})"
                )
            resolved = self._resolve(setting, owner)
            self._resolved[setting.key] = resolved
            values[setting.key] = resolved.value
        return values

    def _resolve(self, setting: Setting, owner: str) -> ResolvedSetting:
        if setting.env_name in self._environ:
            raw, source = self._environ[setting.env_name], "env"
        elif setting.key in self._raw:
            raw, source = self._raw[setting.key], "ini"
        elif setting.required and _COLLECTING.get():
            return ResolvedSetting(setting, None, "missing", owner)
        elif setting.required:
            raise SettingError(
                f"missing required setting {setting.key}: set {setting.env_name} in the "
                f"environment or {setting.key} in the ini file ({setting.help or 'no help'})"
            )
        else:
            return ResolvedSetting(setting, setting.default, "default", owner)
        if not isinstance(raw, str):  # a typed value passed in by code (tests, make_app callers)
            return ResolvedSetting(setting, raw, source, owner)
        try:
            value = setting.parse(raw)
        except ValueError as error:
            shown = "***" if setting.secret else repr(raw)
            where = f"env {setting.env_name}" if source == "env" else f"ini key {setting.key}"
            raise SettingError(
                f"invalid setting {setting.key} (env {setting.env_name}): {where} is {shown}, "
                f"expected {error}"
            ) from None
        return ResolvedSetting(setting, value, source, owner)

    def __iter__(self) -> Iterator[ResolvedSetting]:
        return iter(self._resolved.values())

    def __contains__(self, key: str) -> bool:
        return key in self._resolved

    def undeclared_keys(self, prefix: str = "sensorhub.") -> list[tuple[str, str | None]]:
        """Ini keys under ``prefix`` that nobody declared, each with the closest declared key."""
        unknown = []
        for key in sorted(self._raw):
            if key.startswith(prefix) and key not in self._resolved:
                close = difflib.get_close_matches(key, list(self._resolved), n=1, cutoff=0.85)
                unknown.append((key, close[0] if close else None))
        return unknown

    @staticmethod
    def display_value(resolved: ResolvedSetting) -> str:
        value = resolved.value
        if resolved.setting.secret and value not in (None, ""):
            if isinstance(value, str) and "://" in value:
                return make_url(value).render_as_string(hide_password=True)
            return "********"
        if isinstance(value, list):
            return " ".join(str(item) for item in value)
        return "" if value is None else str(value)


@contextmanager
def collecting_declarations() -> Iterator[None]:
    """Within this block a missing required setting resolves to None instead of stopping
    start-up, so that one app built with every plugin shows every declaration (the settings
    reference reads them). For tools only: an app built so must never serve."""
    token = _COLLECTING.set(True)
    try:
        yield
    finally:
        _COLLECTING.reset(token)


def declare_settings(config: Configurator, *settings: Setting) -> None:
    """Config directive: declare settings and write their typed values into registry.settings.

    Called by the core and by each plugin's ``includeme`` before it reads its own keys::

        config.declare_settings(Setting("sensorhub.ingest.max_events", as_int(1), 1000, "..."))
        limit = config.registry.settings["sensorhub.ingest.max_events"]
    """
    owner = getattr(config, "package_name", None) or "core"
    owner = "core" if owner.startswith("sensorhub") else owner
    values = config.registry["sensorhub.settings_table"].declare(settings, owner)
    config.registry.settings.update(values)


def settings_table(registry: Registry) -> SettingsTable:
    table: SettingsTable = registry["sensorhub.settings_table"]
    return table


def includeme(config: Configurator) -> None:
    """Create the table for this app; ``make_app`` puts the environ in the registry first."""
    environ = config.registry.get("sensorhub.environ", {})
    config.registry["sensorhub.settings_table"] = SettingsTable(config.registry.settings, environ)
    config.add_directive("declare_settings", declare_settings)
