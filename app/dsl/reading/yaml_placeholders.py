"""Protecting unquoted `${...}` placeholders from YAML's flow syntax, the language's one extension.

YAML reads `[${x}]` as a flow mapping inside a sequence, and `${a if b else c}` or
`${d[' #']}` can be cut by a comment. Before parsing, each unquoted `${...}` is swapped for a
token of the same length made of private-use characters, which YAML takes as ordinary plain
scalar text; positions stay exact. Every loaded string gets its tokens swapped back, and so does
every YAML error message, which may quote the text.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from app.dsl.reading.yaml_skim import unquoted_placeholders

Restore = Callable[[str], str]  # swaps a loaded string's tokens back for their placeholders

_PRIVATE_USE = "".join(chr(code) for code in range(0xE000, 0xF900))
_PRIVATE_USE_CHAR = re.compile("[\ue000-\uf8ff]")


def _unchanged(value: str) -> str:
    return value


def shield_placeholders(text: str) -> tuple[str, Restore]:
    """`text` with its unquoted placeholders swapped for tokens, and how to swap them back."""
    if "${" not in text:
        return text, _unchanged
    spans = unquoted_placeholders(text)
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
