"""Turning YAML nodes into plain data under the YAML 1.2 core schema, noting where things are.

Definitions written for YAML 1.1 tools surprise their authors (`on` read as true, `010` as 8,
`1:30` as 90), and a definition holds only what JSON can hold, so scalars are resolved by the
core schema and other types' tags are refused. Keys are always text. Problems that do not stop
loading (a duplicate key, a bad tag) are all collected, in text order, so one refusal lists them
all.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from app.dsl.reading.yaml_nodes import (
    AliasNode,
    MappingNode,
    Node,
    ScalarNode,
    SequenceNode,
    ValueNode,
)
from app.dsl.reading.yaml_placeholders import Restore
from app.dsl.reading.yaml_positions import Position, problem_at
from app.errors import Loc, Problem


@dataclass
class Reading:
    """What reading a text found, before it is checked to be a definition."""

    data: Any
    positions: dict[Loc, Position]
    problems: list[Problem]  # problems that do not stop loading, all of them in text order


def build_data(root: ValueNode, restore: Restore) -> Reading:
    """The data `root` holds, with `restore` applied to every string."""
    builder = _Builder(restore)
    data = builder.value(root, ())
    builder.positions[()] = root.position
    return Reading(data, builder.positions, builder.problems)


_TAG = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_TAG + name for name in ("str", "int", "float", "bool", "null"))
_SEQ, _MAP = _TAG + "seq", _TAG + "map"

_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_BOOLEANS = {
    **dict.fromkeys(("true", "True", "TRUE"), True),
    **dict.fromkeys(("false", "False", "FALSE"), False),
}
_DECIMAL = re.compile("[-+]?[0-9]+")
_OCTAL = re.compile("0o[0-7]+")
_HEXADECIMAL = re.compile("0x[0-9a-fA-F]+")
_FLOAT_TEXT = re.compile("[-+]?(?:\\.[0-9]+|[0-9]+(?:\\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_INFINITY = re.compile("[-+]?\\.(?:inf|Inf|INF)")
_NAN = re.compile("\\.(?:nan|NaN|NAN)")


class _Builder:
    """Turns nodes into plain data, recording positions and every non-fatal problem."""

    def __init__(self, restore: Restore) -> None:
        self._restore = restore
        self.positions: dict[Loc, Position] = {}
        self.problems: list[Problem] = []

    def value(self, node: Node, loc: Loc) -> Any:
        if isinstance(node, AliasNode):
            node = node.target
        if isinstance(node, ScalarNode):
            return self._scalar(node, loc)
        if isinstance(node, SequenceNode):
            return self._sequence(node, loc)
        return self._mapping(node, loc)

    def _sequence(self, node: SequenceNode, loc: Loc) -> list[Any]:
        self._check_tag(node.tag, _SEQ, node.position, loc)
        items = []
        for index, item in enumerate(node.items):
            self.positions[(*loc, index)] = item.position
            items.append(self.value(item, (*loc, index)))
        return items

    def _mapping(self, node: MappingNode, loc: Loc) -> dict[str, Any]:
        self._check_tag(node.tag, _MAP, node.position, loc)
        result: dict[str, Any] = {}
        for key_node, value_node in node.pairs:
            key = self._key(key_node, loc)
            if key is None:
                continue
            key_loc = (*loc, key)
            if key in result:
                first = self.positions[key_loc]
                self._report(
                    key_loc,
                    f"duplicate key {key!r} (first defined at line {first.line}, "
                    f"column {first.column})",
                    "duplicate_key",
                    key_node.position,
                )
            else:
                self.positions[key_loc] = key_node.position
            result[key] = self.value(value_node, key_loc)  # the last one wins, as in JSON
        return result

    def _key(self, node: Node, loc: Loc) -> str | None:
        target = node.target if isinstance(node, AliasNode) else node
        if isinstance(target, ScalarNode):
            return self._restore(target.value)
        self._report(
            loc, "a mapping key must be text, not a mapping or a list", "invalid_key", node.position
        )
        return None

    def _scalar(self, node: ScalarNode, loc: Loc) -> Any:
        text = self._restore(node.value)
        tag = node.tag
        if tag in ("!", _STR) or (tag is None and not node.plain):
            return text
        if tag not in (None, _INT, _FLOAT, _BOOL, _NULL):
            self._unsupported_tag(tag, node.position, loc)
            return text
        try:
            value = _resolve(text)
        except ValueError:
            self._report(loc, "number has too many digits", "invalid_scalar", node.position)
            return text
        if tag is None:
            return value
        if tag == _FLOAT and type(value) is int:
            return float(value)
        wanted = {_INT: int, _FLOAT: float, _BOOL: bool, _NULL: type(None)}[tag]
        if type(value) is not wanted:
            msg = f"{text!r} is not a valid {_short(tag)}"
            self._report(loc, msg, "invalid_scalar", node.position)
        return value

    def _check_tag(self, tag: str | None, expected: str, at: Position, loc: Loc) -> None:
        if tag not in (None, "!", expected):
            self._unsupported_tag(tag, at, loc)

    def _unsupported_tag(self, tag: str, at: Position, loc: Loc) -> None:
        self._report(
            loc,
            f"unsupported YAML tag {_short(tag)}: a definition holds only mappings, "
            "lists, strings, numbers, booleans and null",
            "unsupported_tag",
            at,
        )

    def _report(self, loc: Loc, msg: str, kind: str, at: Position) -> None:
        self.problems.append(problem_at(loc, msg, kind, at))


def _short(tag: str) -> str:
    return "!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag


def _resolve(text: str) -> Any:
    """A plain scalar's value under the YAML 1.2 core schema."""
    if text in _NULLS:
        return None
    if text in _BOOLEANS:
        return _BOOLEANS[text]
    if not text or text[0] not in "-+.0123456789":
        return text
    if _DECIMAL.fullmatch(text):
        return int(text)  # ValueError past Python's digit limit: the caller reports it
    if _OCTAL.fullmatch(text):
        return int(text[2:], 8)
    if _HEXADECIMAL.fullmatch(text):
        return int(text[2:], 16)
    if _FLOAT_TEXT.fullmatch(text):
        return float(text)
    if _INFINITY.fullmatch(text):
        return -math.inf if text[0] == "-" else math.inf
    if _NAN.fullmatch(text):
        return math.nan
    return text


# ---------------------------------------------------------------------------------------------
# JSON
