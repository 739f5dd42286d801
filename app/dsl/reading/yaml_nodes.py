"""Reading a YAML text into a tree of nodes, refused as soon as it passes the limits.

The nodes are built here from the parser's events rather than by PyYAML's composer, to stop at
the nesting and node limits before doing the work, and to keep each alias's own position. An
alias stays a reference to its anchor's node, so the tree is then measured as if every alias
were expanded, without expanding it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import yaml

from app.dsl.reading.yaml_limits import MAX_DEPTH, MAX_NODES, too_deep, too_many_nodes
from app.dsl.reading.yaml_placeholders import Restore
from app.dsl.reading.yaml_positions import Position, definition_error
from app.errors import DefinitionError


def read_nodes(text: str, restore: Restore) -> ValueNode | None:
    """The text's one document as nodes, or None when it has none.

    `restore` turns the text back into what was written, for error messages that quote it.
    """
    root = _compose(text, restore)
    if root is not None:
        _Measure().check(root)
    return root


@dataclass(slots=True)
class ScalarNode:
    value: str
    tag: str | None  # None: untagged; resolved by the core schema when plain
    plain: bool
    position: Position


@dataclass(slots=True)
class SequenceNode:
    tag: str | None
    position: Position
    items: list[Node] = field(default_factory=list)


@dataclass(slots=True)
class MappingNode:
    tag: str | None
    position: Position
    pairs: list[tuple[Node, Node]] = field(default_factory=list)


@dataclass(slots=True)
class AliasNode:
    target: ValueNode
    position: Position


ValueNode = ScalarNode | SequenceNode | MappingNode  # what an alias refers to
Node = ValueNode | AliasNode


class _EventParser(Protocol):
    def get_event(self) -> Any: ...
    def check_event(self, *choices: Any) -> bool: ...
    def dispose(self) -> None: ...


_PARSER: Callable[[str], _EventParser] = (
    yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader
)


def _compose(text: str, restore: Restore) -> ValueNode | None:
    parser = _PARSER(text)
    try:
        return _Composer(parser).document()
    except yaml.MarkedYAMLError as error:
        raise _syntax_error(error, restore) from None
    except yaml.YAMLError as error:
        raise definition_error(restore(str(error)), "yaml_syntax") from None
    finally:
        parser.dispose()


def _syntax_error(error: yaml.MarkedYAMLError, restore: Restore) -> DefinitionError:
    msg = error.problem or error.context or "invalid YAML"
    if error.problem and error.context:
        where = f" at {_mark_text(error.context_mark)}" if error.context_mark else ""
        msg = f"{msg} ({error.context}{where})"
    mark = error.problem_mark or error.context_mark
    return definition_error(restore(msg), "yaml_syntax", _mark_position(mark) if mark else None)


def _mark_position(mark: Any) -> Position:
    return Position(mark.line + 1, mark.column + 1)


def _mark_text(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


class _Composer:
    def __init__(self, parser: _EventParser) -> None:
        self._parser = parser
        self._anchors: dict[str, ValueNode] = {}
        self._count = 0

    def document(self) -> ValueNode | None:
        parser = self._parser
        parser.get_event()  # stream start
        if parser.check_event(yaml.StreamEndEvent):
            return None
        parser.get_event()  # document start
        root = self._node(1)
        parser.get_event()  # document end
        if not parser.check_event(yaml.StreamEndEvent):
            second = parser.get_event()
            raise definition_error(
                "a definition must be a single YAML document",
                "yaml_syntax",
                _mark_position(second.start_mark),
            )
        assert not isinstance(root, AliasNode)  # an alias cannot come before its anchor
        return root

    def _node(self, level: int) -> Node:
        """The next node; `level` is how many collections it would nest in, itself included."""
        event = self._parser.get_event()
        position = _mark_position(event.start_mark)
        if isinstance(event, yaml.AliasEvent):
            return self._alias(event, position)
        node = self._value_node(event, level, position)
        if event.anchor is not None:
            self._anchors[event.anchor] = node  # before the children: they may refer to it
        self._read_children(node, level)
        return node

    def _alias(self, event: yaml.AliasEvent, position: Position) -> AliasNode:
        target = self._anchors.get(event.anchor or "")
        if target is None:
            raise definition_error(
                f"found undefined alias {event.anchor!r}", "yaml_syntax", position
            )
        return AliasNode(target, position)

    def _value_node(self, event: Any, level: int, position: Position) -> ValueNode:
        """A node for a scalar or a collection's start, counted against the limits."""
        self._count += 1
        if self._count > MAX_NODES:
            raise too_many_nodes(position)
        if isinstance(event, yaml.ScalarEvent):
            return ScalarNode(event.value, event.tag, event.implicit[0], position)
        if level > MAX_DEPTH:
            raise too_deep(position)
        if isinstance(event, yaml.SequenceStartEvent):
            return SequenceNode(event.tag, position)
        return MappingNode(event.tag, position)

    def _read_children(self, node: ValueNode, level: int) -> None:
        if isinstance(node, SequenceNode):
            while not self._parser.check_event(yaml.SequenceEndEvent):
                node.items.append(self._node(level + 1))
            self._parser.get_event()
        elif isinstance(node, MappingNode):
            while not self._parser.check_event(yaml.MappingEndEvent):
                node.pairs.append((self._node(level + 1), self._node(level + 1)))
            self._parser.get_event()


class _Measure:
    """Size and depth of a node tree as if every alias were expanded, without expanding it.

    Each distinct node is measured once, so the "billion laughs" document is refused after a
    few dozen steps instead of being built.
    """

    def __init__(self) -> None:
        self._measured: dict[int, tuple[int, int]] = {}  # id -> (nodes, levels)
        self._open: set[int] = set()  # collections being measured: an alias to one is a cycle

    def check(self, root: Node) -> None:
        self._measure(root, 1)

    def _measure(self, node: Node, level: int) -> tuple[int, int]:
        if isinstance(node, AliasNode):
            if id(node.target) in self._open:
                raise definition_error(
                    "an alias refers to a mapping or list that contains it",
                    "alias_cycle",
                    node.position,
                )
            node = node.target
        if isinstance(node, ScalarNode):
            return 1, 0
        measured = self._measured.get(id(node))
        if measured is None:
            measured = self._measure_collection(node, level)
        if level - 1 + measured[1] > MAX_DEPTH:
            raise too_deep(node.position)
        return measured

    def _measure_collection(self, node: SequenceNode | MappingNode, level: int) -> tuple[int, int]:
        if level > MAX_DEPTH:
            raise too_deep(node.position)
        self._open.add(id(node))
        children = node.items if isinstance(node, SequenceNode) else _flatten(node.pairs)
        nodes, levels = 1, 0
        for child in children:
            child_nodes, child_levels = self._measure(child, level + 1)
            nodes, levels = nodes + child_nodes, max(levels, child_levels)
            if nodes > MAX_NODES:
                raise too_many_nodes(node.position)
        self._open.discard(id(node))
        self._measured[id(node)] = (nodes, levels + 1)
        return nodes, levels + 1


def _flatten(pairs: list[tuple[Node, Node]]) -> list[Node]:
    return [node for pair in pairs for node in pair]
