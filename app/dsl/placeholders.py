"""Finding `${...}` placeholders in text.

A placeholder ends at the `}` that closes its `${`, so expressions may hold braces, brackets and
string literals of their own (`${ {'a': '}'}['a'] }`). `$${` escapes a literal `${`.
Both the YAML loader (to protect unquoted placeholders from YAML's flow syntax) and the template
compiler use this one scanner.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.errors import ExpressionSyntaxError

_OPENERS = {"{": "}", "[": "]", "(": ")"}
_QUOTES = frozenset("'\"")


@dataclass(frozen=True)
class Placeholder:
    start: int  # index of the `$`
    end: int  # index just past the closing `}`
    expression: str  # the text between `${` and `}`


def find_placeholders(text: str) -> list[Placeholder]:
    """Every `${...}` in `text`, in order; `$${` escapes are skipped."""
    found: list[Placeholder] = []
    position = text.find("${")
    while position != -1:
        if position > 0 and text[position - 1] == "$":
            position = text.find("${", position + 2)
            continue
        end = _closing_brace(text, position + 2)
        found.append(Placeholder(position, end + 1, text[position + 2 : end]))
        position = text.find("${", end + 1)
    return found


def unescape(text: str) -> str:
    """Turn the `$${` escape into a literal `${`."""
    return text.replace("$${", "${")


def _closing_brace(text: str, start: int) -> int:
    """Index of the `}` closing the placeholder whose body starts at `start`."""
    expected: list[str] = []
    index = start
    while index < len(text):
        char = text[index]
        if char in _QUOTES:
            index = _end_of_string(text, index)
        elif char in _OPENERS:
            expected.append(_OPENERS[char])
        elif char in ")]}":
            if not expected:
                if char == "}":
                    return index
                raise ExpressionSyntaxError(f"unbalanced {char!r} in placeholder", offset=index)
            if expected.pop() != char:
                raise ExpressionSyntaxError(f"unbalanced {char!r} in placeholder", offset=index)
        index += 1
    raise ExpressionSyntaxError("placeholder '${' is never closed by '}'", offset=start - 2)


def _end_of_string(text: str, start: int) -> int:
    """Index of the quote closing the string literal opened at `start`."""
    quote = text[start]
    index = start + 1
    while index < len(text):
        if text[index] == "\\":
            index += 2
            continue
        if text[index] == quote:
            return index
        index += 1
    raise ExpressionSyntaxError("string literal in placeholder is never closed", offset=start)
