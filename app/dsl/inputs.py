"""Checking a run's inputs against the flow's declared inputs, before anything runs.

Coercions (documented in the README): `integer` accepts integers, integral floats (`3.0`) and
decimal strings (`"42"`); `number` accepts integers, finite floats and numeric strings; `boolean`
accepts true/false and the strings "true"/"false" (any case); `string`, `object` and `array`
accept only their own type; `any` accepts everything. Booleans are never numbers.

An optional input (not `required`) that is not given and has no default is null, and null is
a valid value of every optional input, whatever its type. The API's door and the engine judge
inputs with these same functions, and checking checked inputs again changes nothing, so a run
never fails on the inputs it was accepted with.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from app.dsl.models import InputSpec, InputType
from app.errors import InputValidationError, Loc, Problem

_INTEGER_TEXT = re.compile(r"^[+-]?\d{1,100}$")


def validate_inputs(
    declared: Mapping[str, InputSpec], given: Mapping[str, Any], *, strict: bool = True
) -> dict[str, Any]:
    """The run's inputs with defaults applied and values coerced; every problem at once."""
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        loc: Loc = ("inputs", name)
        if name not in given:
            if spec.required:
                problems.append(Problem(loc, f"missing required input {name!r}", "missing"))
            values[name] = spec.default if spec.has_default else None
            continue
        try:
            values[name] = coerce_input(spec, given[name], loc)
        except InputValidationError as error:
            problems.extend(error.problems)
    for name, value in given.items():
        if name in declared:
            continue
        if strict:
            known = ", ".join(sorted(declared)) or "none"
            problems.append(
                Problem(("inputs", name), f"unknown input {name!r} (inputs: {known})", "extra")
            )
        else:
            values[name] = value
    if problems:
        raise InputValidationError(problems)
    return values


def coerce_input(spec: InputSpec, value: Any, loc: Loc) -> Any:
    """`value` as the declared type (null stays null for an optional input), or
    InputValidationError saying why it is not."""
    if value is None and not spec.required:
        return None
    coerced = _COERCIONS[spec.type](value)
    if coerced is _INVALID:
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise InputValidationError(
            [
                Problem(
                    loc,
                    f"input {spec.name!r} must be {_ARTICLES[spec.type]}, got {shown}",
                    "type_error",
                )
            ]
        )
    return coerced


_INVALID = object()


def _string(value: Any) -> Any:
    return value if isinstance(value, str) else _INVALID


def _integer(value: Any) -> Any:
    if isinstance(value, bool):
        return _INVALID
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INTEGER_TEXT.match(value.strip()):
        return int(value.strip())
    return _INVALID


def _number(value: Any) -> Any:
    if isinstance(value, bool):
        return _INVALID
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _INVALID
    if isinstance(value, str):
        if _INTEGER_TEXT.match(value.strip()):
            return int(value.strip())
        try:
            number = float(value)
        except ValueError:
            return _INVALID
        return number if math.isfinite(number) else _INVALID
    return _INVALID


def _boolean(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return _INVALID


def _object(value: Any) -> Any:
    return value if isinstance(value, Mapping) else _INVALID


def _array(value: Any) -> Any:
    return value if isinstance(value, list) else _INVALID


def _any(value: Any) -> Any:
    return value


_COERCIONS: dict[InputType, Callable[[Any], Any]] = {
    InputType.STRING: _string,
    InputType.INTEGER: _integer,
    InputType.NUMBER: _number,
    InputType.BOOLEAN: _boolean,
    InputType.OBJECT: _object,
    InputType.ARRAY: _array,
    InputType.ANY: _any,
}
_ARTICLES = {
    InputType.STRING: "a string",
    InputType.INTEGER: "an integer",
    InputType.NUMBER: "a number",
    InputType.BOOLEAN: "a boolean",
    InputType.OBJECT: "an object",
    InputType.ARRAY: "an array",
    InputType.ANY: "any value",
}
