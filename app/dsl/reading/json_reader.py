"""Reading a definition's JSON text: strict JSON, with the positions YAML reading finds.

`json` decides what the data is, so JSON is refused or accepted exactly as JSON says, and
`NaN`/`Infinity` (which `json` accepts by default) are refused. `json` knows no positions, so the
text is also read as YAML, which it nearly is, and the positions are taken from there when both
readings agree on the shape. When they do not, only the start is placed and duplicate keys are
still named by their place in the data.
"""

from __future__ import annotations

import json
import re
from typing import Any

from app.dsl.reading.yaml_data import Reading
from app.dsl.reading.yaml_limits import MAX_DEPTH, MAX_NODES, too_deep, too_many_nodes
from app.dsl.reading.yaml_positions import (
    TEXT_START,
    Position,
    definition_error,
    position_at,
    problem_at,
)
from app.dsl.reading.yaml_reader import read_yaml
from app.errors import DefinitionError, Loc, Problem


def read_json(source: str) -> Reading:
    """The data of `source` and where each key and item is; refusals raise `DefinitionError`."""
    if not source.strip():
        raise definition_error("definition is empty", "empty")
    objects = _Objects()
    data = _parse(source, objects)
    _check_limits(data)
    layout = _layout(source, data)
    if layout is None:
        duplicates = _duplicates(data, objects, ()) if objects.duplicated else []
        return Reading(data, {(): TEXT_START}, duplicates)
    return Reading(data, layout.positions, layout.problems if objects.duplicated else [])


def _parse(source: str, objects: _Objects) -> Any:
    try:
        return json.loads(source, object_pairs_hook=objects, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        raise definition_error(
            error.msg, "json_syntax", Position(error.lineno, error.colno)
        ) from None
    except _NonFiniteNumber as error:
        raise definition_error(
            f"{error.args[0]} is not valid JSON", "json_syntax", _non_finite_position(source)
        ) from None
    except ValueError:  # an integer with more digits than Python converts
        raise definition_error("number has too many digits", "json_syntax") from None
    except RecursionError:
        raise too_deep(None) from None


class _NonFiniteNumber(Exception):
    pass


def _reject_constant(name: str) -> Any:
    raise _NonFiniteNumber(name)


_JSON_STRING_OR_CONSTANT = re.compile(r'"(?:[^"\\]|\\.)*"|(-?Infinity|NaN)')


def _non_finite_position(source: str) -> Position | None:
    for match in _JSON_STRING_OR_CONSTANT.finditer(source):
        if match[1]:
            return position_at(source, match.start(1))
    return None


class _Objects:
    """json's object hook: builds dicts and remembers which had duplicate keys."""

    def __init__(self) -> None:
        self.duplicated: dict[int, tuple[dict[str, Any], list[str]]] = {}

    def __call__(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        duplicates = []
        for key, value in pairs:
            if key in result:
                duplicates.append(key)
            result[key] = value
        if duplicates:
            self.duplicated[id(result)] = (result, duplicates)  # holding it keeps the id valid
        return result


def _check_limits(data: Any) -> None:
    """The limits YAML applies to its nodes, applied to the parsed data."""
    count = 0

    def visit(value: Any, loc: Loc, level: int) -> None:
        nonlocal count
        count += 1
        if count > MAX_NODES:
            raise too_many_nodes(None, loc)
        if isinstance(value, dict | list):
            if level > MAX_DEPTH:
                raise too_deep(None, loc)
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                visit(item, (*loc, key), level + 1)

    visit(data, (), 1)


def _layout(source: str, data: Any) -> Reading | None:
    """Positions (and duplicate-key problems) from reading the JSON as YAML, when that agrees.

    JSON is nearly YAML. The few differences are evened out without moving any character:
    tabs (JSON whitespace YAML refuses in places) become spaces, and surrogate escapes (how
    `ensure_ascii` writes an emoji, refused by YAML) become `\\uFFFD`. The positions are only
    trusted when both readings have the same keys and list lengths.
    """
    text = _SURROGATE_ESCAPE.sub(r"\\uFFFD", source.replace("\t", " "))
    try:
        as_yaml = read_yaml(text)
    except DefinitionError:
        return None
    return as_yaml if _same_shape(as_yaml.data, data) else None


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _same_shape(first: Any, second: Any) -> bool:
    if isinstance(first, dict):
        return (
            isinstance(second, dict)
            and list(first) == list(second)
            and all(_same_shape(first[key], second[key]) for key in first)
        )
    if isinstance(first, list):
        return (
            isinstance(second, list)
            and len(first) == len(second)
            and all(map(_same_shape, first, second))
        )
    return not isinstance(second, dict | list)


def _duplicates(data: Any, objects: _Objects, loc: Loc) -> list[Problem]:
    problems: list[Problem] = []
    if isinstance(data, dict):
        for key in objects.duplicated.get(id(data), (None, []))[1]:
            problems.append(
                problem_at((*loc, key), f"duplicate key {key!r}", "duplicate_key", None)
            )
        for key, value in data.items():
            problems += _duplicates(value, objects, (*loc, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            problems += _duplicates(value, objects, (*loc, index))
    return problems
