"""Requests read through their shapes: the msgspec Structs the OpenAPI document publishes.

A view asks for its query or JSON body *as* its shape (``query_of(request, EventsQuery)``); the
field types and their ``msgspec.Meta`` constraints are the whole definition, so what is
documented is what is enforced. Every bad field is reported (msgspec alone stops at the first):
unknown and missing fields, and each present field converted on its own, with its path, a reason
code (``unknown_field``, ``missing_field``, ``invalid_field``) and msgspec's own words for what
is expected. Query values are strings, converted leniently (``"42"`` is an integer); JSON values
are taken as they are (``"42"`` is not).
"""

from __future__ import annotations

import functools
import re
import typing
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from .errors import problem

if TYPE_CHECKING:
    from pyramid.request import Request

S = TypeVar("S", bound=msgspec.Struct)


@functools.cache
def _fields(shape: type[msgspec.Struct]) -> tuple[tuple[str, str, Any, bool, bool], ...]:
    """(attribute, wire name, annotated type, required, is a list) per field of ``shape``."""
    hints = typing.get_type_hints(shape, include_extras=True)
    info = msgspec.inspect.type_info(shape)
    assert isinstance(info, msgspec.inspect.StructType)
    return tuple(
        (
            field.name,
            field.encode_name,
            hints[field.name],
            field.required,
            _is_list(field.type),
        )
        for field in info.fields
    )


def _is_list(info: msgspec.inspect.Type) -> bool:
    if isinstance(info, msgspec.inspect.UnionType):
        return any(_is_list(one) for one in info.types)
    return isinstance(info, msgspec.inspect.ListType)


def check_fields(
    raw: Mapping[str, Any], shape: type[S], *, strict: bool, at: str = ""
) -> tuple[S | None, list[dict[str, str]]]:
    """``raw`` (a JSON object or query parameters) as ``shape``, or every problem found."""
    fields = _fields(shape)
    errors: list[dict[str, str]] = []
    known = {wire for _, wire, *_ in fields}
    for name in raw:
        if name not in known:
            expected = ", ".join(sorted(known)) or "none"
            errors.append(
                _error(at, name, "unknown_field", f"unknown field; expected one of: {expected}")
            )
    values = {}
    for attribute, wire, annotated, required, _ in fields:
        if wire not in raw:
            if required:
                errors.append(_error(at, wire, "missing_field", "required"))
            continue
        try:
            values[attribute] = msgspec.convert(raw[wire], annotated, strict=strict)
        except msgspec.ValidationError as error:
            errors.append(_error(at, wire, "invalid_field", _expected(error, annotated, wire)))
    if errors:
        return None, errors
    return shape(**values), errors


def query_of(request: Request, shape: type[S]) -> S:
    """The query string as ``shape``, or a 400 listing every bad parameter."""
    try:
        params = request.GET
        raw: dict[str, Any] = {}
        list_fields = {wire for _, wire, _, _, is_list in _fields(shape) if is_list}
        errors = []
        for name in params:
            if name in raw:
                continue
            values = params.getall(name)
            if name in list_fields:
                raw[name] = values
            elif len(values) > 1:
                errors.append(_error("", name, "invalid_field", "give it once"))
            else:
                raw[name] = values[0]
    except UnicodeDecodeError:
        raise problem(
            400, "the query string is not valid UTF-8: percent-encode UTF-8 bytes"
        ) from None
    value, field_errors = check_fields(raw, shape, strict=False)
    errors.extend(field_errors)
    if errors or value is None:
        raise problem(400, "invalid query: " + _summary(errors), errors=errors)
    return value


def body_of(request: Request, shape: type[S], *, allow_empty: bool = False) -> S:
    """The JSON object body as ``shape``, or a 400 (not a JSON object) / 415 (another charset)
    / 422 (every bad field). msgspec decodes: unlike orjson it keeps an integer beyond 64 bits
    exact (for the shape to refuse) instead of turning it into a float."""
    for parameter in request.headers.get("Content-Type", "").split(";")[1:]:
        name, _, given = parameter.partition("=")
        if name.strip().lower() == "charset" and given.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            raise problem(415, f"charset {given.strip()!r} is not taken: send UTF-8 JSON")
    if not request.body and allow_empty:
        raw: Any = {}
    else:
        try:
            raw = msgspec.json.decode(request.body)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            # msgspec calls a lone surrogate escape (\ud800) "truncated": say what it may be.
            raise problem(
                400,
                f"the body is not valid JSON ({error}): check its syntax, and that every \\u "
                "escape is a whole character (no lone surrogate)",
            ) from None
        except RecursionError:
            raise problem(400, "the body nests deeper than JSON bodies here may") from None
    if not isinstance(raw, dict):
        raise problem(400, "the body must be a JSON object")
    value, errors = check_fields(raw, shape, strict=True)
    if value is None:
        raise problem(422, _summary(errors), errors=errors)
    return value


def _error(at: str, name: str, reason: str, message: str) -> dict[str, str]:
    return {"path": f"{at}.{name}" if at else name, "reason": reason, "message": message}


# msgspec names Python types; a sender reads JSON.
_JSON_WORDS = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "null": "null",
    "object": "an object",
    "array": "an array",
}
_GOT_WORDS = {**_JSON_WORDS, "bool": "a boolean"}
_EXPECTED = re.compile(r"Expected `([^`]*)`(.*)")
_GOT = re.compile(r"got `([^`]*)`")


def _expected(error: msgspec.ValidationError, annotated: Any, name: str) -> str:
    """``value must be a number or null, got a string`` from msgspec's ``Expected `float |
    null`, got `str` - at `$[0]```: the path is ours to give, the words the sender's."""
    message = str(error).split(" - at `", 1)[0]
    description = _description(annotated)
    if description and "matching regex" in message:
        return f"{name} must be {description}"  # a regular expression is no answer for a person
    match = _EXPECTED.fullmatch(message)
    if match is None:
        return f"{name}: {message}"
    kinds = " or ".join(_JSON_WORDS.get(kind, kind) for kind in match[1].split(" | "))
    rest = _GOT.sub(lambda got: "got " + _GOT_WORDS.get(got[1], got[1]), match[2])
    return f"{name} must be {kinds}{rest}"


def _description(annotated: Any) -> str | None:
    for meta in typing.get_args(annotated):
        if isinstance(meta, msgspec.Meta) and meta.description:
            return meta.description
        found = _description(meta) if typing.get_args(meta) else None
        if found:
            return found
    return None


def _summary(errors: list[dict[str, str]]) -> str:
    # "limit must be an integer", not "limit: limit must be an integer".
    return "; ".join(
        error["message"]
        if error["message"].startswith(error["path"] + " ")
        else f"{error['path']}: {error['message']}"
        for error in errors
    )
