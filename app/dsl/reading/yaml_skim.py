"""Finding the unquoted `${...}` placeholders of a YAML text, by skimming it, not parsing it.

Only placeholders YAML would read as plain scalar text need protecting from its flow syntax;
quoted ones, and `${` in comments or block scalars, load as YAML loads them. Telling these apart
needs a little of YAML's grammar, not a parser: the skim follows just enough to know where text
is verbatim and where a node may start, in one forward pass. A placeholder counts only when it
closes on the line it opens on; one that spans lines is left to YAML.
"""

from __future__ import annotations

import re

from app.dsl.placeholders import Placeholder, find_placeholders
from app.dsl.reading.yaml_positions import BREAK_CHARS
from app.errors import ExpressionSyntaxError

Span = tuple[int, int]  # start and end index of a placeholder in the text


def unquoted_placeholders(text: str) -> list[Span]:
    """The spans of the `${...}` (and `$${...}`) of `text` that YAML would read as plain text."""
    return _Skim(text).unquoted_placeholders()


_EXPECT, _PLAIN, _AFTER = range(3)
_SEPARATORS = " \t" + BREAK_CHARS
_FLOW_INDICATORS = ",[]{}"
_SPACES = re.compile(" *")
_NEXT_BREAK = re.compile("[" + BREAK_CHARS + "]")
_BLANK_LINE = re.compile("[ \t]*(?:[" + BREAK_CHARS + "]|\\Z)")
_PLAIN_STOP_BLOCK = re.compile("[$#:" + BREAK_CHARS + "]")
_PLAIN_STOP_FLOW = re.compile("[$#:,\\[\\]{}" + BREAK_CHARS + "]")
_PROPERTY_BLOCK = re.compile("[^" + _SEPARATORS + "]*")
_PROPERTY_FLOW = re.compile("[^" + _SEPARATORS + ",\\[\\]{}]*")
_DOUBLE_QUOTED_STOP = re.compile('[\\\\"]')


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
        self._spans: list[Span] = []
        self._flow = 0
        self._state = _EXPECT
        self._line_start = 0
        self._key_column = 0  # where the current block key starts
        self._parent_column = -1  # a block scalar's lines must be indented more than this

    def unquoted_placeholders(self) -> list[Span]:
        index = self._start_line(0)
        while index < len(self._text):
            index = self._step(index)
        return self._spans

    def _step(self, index: int) -> int:
        text, char = self._text, self._text[index]
        if char in BREAK_CHARS:
            return self._start_line(_next_line(text, index))
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
            line = _next_line(text, end)
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


def _next_line(text: str, line_break: int) -> int:
    """Where the line after the break at `line_break` starts."""
    return line_break + (2 if text.startswith("\r\n", line_break) else 1)


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
