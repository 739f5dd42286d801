"""Where things are in a definition's text, and the problems that point there.

A problem found long after loading (a bad step field, an unknown input) is reported at the line
and column where it was written, so every reader records positions and every refusal carries
one when it can. Lines and columns are 1-based and count characters, not bytes, with line breaks
as YAML counts them; JSON is placed by the same rules, since its positions come from reading it
as YAML.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from app.errors import DefinitionError, Loc, Problem

BREAK_CHARS = "\r\n\x85\u2028\u2029"  # what YAML counts as a line break, with CR LF as one
_LINE_BREAK = re.compile(f"\r\n|[{BREAK_CHARS}]")


class Position(NamedTuple):
    """A named pair: a definition has one per key and item (25,000 for 5,000 steps), and a
    tuple is made several times faster than a frozen dataclass."""

    line: int  # 1-based
    column: int  # 1-based


TEXT_START = Position(1, 1)


def position_at(text: str, index: int) -> Position:
    line, line_start = 1, 0
    for match in _LINE_BREAK.finditer(text, 0, index):
        line, line_start = line + 1, match.end()
    return Position(line, index - line_start + 1)


def definition_error(
    msg: str, kind: str, at: Position | None = None, loc: Loc = ()
) -> DefinitionError:
    return DefinitionError([problem_at(loc, msg, kind, at)])


def problem_at(loc: Loc, msg: str, kind: str, at: Position | None) -> Problem:
    if at is None:
        return Problem(loc=loc, msg=msg, type=kind)
    return Problem(loc=loc, msg=msg, type=kind, line=at.line, column=at.column)
