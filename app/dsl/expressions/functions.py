"""The built-in functions an expression may call, and how a value reads as text."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from app.dsl.expressions.kinds import NUMBERS, type_name, with_article
from app.dsl.expressions.limits import MAX_ROUND_DIGITS, MAX_VALUE_SIZE, estimated_size
from app.errors import ExpressionEvaluationError, ExpressionLimitError


def format_value(value: Any) -> str:
    """How a value reads inside text (templates and `str()`): strings as they are, numbers via
    str(), true/false/null, objects and arrays as compact JSON. Refuses text over 1 MiB."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, NUMBERS):
        try:
            return str(value)
        except ValueError as error:  # an integer of more than 4300 digits
            raise ExpressionLimitError(f"cannot write the number as text: {error}") from None
    size = estimated_size(value)
    if size > MAX_VALUE_SIZE:
        raise ExpressionLimitError(
            f"the value is about {size:,} bytes as text, over the limit of "
            f"{MAX_VALUE_SIZE:,} bytes (1 MiB)"
        )
    try:
        text = json.dumps(value, default=_json_default, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as error:
        raise ExpressionEvaluationError(
            f"cannot write {with_article(type_name(value))} as text: {error}"
        ) from None
    if len(text) > MAX_VALUE_SIZE:
        raise ExpressionLimitError(
            f"the value is {len(text):,} characters as text, over the limit of "
            f"{MAX_VALUE_SIZE:,} (1 MiB)"
        )
    return text


def _json_default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    return str(value)


def _sum(values: Any, start: Any = 0) -> Any:
    total = _number(start)
    for value in values:
        total += _number(value)
    return total


def _number(value: Any) -> int | float:
    if not isinstance(value, NUMBERS):
        raise ExpressionEvaluationError(f"sum() adds numbers, not {with_article(type_name(value))}")
    return value


def _round(number: Any, digits: Any = None) -> Any:
    if isinstance(digits, int) and abs(digits) > MAX_ROUND_DIGITS:
        raise ExpressionLimitError(
            f"round() takes at most {MAX_ROUND_DIGITS} digits either side of the point"
        )
    return round(number, digits)


def _lower(text: Any) -> str:
    if not isinstance(text, str):
        raise ExpressionEvaluationError(
            f"lower() takes a string, not {with_article(type_name(text))}"
        )
    return text.lower()


def _upper(text: Any) -> str:
    if not isinstance(text, str):
        raise ExpressionEvaluationError(
            f"upper() takes a string, not {with_article(type_name(text))}"
        )
    return text.upper()


def _text_length(value: Any) -> int:
    return len(value) if isinstance(value, str) else 0


@dataclass(frozen=True)
class Function:
    call: Callable[..., Any]
    min_arguments: int = 1
    max_arguments: int | None = 1  # None: any number
    # For functions that make text: its size, from the first argument, before it is made.
    builds: Callable[[Any], int] | None = None

    def takes(self, count: int) -> bool:
        return count >= self.min_arguments and (
            self.max_arguments is None or count <= self.max_arguments
        )

    def arity_text(self) -> str:
        if self.max_arguments is None:
            return f"at least {self.min_arguments} argument"
        if self.max_arguments == self.min_arguments:
            return f"{self.min_arguments} argument"
        return f"{self.min_arguments} or {self.max_arguments} arguments"


FUNCTIONS: Final[Mapping[str, Function]] = {
    "len": Function(len),
    "str": Function(format_value, builds=estimated_size),
    "int": Function(int, 1, 2),
    "float": Function(float),
    "bool": Function(bool),
    "min": Function(min, 1, None),
    "max": Function(max, 1, None),
    "sum": Function(_sum, 1, 2),
    "abs": Function(abs),
    "round": Function(_round, 1, 2),
    "lower": Function(_lower, builds=_text_length),
    "upper": Function(_upper, builds=_text_length),
}
FUNCTION_LIST: Final = ", ".join(sorted(FUNCTIONS))
