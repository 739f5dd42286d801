"""Loading a flow definition's YAML or JSON text into plain data, remembering where things are.

`load_document` turns text into dicts, lists, strings, numbers, booleans and None, plus the
line and column of every mapping key and sequence item, so later validation can point at the
exact place of a problem. Everything that can go wrong here becomes one `DefinitionError`.

Choices a caller relies on:

- YAML is read with YAML 1.2 core-schema resolution: only `true`/`false` (three spellings each)
  are booleans, `on`/`yes`/`n` stay strings, dates stay strings, no sexagesimal numbers, `0o`
  octal. Tags other than `!!str !!int !!float !!bool !!null !!map !!seq` (so `!!binary`,
  `!!set`, `!!omap`, `!!timestamp`, `!!python/...`, local tags) are refused (`unsupported_tag`).
  `<<` is an ordinary key, as in YAML 1.2: merge keys are not expanded.
- Mapping keys are always strings: a scalar key loads as its text (`1: a` has the key `"1"`);
  a mapping or list used as a key is refused (`invalid_key`).
- The flow language's one YAML extension: an unquoted `${...}` loads as exactly the text
  written, wherever a scalar may stand (`params: [${max(a, b)}]` is one item). A placeholder
  that spans lines is left to YAML. Quoted placeholders load as YAML loads them.
- Limits: at most `MAX_DEFINITION_BYTES` of UTF-8 text, `MAX_NODES` nodes once aliases are
  expanded, `MAX_DEPTH` nested mappings/lists. JSON obeys the same limits.
- Problem types: encoding, too_large, empty, not_a_mapping, yaml_syntax, json_syntax,
  duplicate_key, invalid_key, unsupported_tag, invalid_scalar, too_deep, too_many_nodes,
  alias_cycle.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, Protocol

import yaml

from app.dsl.placeholders import Placeholder, find_placeholders
from app.errors import DefinitionError, ExpressionSyntaxError, Loc, Problem

MAX_DEFINITION_BYTES = 1024 * 1024
MAX_NODES = 100_000
MAX_DEPTH = 100

Format = Literal["yaml", "json"]


@dataclass(frozen=True)
class Position:
    line: int  # 1-based
    column: int  # 1-based


@dataclass(frozen=True)
class Document:
    """A loaded definition: its data and where each key and item was written.

    `positions[()]` is where the top-level mapping starts; `positions[loc + (key,)]` is the
    position of a mapping key; `positions[loc + (index,)]` is where a sequence item starts.
    """

    data: Any
    positions: Mapping[Loc, Position]
    format: Format

    def position(self, loc: Loc) -> Position | None:
        """Position of `loc`, or of its nearest ancestor that has one."""
        for end in range(len(loc), -1, -1):
            found = self.positions.get(loc[:end])
            if found is not None:
                return found
        return None


def load_document(text: str | bytes, *, format: Format | None = None) -> Document:
    """Parse a definition; `format=None` takes text starting with `{` or `[` for JSON."""
    source = _decode(text)
    chosen = format or ("json" if source.lstrip()[:1] in ("{", "[") else "yaml")
    if chosen == "json":
        return _load_json(source)
    if chosen == "yaml":
        return _load_yaml(source)
    raise ValueError(f"unknown definition format {chosen!r}")


# ---------------------------------------------------------------------------------------------
# Text


def _decode(text: str | bytes) -> str:
    """The definition as text without a byte-order mark, refused when too large or not UTF-8."""
    if isinstance(text, bytes):
        _check_size(len(text))
        try:
            source = text.decode("utf-8")
        except UnicodeDecodeError as error:
            valid = text[: error.start].decode("utf-8")
            raise _error(
                f"definition is not valid UTF-8: {error.reason} (byte {error.start})",
                "encoding",
                _position_at(valid, len(valid)),
            ) from None
    else:
        source = text
        _check_size(len(source))  # cheap refusal before encoding a huge text
        _check_size(len(source.encode("utf-8", "surrogatepass")))
    return source.removeprefix("\ufeff")


def _check_size(size: int) -> None:
    if size > MAX_DEFINITION_BYTES:
        raise _error(f"definition too large: more than {MAX_DEFINITION_BYTES} bytes", "too_large")


_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")  # what YAML counts as a line break
_BREAK_CHARS = "\r\n\x85\u2028\u2029"
_NEXT_BREAK = re.compile("[\r\n\x85\u2028\u2029]")


def _position_at(text: str, index: int) -> Position:
    line, line_start = 1, 0
    for match in _LINE_BREAK.finditer(text, 0, index):
        line, line_start = line + 1, match.end()
    return Position(line, index - line_start + 1)


def _error(msg: str, kind: str, at: Position | None = None, loc: Loc = ()) -> DefinitionError:
    return DefinitionError([_problem(loc, msg, kind, at)])


def _problem(loc: Loc, msg: str, kind: str, at: Position | None) -> Problem:
    if at is None:
        return Problem(loc=loc, msg=msg, type=kind)
    return Problem(loc=loc, msg=msg, type=kind, line=at.line, column=at.column)


def _require_mapping(data: Any, at: Position | None) -> None:
    if data is None:
        raise _error("definition is empty", "empty", at)
    if not isinstance(data, dict):
        raise _error("a flow definition must be a mapping", "not_a_mapping", at)


# ---------------------------------------------------------------------------------------------
# YAML


def _load_yaml(source: str) -> Document:
    built = _build_yaml(source)
    _require_mapping(built.data, built.positions.get(()))
    if built.problems:
        raise DefinitionError(built.problems)
    return Document(built.data, MappingProxyType(built.positions), "yaml")


@dataclass
class _Built:
    data: Any
    positions: dict[Loc, Position]
    problems: list[Problem]  # problems that do not stop loading, all of them in text order


_START = Position(1, 1)

# Characters YAML refuses in a stream (PyYAML's own set), checked here to report a position
# in characters: libyaml reports a byte offset.
_NON_PRINTABLE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)


def _build_yaml(source: str) -> _Built:
    unprintable = _NON_PRINTABLE.search(source)
    if unprintable:
        raise _error(
            f"unacceptable character #x{ord(unprintable.group()):04x}: "
            "special characters are not allowed",
            "yaml_syntax",
            _position_at(source, unprintable.start()),
        )
    shielded, restore = _shield_placeholders(source)
    root = _compose(shielded, restore)
    if root is None:
        return _Built(None, {(): _START}, [])
    _Measure().check(root)
    builder = _Builder(restore)
    data = builder.value(root, ())
    builder.positions[()] = root.position
    return _Built(data, builder.positions, builder.problems)


# --- Unquoted placeholders -------------------------------------------------------------------
#
# YAML reads `[${x}]` as a flow mapping inside a sequence, and `${a if b else c}` or
# `${d[' #']}` can be cut by a comment. Before parsing, each unquoted `${...}` is swapped for a
# token of the same length made of private-use characters, which YAML takes as ordinary plain
# scalar text; positions stay exact. Every loaded string gets its tokens swapped back.

Restore = Callable[[str], str]

_PRIVATE_USE = "".join(chr(code) for code in range(0xE000, 0xF900))
_PRIVATE_USE_CHAR = re.compile("[\ue000-\uf8ff]")


def _unchanged(value: str) -> str:
    return value


def _shield_placeholders(text: str) -> tuple[str, Restore]:
    if "${" not in text:
        return text, _unchanged
    spans = _Skim(text).unquoted_placeholders()
    if not spans:
        return text, _unchanged
    tokens = _Tokens(text)
    pieces: list[str] = []
    done = 0
    for start, end in spans:
        token = tokens.make(text[start:end])
        if token is not None:
            pieces += (text[done:start], token)
            done = end
    pieces.append(text[done:])
    return "".join(pieces), tokens.restore


class _Tokens:
    """Same-length stand-ins for placeholders: OPEN, a numbered body, CLOSE."""

    def __init__(self, text: str) -> None:
        # OPEN and CLOSE must not occur in the text, so only tokens are ever restored.
        used = set(_PRIVATE_USE_CHAR.findall(text))
        free = "".join(char for char in _PRIVATE_USE if char not in used) if used else _PRIVATE_USE
        self._open, self._close = (free[0], free[1]) if len(free) >= 2 else ("", "")
        self._digits = _PRIVATE_USE.replace(self._open, "").replace(self._close, "")
        self._originals: dict[str, str] = {}
        self._pattern = re.compile(
            f"{self._open}[^{self._close}]*{self._close}" if self._open else "(?!)"
        )

    def make(self, original: str) -> str | None:
        """A token for `original`, or None when none can be made (then it stays as is)."""
        if not self._open:
            return None
        number, body = len(self._originals), []
        while number:
            number, digit = divmod(number, len(self._digits))
            body.append(self._digits[digit])
        width = len(original) - 2
        if len(body) > width:
            return None
        token = self._open + "".join(body).ljust(width, self._digits[0]) + self._close
        self._originals[token] = original
        return token

    def restore(self, value: str) -> str:
        if not self._open or self._open not in value:
            return value
        return self._pattern.sub(lambda match: self._originals.get(match[0], match[0]), value)


_EXPECT, _PLAIN, _AFTER = range(3)
_SPACES = re.compile(" *")
_BLANK_LINE = re.compile("[ \t]*(?:[\r\n\x85\u2028\u2029]|\\Z)")
_PLAIN_STOP_BLOCK = re.compile("[$#:\r\n\x85\u2028\u2029]")
_PLAIN_STOP_FLOW = re.compile("[$#:,\\[\\]{}\r\n\x85\u2028\u2029]")
_PROPERTY_BLOCK = re.compile("[^ \t\r\n\x85\u2028\u2029]*")
_PROPERTY_FLOW = re.compile("[^ \t\r\n\x85\u2028\u2029,\\[\\]{}]*")
_DOUBLE_QUOTED_STOP = re.compile('[\\\\"]')
_SEPARATORS = " \t" + _BREAK_CHARS
_FLOW_INDICATORS = ",[]{}"


class _Skim:
    """Finds the unquoted `${...}` spans of a YAML text by skimming it, not parsing it.

    It follows just enough of YAML to know where text is verbatim (quoted scalars, comments,
    block scalars) and where a node may start (so `Bob's` is no quote but `- 'x'` is). When it
    guesses wrong, the harm is small: a shielded span is restored to the same text anyway.
    State: `state` says whether the skim is before a node (_EXPECT), inside a plain scalar
    (_PLAIN) or after a quoted scalar, alias or flow collection (_AFTER).
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._placeholders = _PlaceholderFinder(text)
        self._spans: list[tuple[int, int]] = []
        self._flow = 0
        self._state = _EXPECT
        self._line_start = 0
        self._key_column = 0  # where the current block key starts
        self._parent_column = -1  # a block scalar's lines must be indented more than this

    def unquoted_placeholders(self) -> list[tuple[int, int]]:
        index = self._start_line(0)
        while index < len(self._text):
            index = self._step(index)
        return self._spans

    def _step(self, index: int) -> int:
        text, char = self._text, self._text[index]
        if char in _BREAK_CHARS:
            return self._start_line(index + (2 if text.startswith("\r\n", index) else 1))
        if char == "#" and (index == self._line_start or text[index - 1] in " \t"):
            return _line_end(text, index)
        if char == "$":
            end = self._placeholders.end_of(index)
            if end is not None:
                self._spans.append((index, end))
                self._state = _PLAIN
                return end
        if self._state == _EXPECT:
            return self._node_start(index, char)
        if self._state == _PLAIN:
            return self._in_plain(index, char)
        return self._after_node(index, char)

    def _start_line(self, index: int) -> int:
        text = self._text
        self._line_start = index
        first = _match_end(_SPACES, text, index)
        indent = first - index
        self._state = _EXPECT
        self._key_column, self._parent_column = indent, indent - 1
        if self._flow == 0 and indent == 0:
            if text.startswith(("---", "..."), first) and _separated(text, first + 3):
                return first + 3
            if text.startswith("%", first):  # a directive
                return _line_end(text, first)
        return first

    def _node_start(self, index: int, char: str) -> int:
        text, column = self._text, index - self._line_start
        if char in " \t":
            return index + 1
        if char in "-?:" and (_separated(text, index + 1) or (char == ":" and self._flow)):
            if char == "-" and not self._flow:
                self._parent_column = column
            elif char == ":":
                self._value_indicator()
            return index + 1
        if char in "[]{},":
            if self._flow or char in "[{":
                return self._flow_indicator(index, char)
        elif char in "&!":  # an anchor or a tag: the node itself comes next
            return self._property_end(index)
        elif char == "*":
            self._state = _AFTER
            return self._property_end(index)
        elif char in "|>" and not self._flow:
            return self._block_scalar_end(index)
        if not self._flow:
            self._key_column = column
        if char == "'":
            self._state = _AFTER
            return _single_quoted_end(text, index)
        if char == '"':
            self._state = _AFTER
            return _double_quoted_end(text, index)
        self._state = _PLAIN
        return index + 1

    def _in_plain(self, index: int, char: str) -> int:
        text = self._text
        if char == ":" and (
            _separated(text, index + 1)
            or (self._flow and index + 1 < len(text) and text[index + 1] in _FLOW_INDICATORS)
        ):
            self._value_indicator()
            return index + 1
        if self._flow and char in _FLOW_INDICATORS:
            return self._flow_indicator(index, char)
        if char in "$#:,[]{}":  # ordinary text at this place
            return index + 1
        stop = (_PLAIN_STOP_FLOW if self._flow else _PLAIN_STOP_BLOCK).search(text, index)
        return stop.start() if stop else len(text)

    def _after_node(self, index: int, char: str) -> int:
        if char in " \t":
            return index + 1
        if char == ":" and (self._flow or _separated(self._text, index + 1)):
            self._value_indicator()
            return index + 1
        if self._flow and char in _FLOW_INDICATORS:
            return self._flow_indicator(index, char)
        self._state = _PLAIN  # YAML will complain; read on as plain text
        return index

    def _value_indicator(self) -> None:
        self._state = _EXPECT
        if not self._flow:
            self._parent_column = self._key_column

    def _flow_indicator(self, index: int, char: str) -> int:
        if char in "[{":
            self._flow += 1
            self._state = _EXPECT
        elif char in "]}":
            self._flow -= 1
            self._state = _AFTER
        else:
            self._state = _EXPECT
        return index + 1

    def _property_end(self, index: int) -> int:
        return _match_end(_PROPERTY_FLOW if self._flow else _PROPERTY_BLOCK, self._text, index)

    def _block_scalar_end(self, index: int) -> int:
        """Where a `|` or `>` scalar's content ends: at the first less-indented, non-blank line."""
        text = self._text
        end = _line_end(text, index)
        while end < len(text):
            line = end + (2 if text.startswith("\r\n", end) else 1)
            indent = _match_end(_SPACES, text, line) - line
            if indent <= self._parent_column and not _BLANK_LINE.match(text, line):
                break
            end = _line_end(text, line)
        return end


def _match_end(pattern: re.Pattern[str], text: str, index: int) -> int:
    """End of `pattern` matched at `index` (patterns used here match the empty string too)."""
    match = pattern.match(text, index)
    return match.end() if match else index


def _line_end(text: str, index: int) -> int:
    found = _NEXT_BREAK.search(text, index)
    return found.start() if found else len(text)


def _separated(text: str, index: int) -> bool:
    return index >= len(text) or text[index] in _SEPARATORS


def _single_quoted_end(text: str, index: int) -> int:
    index += 1
    while True:
        index = text.find("'", index)
        if index == -1:
            return len(text)
        if not text.startswith("''", index):
            return index + 1
        index += 2


def _double_quoted_end(text: str, index: int) -> int:
    index += 1
    while stop := _DOUBLE_QUOTED_STOP.search(text, index):
        if stop[0] == '"':
            return stop.end()
        index = stop.start() + 2
    return len(text)


class _PlaceholderFinder:
    """Ends of the placeholders (and `$${` escapes) that close on the line they open on.

    One scan of a line's rest finds all its placeholders; they are remembered so a line full
    of placeholders is scanned once. A budget of scanned characters keeps hostile text
    (thousands of unclosed `${` on one long line) from making the scans quadratic: once it is
    spent, placeholders stay as written and YAML reads them as it would anyway.
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._ends: dict[int, int | None] = {}
        self._budget = len(text) + 100_000
        self._line_end = -1  # end of the line last scanned; the skim only moves forward

    def end_of(self, dollar: int) -> int | None:
        text = self._text
        if text.startswith("$${", dollar):
            start = dollar + 1
        elif text.startswith("${", dollar) and not (dollar and text[dollar - 1] == "$"):
            start = dollar
        else:
            return None
        if start not in self._ends:
            self._scan(start)
        return self._ends[start]

    def _scan(self, start: int) -> None:
        if start >= self._line_end:
            self._line_end = _line_end(self._text, start)
        if self._line_end - start <= self._budget:
            for placeholder in self._well_formed(self._text[start : self._line_end]):
                self._ends[start + placeholder.start] = start + placeholder.end
        self._ends.setdefault(start, None)

    def _well_formed(self, segment: str) -> list[Placeholder]:
        """The placeholders of `segment` before its first malformed one."""
        while len(segment) <= self._budget:
            self._budget -= len(segment)
            try:
                return find_placeholders(segment)
            except ExpressionSyntaxError as error:
                if not error.offset:
                    return []
                # Cut at the offset, a malformed placeholder becomes an unclosed one, whose
                # offset is its start; cut there, the rest is well formed.
                segment = segment[: error.offset]
        return []


# --- Events to nodes -------------------------------------------------------------------------
#
# The nodes are built here from the parser's events rather than by PyYAML's composer, to stop
# at the nesting and node limits before doing the work, and to keep each alias's own position.


@dataclass(slots=True)
class _Scalar:
    value: str
    tag: str | None  # None: untagged; resolved by the core schema when plain
    plain: bool
    position: Position


@dataclass(slots=True)
class _Sequence:
    tag: str | None
    position: Position
    items: list[_Node] = field(default_factory=list)


@dataclass(slots=True)
class _Mapping:
    tag: str | None
    position: Position
    pairs: list[tuple[_Node, _Node]] = field(default_factory=list)


@dataclass(slots=True)
class _Alias:
    target: _Scalar | _Sequence | _Mapping
    position: Position


_Node = _Scalar | _Sequence | _Mapping | _Alias


class _EventParser(Protocol):
    def get_event(self) -> Any: ...
    def check_event(self, *choices: Any) -> bool: ...
    def dispose(self) -> None: ...


_PARSER: Callable[[str], _EventParser] = (
    yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader
)


def _compose(text: str, restore: Restore) -> _Scalar | _Sequence | _Mapping | None:
    parser = _PARSER(text)
    try:
        return _Composer(parser).document()
    except yaml.MarkedYAMLError as error:
        raise _syntax_error(error, restore) from None
    except yaml.YAMLError as error:
        raise _error(restore(str(error)), "yaml_syntax") from None
    finally:
        parser.dispose()


def _syntax_error(error: yaml.MarkedYAMLError, restore: Restore) -> DefinitionError:
    msg = error.problem or error.context or "invalid YAML"
    if error.problem and error.context:
        where = f" at {_mark_text(error.context_mark)}" if error.context_mark else ""
        msg = f"{msg} ({error.context}{where})"
    mark = error.problem_mark or error.context_mark
    return _error(restore(msg), "yaml_syntax", _mark_position(mark) if mark else None)


def _mark_position(mark: Any) -> Position:
    return Position(mark.line + 1, mark.column + 1)


def _mark_text(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


class _Composer:
    def __init__(self, parser: _EventParser) -> None:
        self._parser = parser
        self._anchors: dict[str, _Scalar | _Sequence | _Mapping] = {}
        self._count = 0

    def document(self) -> _Scalar | _Sequence | _Mapping | None:
        parser = self._parser
        parser.get_event()  # stream start
        if parser.check_event(yaml.StreamEndEvent):
            return None
        parser.get_event()  # document start
        root = self._node(1)
        parser.get_event()  # document end
        if not parser.check_event(yaml.StreamEndEvent):
            second = parser.get_event()
            raise _error(
                "a definition must be a single YAML document",
                "yaml_syntax",
                _mark_position(second.start_mark),
            )
        assert not isinstance(root, _Alias)  # an alias cannot come before its anchor
        return root

    def _node(self, level: int) -> _Node:
        """The next node; `level` is how many collections it would nest in, itself included."""
        event = self._parser.get_event()
        position = _mark_position(event.start_mark)
        if isinstance(event, yaml.AliasEvent):
            target = self._anchors.get(event.anchor or "")
            if target is None:
                raise _error(f"found undefined alias {event.anchor!r}", "yaml_syntax", position)
            return _Alias(target, position)
        self._count += 1
        if self._count > MAX_NODES:
            raise _too_many_nodes(position)
        node: _Scalar | _Sequence | _Mapping
        if isinstance(event, yaml.ScalarEvent):
            node = _Scalar(event.value, event.tag, event.implicit[0], position)
        elif level > MAX_DEPTH:
            raise _too_deep(position)
        elif isinstance(event, yaml.SequenceStartEvent):
            node = _Sequence(event.tag, position)
        else:
            node = _Mapping(event.tag, position)
        if event.anchor is not None:
            self._anchors[event.anchor] = node  # before the children: they may refer to it
        if isinstance(node, _Sequence):
            while not self._parser.check_event(yaml.SequenceEndEvent):
                node.items.append(self._node(level + 1))
            self._parser.get_event()
        elif isinstance(node, _Mapping):
            while not self._parser.check_event(yaml.MappingEndEvent):
                node.pairs.append((self._node(level + 1), self._node(level + 1)))
            self._parser.get_event()
        return node


def _too_deep(at: Position | None, loc: Loc = ()) -> DefinitionError:
    return _error(
        f"the definition nests mappings and lists more than {MAX_DEPTH} levels deep",
        "too_deep",
        at,
        loc,
    )


def _too_many_nodes(at: Position | None, loc: Loc = ()) -> DefinitionError:
    return _error(
        f"the definition has more than {MAX_NODES} values once aliases are expanded",
        "too_many_nodes",
        at,
        loc,
    )


class _Measure:
    """Size and depth of a node tree as if every alias were expanded, without expanding it.

    Each distinct node is measured once, so the "billion laughs" document is refused after a
    few dozen steps instead of being built.
    """

    def __init__(self) -> None:
        self._measured: dict[int, tuple[int, int]] = {}  # id -> (nodes, levels)
        self._open: set[int] = set()  # collections being measured: an alias to one is a cycle

    def check(self, root: _Node) -> None:
        self._measure(root, 1)

    def _measure(self, node: _Node, level: int) -> tuple[int, int]:
        if isinstance(node, _Alias):
            if id(node.target) in self._open:
                raise _error(
                    "an alias refers to a mapping or list that contains it",
                    "alias_cycle",
                    node.position,
                )
            node = node.target
        if isinstance(node, _Scalar):
            return 1, 0
        measured = self._measured.get(id(node))
        if measured is None:
            measured = self._measure_collection(node, level)
        if level - 1 + measured[1] > MAX_DEPTH:
            raise _too_deep(node.position)
        return measured

    def _measure_collection(self, node: _Sequence | _Mapping, level: int) -> tuple[int, int]:
        if level > MAX_DEPTH:
            raise _too_deep(node.position)
        self._open.add(id(node))
        children = node.items if isinstance(node, _Sequence) else _flatten(node.pairs)
        nodes, levels = 1, 0
        for child in children:
            child_nodes, child_levels = self._measure(child, level + 1)
            nodes, levels = nodes + child_nodes, max(levels, child_levels)
            if nodes > MAX_NODES:
                raise _too_many_nodes(node.position)
        self._open.discard(id(node))
        self._measured[id(node)] = (nodes, levels + 1)
        return nodes, levels + 1


def _flatten(pairs: list[tuple[_Node, _Node]]) -> list[_Node]:
    return [node for pair in pairs for node in pair]


# --- Nodes to data ---------------------------------------------------------------------------

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

    def value(self, node: _Node, loc: Loc) -> Any:
        if isinstance(node, _Alias):
            node = node.target
        if isinstance(node, _Scalar):
            return self._scalar(node, loc)
        if isinstance(node, _Sequence):
            self._check_tag(node.tag, _SEQ, node.position, loc)
            items = []
            for index, item in enumerate(node.items):
                self.positions[(*loc, index)] = item.position
                items.append(self.value(item, (*loc, index)))
            return items
        return self._mapping(node, loc)

    def _mapping(self, node: _Mapping, loc: Loc) -> dict[str, Any]:
        self._check_tag(node.tag, _MAP, node.position, loc)
        result: dict[str, Any] = {}
        for key_node, value_node in node.pairs:
            key = self._key(key_node, loc)
            if key is None:
                continue
            key_loc = (*loc, key)
            if key in result:
                first = self.positions[key_loc]
                self.problems.append(
                    _problem(
                        key_loc,
                        f"duplicate key {key!r} (first defined at line {first.line}, "
                        f"column {first.column})",
                        "duplicate_key",
                        key_node.position,
                    )
                )
            else:
                self.positions[key_loc] = key_node.position
            result[key] = self.value(value_node, key_loc)  # the last one wins, as in JSON
        return result

    def _key(self, node: _Node, loc: Loc) -> str | None:
        target = node.target if isinstance(node, _Alias) else node
        if isinstance(target, _Scalar):
            return self._restore(target.value)
        self.problems.append(
            _problem(
                loc,
                "a mapping key must be text, not a mapping or a list",
                "invalid_key",
                node.position,
            )
        )
        return None

    def _scalar(self, node: _Scalar, loc: Loc) -> Any:
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
            self.problems.append(
                _problem(loc, "number has too many digits", "invalid_scalar", node.position)
            )
            return text
        if tag is None:
            return value
        if tag == _FLOAT and type(value) is int:
            return float(value)
        wanted = {_INT: int, _FLOAT: float, _BOOL: bool, _NULL: type(None)}[tag]
        if type(value) is not wanted:
            self.problems.append(
                _problem(
                    loc, f"{text!r} is not a valid {_short(tag)}", "invalid_scalar", node.position
                )
            )
        return value

    def _check_tag(self, tag: str | None, expected: str, at: Position, loc: Loc) -> None:
        if tag not in (None, "!", expected):
            self._unsupported_tag(tag, at, loc)

    def _unsupported_tag(self, tag: str, at: Position, loc: Loc) -> None:
        self.problems.append(
            _problem(
                loc,
                f"unsupported YAML tag {_short(tag)}: a definition holds only mappings, "
                "lists, strings, numbers, booleans and null",
                "unsupported_tag",
                at,
            )
        )


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


def _load_json(source: str) -> Document:
    if not source.strip():
        raise _error("definition is empty", "empty")
    objects = _JsonObjects()
    data = _parse_json(source, objects)
    _check_json_limits(data)
    layout = _json_layout(source, data)
    positions: dict[Loc, Position] = layout.positions if layout else {(): _START}
    _require_mapping(data, positions.get(()))
    if objects.duplicated:
        problems = layout.problems if layout else _json_duplicates(data, objects, ())
        raise DefinitionError(problems)
    return Document(data, MappingProxyType(positions), "json")


def _parse_json(source: str, objects: _JsonObjects) -> Any:
    try:
        return json.loads(source, object_pairs_hook=objects, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        raise _error(error.msg, "json_syntax", Position(error.lineno, error.colno)) from None
    except _NonFiniteNumber as error:
        raise _error(
            f"{error.args[0]} is not valid JSON", "json_syntax", _non_finite_position(source)
        ) from None
    except ValueError:  # an integer with more digits than Python converts
        raise _error("number has too many digits", "json_syntax") from None
    except RecursionError:
        raise _too_deep(None) from None


class _NonFiniteNumber(Exception):
    pass


def _reject_constant(name: str) -> Any:
    raise _NonFiniteNumber(name)


_JSON_STRING_OR_CONSTANT = re.compile(r'"(?:[^"\\]|\\.)*"|(-?Infinity|NaN)')


def _non_finite_position(source: str) -> Position | None:
    for match in _JSON_STRING_OR_CONSTANT.finditer(source):
        if match[1]:
            return _position_at(source, match.start(1))
    return None


class _JsonObjects:
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


def _check_json_limits(data: Any) -> None:
    """The limits YAML's `_Measure` applies, applied to parsed JSON."""
    count = 0

    def visit(value: Any, loc: Loc, level: int) -> None:
        nonlocal count
        count += 1
        if count > MAX_NODES:
            raise _too_many_nodes(None, loc)
        if isinstance(value, dict | list):
            if level > MAX_DEPTH:
                raise _too_deep(None, loc)
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                visit(item, (*loc, key), level + 1)

    visit(data, (), 1)


def _json_layout(source: str, data: Any) -> _Built | None:
    """Positions (and duplicate-key problems) from reading the JSON as YAML, when that agrees.

    JSON is nearly YAML. The few differences are evened out without moving any character:
    tabs (JSON whitespace YAML refuses in places) become spaces, and surrogate escapes (how
    `ensure_ascii` writes an emoji, refused by YAML) become `\\uFFFD`. The positions are only
    trusted when both readings have the same keys and list lengths.
    """
    text = _SURROGATE_ESCAPE.sub(r"\\uFFFD", source.replace("\t", " "))
    try:
        built = _build_yaml(text)
    except DefinitionError:
        return None
    return built if _same_shape(built.data, data) else None


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


def _json_duplicates(data: Any, objects: _JsonObjects, loc: Loc) -> list[Problem]:
    problems: list[Problem] = []
    if isinstance(data, dict):
        for key in objects.duplicated.get(id(data), (None, []))[1]:
            problems.append(
                Problem(loc=(*loc, key), msg=f"duplicate key {key!r}", type="duplicate_key")
            )
        for key, value in data.items():
            problems += _json_duplicates(value, objects, (*loc, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            problems += _json_duplicates(value, objects, (*loc, index))
    return problems
