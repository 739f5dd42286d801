"""Values in answers: bounded in size, and always answerable.

A run's inputs and outputs and its tasks' outputs are answered whole while they fit: each up to
MAX_ANSWER_VALUE_BYTES, and all the values of one answer up to MAX_ANSWER_BYTES, in the order
they appear. A value that does not fit is replaced by a marker,
`{"truncated": true, "bytes": N, "href": "/runs/{id}/outputs"}`, whose `href` answers it
whole; a mapping (a step's named outputs) is first tried key by key, so its small outputs stay
visible beside the marker of a large one.

A value read back from a row written before values were checked (NaN, a lone surrogate) is
answered cleaned (null, U+FFFD) rather than failing the whole answer: measuring a value is
serializing it, which is where such a value shows itself, so this costs nothing more.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from app.domain.records import OmittedValue
from app.errors import REPLACEMENT_CHARACTER, UNSTORABLE_CHARACTER
from app.settings import Settings

# A mapping with more keys than this is replaced whole, not key by key: a marker per key
# would make the answer larger, not smaller.
MAX_KEYS_SPLIT = 100
# A value read with OmittedValue was left in the store past this many times the threshold of
# its listing (the store measures its own JSON text, which may be up to about three times
# the compact size: escapes, spaces), so it certainly does not fit.
STORE_TEXT_FACTOR = 4
# Past this depth a value read back is answered as null (a store reads at most ~1000 levels).
MAX_CLEAN_DEPTH = 200
MAX_INT_BITS = 14_000  # about 4200 digits: Python turns at most 4300 into text


@dataclass
class AnswerBudget:
    """How much of an answer values may still take; `fit` spends it."""

    max_value_bytes: int
    left: int

    @classmethod
    def for_answer(cls, settings: Settings) -> AnswerBudget:
        return cls(settings.max_answer_value_bytes, settings.max_answer_bytes)

    @classmethod
    def for_listing(cls, settings: Settings, items: int) -> AnswerBudget:
        """Each of a page's `items` runs gets an equal share for its inputs and its outputs."""
        share = max(1, settings.max_answer_bytes // (2 * max(items, 1)))
        return cls(min(settings.max_answer_value_bytes, share), settings.max_answer_bytes)

    @property
    def store_cut(self) -> int:
        """The size of its JSON text past which the store need not read a value at all."""
        return STORE_TEXT_FACTOR * self.max_value_bytes

    def fit(self, value: Any, href: str) -> Any:
        """`value` as answered: whole, key by key, or a marker pointing at `href`."""
        if value is None:
            return None
        if isinstance(value, OmittedValue):
            return truncated(value.bytes, href)
        value, size = measured(value)
        if self._takes(size):
            return value
        if isinstance(value, dict) and len(value) <= MAX_KEYS_SPLIT:
            return {key: self._fit_whole(item, href) for key, item in value.items()}
        return truncated(size, href)

    def _fit_whole(self, value: Any, href: str) -> Any:
        value, size = measured(value)
        return value if self._takes(size) else truncated(size, href)

    def _takes(self, size: int) -> bool:
        if size > self.max_value_bytes or size > self.left:
            return False
        self.left -= size
        return True


def truncated(size: int, href: str) -> dict[str, Any]:
    return {"truncated": True, "bytes": size, "href": href}


def json_bytes(value: Any) -> bytes:
    """`value` (cleaned when it must be) as compact UTF-8 JSON, to answer it whole."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return text.encode("utf-8")
    except (ValueError, TypeError, UnicodeEncodeError, RecursionError):
        return json.dumps(answerable(value), ensure_ascii=False, separators=(",", ":")).encode()


def measured(value: Any) -> tuple[Any, int]:
    """(`value` as answered, its size as compact UTF-8 JSON); cleaned when it cannot be
    answered as it is."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return value, len(text) if text.isascii() else len(text.encode("utf-8"))
    except (ValueError, TypeError, UnicodeEncodeError, RecursionError):
        value = answerable(value)
        return value, len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def answerable(value: Any, depth: int = 0) -> Any:
    """`value` with what JSON answers cannot carry replaced: non-finite numbers by null,
    unencodable characters by U+FFFD, keys by their text, other objects by theirs."""
    if depth > MAX_CLEAN_DEPTH:
        return None
    if isinstance(value, str):
        return UNSTORABLE_CHARACTER.sub(REPLACEMENT_CHARACTER, value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):  # int -> text stops at 4300 digits
        return value if value.bit_length() < MAX_INT_BITS else None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {answerable(str(key)): answerable(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [answerable(item, depth + 1) for item in value]
    return answerable(str(value), depth)
