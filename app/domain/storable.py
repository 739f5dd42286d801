"""Storable JSON: the one rule for the values the service keeps in its rows and answers.

A value is storable when every store (SQLite, PostgreSQL, MariaDB) keeps it as it is and gives
it back equal: mappings with text keys, lists, text, booleans, null, finite numbers (integers
up to 4300 digits, Python's own limit for turning them into text), nested at most MAX_DEPTH
levels (MariaDB refuses deeper JSON), and no text holding a character no store can hold
(`errors.UNSTORABLE_CHARACTER`: NUL, lone surrogates). NaN and infinities are not JSON (SQLite
kept them as null, PostgreSQL refused them); a key that is not text would come back as text
(`{1: 2}` read back is `{"1": 2}`).

Values that drivers hand to tasks are converted once, here, as the store would have to:
datetimes, dates and times as ISO 8601 text, decimals as numbers, UUIDs as text, bytes as
UTF-8 text (undecodable bytes as U+FFFD), tuples and sets as lists, mapping and list subclasses
as plain ones. Anything else is refused.

The request bodies of the API (`app.api.body.parse_json`) and what leaves a task or ends a run
(`app.engine`) are checked by this module, once each: the stores trust what reaches them.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any
from uuid import UUID

from app.errors import UNSTORABLE_CHARACTER, UnstorableValueError, ValueTooLargeError

# Levels of nested mappings and lists. MariaDB's JSON columns check their text with
# JSON_VALID, which refuses 32 levels or more: a deeper value fails its write there.
MAX_DEPTH = 31
MAX_INT_DIGITS = 4300  # Python's default limit on int -> str (sys.get_int_max_str_digits)
_INT_LIMIT = 10**MAX_INT_DIGITS
_TEXT_REFUSED = "text may not hold NUL (\\u0000) or lone surrogates (\\ud800-\\udfff)"
_INT_REFUSED = f"an integer of more than {MAX_INT_DIGITS} digits"


@dataclass(frozen=True, slots=True)
class JsonData:
    value: Any  # plain JSON data: dict (text keys), list, str, int, float, bool, None
    size: int  # bytes as compact UTF-8 JSON (what `json_size` gives)


def json_data(value: Any, *, root: str = "value", text_keys: bool = True) -> Any:
    """`value` as plain JSON data (converted as the module says; `value` itself when nothing
    needed converting); UnstorableValueError naming the path (`root.rows[3].name`) of the
    first part that no store can hold.

    `text_keys=False` lets numbers, booleans and null be keys, turned into text as JSON does:
    for a document whose own text stays its truth (a YAML definition's `{200: ok}`).
    """
    return _Walk(root, None, text_keys).convert(value, 1)


def sized_json_data(value: Any, *, root: str, max_bytes: int) -> JsonData:
    """As `json_data`, with the size; ValueTooLargeError when it passes `max_bytes`.

    The walk gives up as soon as a lower bound of the size passes `max_bytes` (the error's
    `size` is then that bound, `exact` False): a value of a gigabyte costs no more to refuse
    than one just over the limit, and is never serialized.
    """
    walk = _Walk(root, max_bytes)
    converted = walk.convert(value, 1)
    size = json_size(converted)
    if size > max_bytes:
        raise ValueTooLargeError(size=size)
    return JsonData(converted, size)


def json_size(value: Any) -> int:
    """Bytes of `value` (plain JSON data) as compact UTF-8 JSON."""
    text = compact_json(value)
    return len(text) if text.isascii() else len(text.encode("utf-8"))


_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)
# The C encoder behind `json.dumps`, made once: `dumps` with arguments builds an encoder per
# call, which cost a small value (a step's usual outputs) more than encoding it.
_C_COMPACT = (
    None
    if c_make_encoder is None
    else c_make_encoder(
        None, None, encode_basestring, None, ":", ",", False, False, _COMPACT.allow_nan
    )
)


def compact_json(value: Any) -> str:
    """`value` (plain JSON data) as compact JSON text, non-ASCII characters as they are."""
    if _C_COMPACT is None or isinstance(value, str):  # the C encoder takes containers
        return _COMPACT.encode(value)
    return "".join(_C_COMPACT(value, 0))


def format_path(root: str, parts: list[str | int]) -> str:
    """`format_path("outputs", ["rows", 3, "full name"])` -> `outputs.rows[3]["full name"]`."""
    path = root
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.isidentifier():
            path += f".{part}"
        else:
            path += f"[{json.dumps(part)}]"
    return path


class _Refused(Exception):
    """Raised where a part is refused; each level on the way out adds its key to `parts`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.parts: list[str | int] = []  # innermost first


class _TooLarge(Exception):
    pass


class _Walk:
    def __init__(self, root: str, max_bytes: int | None, text_keys: bool = True) -> None:
        self.root = root
        self.max_bytes = sys.maxsize if max_bytes is None else max_bytes
        self.text_keys = text_keys
        self.low = 0  # a lower bound of the serialized size of what was walked so far

    def convert(self, value: Any, depth: int) -> Any:
        try:
            return self._value(value, depth)
        except _Refused as refused:
            parts = refused.parts[::-1]
            path = format_path(self.root, parts)
            raise UnstorableValueError(
                f"{path}: {refused.reason}",
                loc=(self.root, *parts),
                path=path,
                reason=refused.reason,
            ) from None
        except _TooLarge:
            raise ValueTooLargeError(size=self.low, exact=False) from None

    def _value(self, value: Any, depth: int) -> Any:
        # The common types first, checked and charged inline: this runs once per node.
        kind = type(value)
        if kind is str:
            if "\x00" in value if value.isascii() else UNSTORABLE_CHARACTER.search(value):
                raise _Refused(_TEXT_REFUSED)
            self.low += len(value) + 2
        elif kind is int:
            if not -_INT_LIMIT < value < _INT_LIMIT:
                raise _Refused(_INT_REFUSED)
            self.low += 1
        elif kind is dict or kind is list:
            return self._container(value, depth)
        elif value is None or kind is bool:
            self.low += 4
        elif kind is float:
            if not math.isfinite(value):
                raise _Refused(_not_a_number(value))
            self.low += 1
        else:
            return self._other(value, depth)
        if self.low > self.max_bytes:
            raise _TooLarge
        return value

    def _container(self, value: dict[Any, Any] | list[Any], depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise _Refused(f"nesting deeper than {MAX_DEPTH} levels")
        self._charge(2)
        if isinstance(value, dict):
            return self._mapping(value, depth)
        return self._sequence(value, depth)

    # The two loops below run once per element: plain scalars (ASCII text without NUL, integers,
    # finite floats, booleans, null) are checked and charged inline, without a call; any other
    # element goes through `_value`. (`x - x == 0.0` is false for NaN and the infinities.)

    def _mapping(self, mapping: dict[Any, Any], depth: int) -> dict[str, Any]:
        converted: dict[str, Any] | None = None if type(mapping) is dict else {}
        for position, (key, item) in enumerate(mapping.items()):
            self._key(key)
            kind = type(item)
            if kind is str and item.isascii() and "\x00" not in item:
                self.low += len(item) + 2
                kept = item
            elif (
                (kind is int and -_INT_LIMIT < item < _INT_LIMIT)
                or (kind is float and item - item == 0.0)
                or item is None
                or kind is bool
            ):
                self.low += 1
                kept = item
            else:
                kept = self._child(item, depth, key)
                if kept is not item and converted is None:
                    converted = dict(list(mapping.items())[:position])
            if self.low > self.max_bytes:
                raise _TooLarge
            if converted is not None:
                converted[str(key)] = kept
        return mapping if converted is None else converted

    def _sequence(self, items: list[Any], depth: int) -> list[Any]:
        converted: list[Any] | None = None
        for index, item in enumerate(items):
            kind = type(item)
            if kind is str and item.isascii() and "\x00" not in item:
                self.low += len(item) + 3
                kept = item
            elif (
                (kind is int and -_INT_LIMIT < item < _INT_LIMIT)
                or (kind is float and item - item == 0.0)
                or item is None
                or kind is bool
            ):
                self.low += 2
                kept = item
            else:
                kept = self._child(item, depth, index)
                if kept is not item and converted is None:
                    converted = items[:index]
            if self.low > self.max_bytes:
                raise _TooLarge
            if converted is not None:
                converted.append(kept)
        return items if converted is None else converted

    def _child(self, item: Any, depth: int, part: str | int) -> Any:
        """An element that is not a plain scalar; a refusal inside it gets `part` in its path."""
        try:
            return self._value(item, depth + 1)
        except _Refused as refused:
            refused.parts.append(part)
            raise

    def _key(self, key: Any) -> None:
        if isinstance(key, str):
            if "\x00" in key if key.isascii() else UNSTORABLE_CHARACTER.search(key):
                raise _Refused(f"the key {key!r}: {_TEXT_REFUSED}")
            self.low += len(key) + 3
        elif self.text_keys or not (key is None or isinstance(key, bool | int | float)):
            # Where text keys are not required, JSON turns numbers, booleans and null into text.
            kind = type(key).__name__
            raise _Refused(f"the key {key!r} is not text ({kind}); JSON keys are text")

    def _other(self, value: Any, depth: int) -> Any:
        """Subclasses of the JSON types, and the values drivers hand to tasks."""
        if isinstance(value, str | int | float):  # a subclass (an enum, say): the plain value
            plain = next(kind for kind in (str, int, float) if isinstance(value, kind))
            return self._value(plain(value), depth)
        if isinstance(value, dict):
            return self._container(value, depth)
        if isinstance(value, list | tuple | set | frozenset):
            return self._container(list(value), depth)
        if isinstance(value, datetime | date | time):
            return self._value(value.isoformat(), depth)
        if isinstance(value, Decimal):
            return self._value(_decimal_number(value), depth)
        if isinstance(value, UUID):
            return self._value(str(value), depth)
        if isinstance(value, bytes | bytearray | memoryview):
            return self._value(bytes(value).decode("utf-8", errors="replace"), depth)
        raise _Refused(f"a value of type {type(value).__name__} is not JSON data")

    def _charge(self, size: int) -> None:
        self.low += size
        if self.low > self.max_bytes:
            raise _TooLarge


def _decimal_number(value: Decimal) -> int | float:
    if not value.is_finite():
        raise _Refused(f"Decimal({str(value)!r}) is not a JSON number")
    return int(value) if value == value.to_integral_value() else float(value)


def _not_a_number(value: float) -> str:
    shown = "NaN" if math.isnan(value) else ("-" if value < 0 else "") + "Infinity"
    return f"{shown} is not a JSON number"
