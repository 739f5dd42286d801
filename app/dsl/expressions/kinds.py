"""The Python types that stand for each JSON kind, and how messages name them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

SEQUENCES: Final = (str, list, tuple)
INDEXABLE: Final = (str, list, tuple, Sequence)
MAPPINGS: Final = (dict, Mapping)
TEXTS: Final = (str, bytes)
ARRAYS: Final = (list, tuple)
NUMBERS: Final = (int, float)


def type_name(value: Any) -> str:
    """The JSON name of a value's type, as flow authors know it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, ARRAYS):
        return "array"
    return type(value).__name__


def with_article(noun: str) -> str:
    return noun if noun == "null" else ("an " if noun[0] in "aeiou" else "a ") + noun
