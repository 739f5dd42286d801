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
  alias_cycle, invalid_character.
- Strings (keys and values) may not hold NUL or lone surrogates (`"\u0000"`, `"\ud800"` in
  JSON): no store can keep them, so they are refused here, where the place is known.

The readers themselves are in `app.dsl.reading`, split by job; this module is the front every
caller imports.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from app.domain.formats import Format
from app.dsl.reading.json_reader import read_json
from app.dsl.reading.yaml_data import Reading
from app.dsl.reading.yaml_limits import (
    MAX_DEFINITION_BYTES,
    MAX_DEPTH,
    MAX_NODES,
    capped,
    check_size,
)
from app.dsl.reading.yaml_positions import Position, definition_error, position_at
from app.dsl.reading.yaml_reader import read_yaml
from app.errors import DefinitionError, Loc, Problem

__all__ = [
    "MAX_DEFINITION_BYTES",
    "MAX_DEPTH",
    "MAX_NODES",
    "Document",
    "Format",
    "Position",
    "load_document",
]


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
        return _document(read_json(source), "json")
    if chosen == "yaml":
        return _document(read_yaml(source), "yaml")
    raise ValueError(f"unknown definition format {chosen!r}")


def _decode(text: str | bytes) -> str:
    """The definition as text without a byte-order mark, refused when too large or not UTF-8."""
    if isinstance(text, bytes):
        check_size(len(text))
        try:
            source = text.decode("utf-8")
        except UnicodeDecodeError as error:
            valid = text[: error.start].decode("utf-8")
            raise definition_error(
                f"definition is not valid UTF-8: {error.reason} (byte {error.start})",
                "encoding",
                position_at(valid, len(valid)),
            ) from None
    else:
        source = text
        check_size(len(source))  # cheap refusal before encoding a huge text
        check_size(len(source.encode("utf-8", "surrogatepass")))
    return source.removeprefix("\ufeff")


def _document(reading: Reading, format: Format) -> Document:
    """The reading as a definition: a mapping, with no problems left."""
    start = reading.positions.get(())
    if reading.data is None:
        raise definition_error("definition is empty", "empty", start)
    if not isinstance(reading.data, dict):
        raise definition_error("a flow definition must be a mapping", "not_a_mapping", start)
    problems = [*reading.problems, *_unstorable_characters(reading)]
    if problems:
        raise DefinitionError(capped(problems))
    return Document(reading.data, MappingProxyType(reading.positions), format)


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _unstorable_characters(reading: Reading) -> list[Problem]:
    """A problem for each key or string value holding NUL or a lone surrogate."""
    found: list[Problem] = []
    pending: list[tuple[Loc, Any]] = [((), reading.data)]
    while pending:
        loc, value = pending.pop()
        if isinstance(value, str):
            if _UNSTORABLE.search(value):
                found.append(_character_problem(reading, loc, "value"))
        elif isinstance(value, dict):
            for key, item in value.items():
                if _UNSTORABLE.search(key):
                    found.append(_character_problem(reading, (*loc, key), "key"))
                pending.append(((*loc, key), item))
        elif isinstance(value, list):
            pending.extend(((*loc, index), item) for index, item in enumerate(value))
    return sorted(found, key=lambda problem: (problem.line or 0, problem.column or 0))


def _character_problem(reading: Reading, loc: Loc, what: str) -> Problem:
    position = next(
        (
            reading.positions[loc[:end]]
            for end in range(len(loc), -1, -1)
            if loc[:end] in reading.positions
        ),
        None,
    )
    return Problem(
        loc,
        f"this {what} holds a NUL character or a lone surrogate, which cannot be stored",
        "invalid_character",
        position.line if position else None,
        position.column if position else None,
    )
