"""Reading typed fields out of loaded YAML/JSON, reporting each misfit as a problem.

Every reader returns the value when it fits and `None` (after recording a problem) when it
does not, so parsing goes on and the definition's problems are all reported at once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from typing import Any

from app.dsl.expressions import Expression
from app.dsl.problems import ProblemCollector
from app.dsl.templates import Template, compile_condition, compile_template
from app.errors import ExpressionSyntaxError, Loc

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
FLOW_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")


class FieldReader:
    def __init__(self, problems: ProblemCollector) -> None:
        self.problems = problems

    def mapping(self, value: Any, loc: Loc, what: str = "a mapping") -> Mapping[str, Any] | None:
        if isinstance(value, Mapping) and all(isinstance(key, str) for key in value):
            return value
        self.problems.add(loc, f"must be {what}", "type_error")
        return None

    def string(self, value: Any, loc: Loc, pattern: re.Pattern[str] | None = None) -> str | None:
        if not isinstance(value, str):
            self.problems.add(loc, "must be a string", "type_error")
            return None
        if pattern is not None and not pattern.match(value):
            self.problems.add(loc, f"{value!r} does not match {pattern.pattern}", "pattern")
            return None
        return value

    def identifier(self, value: Any, loc: Loc) -> str | None:
        return self.string(value, loc, IDENTIFIER)

    def choice(self, value: Any, loc: Loc, choices: Collection[str]) -> str | None:
        if isinstance(value, str) and value in choices:
            return value
        self.problems.add(loc, f"must be one of {', '.join(sorted(choices))}", "enum")
        return None

    def boolean(self, value: Any, loc: Loc) -> bool | None:
        if isinstance(value, bool):
            return value
        self.problems.add(loc, "must be true or false", "type_error")
        return None

    def integer(
        self, value: Any, loc: Loc, minimum: int | None = None, maximum: int | None = None
    ) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.problems.add(loc, "must be an integer", "type_error")
            return None
        if minimum is not None and value < minimum:
            self.problems.add(loc, f"must be at least {minimum}", "value_error")
            return None
        if maximum is not None and value > maximum:
            self.problems.add(loc, f"must be at most {maximum:,}", "value_error")
            return None
        return value

    def number(
        self, value: Any, loc: Loc, minimum: float = 0, *, strict: bool = False
    ) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            self.problems.add(loc, "must be a number", "type_error")
            return None
        if value < minimum or (strict and value == minimum):
            bound = "greater than" if strict else "at least"
            self.problems.add(loc, f"must be {bound} {minimum:g}", "value_error")
            return None
        return float(value)

    def duration(
        self, value: Any, loc: Loc, limit: float, setting: str, *, strict: bool = False
    ) -> float | None:
        """Seconds: a number at least 0 (greater, when `strict`) and at most `limit`, which
        the message names with its `setting`."""
        seconds = self.number(value, loc, strict=strict)
        if seconds is not None and seconds > limit:
            self.problems.add(
                loc,
                f"must be at most {_seconds_text(limit)} seconds (setting {setting}), "
                f"not {seconds:g}",
                "duration_too_long",
            )
            return None
        return seconds

    def string_list(self, value: Any, loc: Loc, *, identifiers: bool = False) -> list[str] | None:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            self.problems.add(loc, "must be a list of strings", "type_error")
            return None
        items = [
            self.identifier(item, (*loc, index))
            if identifiers
            else self.string(item, (*loc, index))
            for index, item in enumerate(value)
        ]
        return [item for item in items if item is not None]

    def only_keys(self, mapping: Mapping[str, Any], allowed: Collection[str], loc: Loc) -> None:
        for key in mapping:
            if key not in allowed:
                known = ", ".join(sorted(allowed))
                self.problems.add((*loc, key), f"unknown field {key!r} (known: {known})", "extra")

    def template(self, value: Any, loc: Loc) -> Template | None:
        try:
            return compile_template(value)
        except ExpressionSyntaxError as error:
            self.problems.add(loc, f"invalid expression: {error.message}", "expression")
            return None

    def condition(self, value: Any, loc: Loc) -> Expression | None:
        if not isinstance(value, str | bool):
            self.problems.add(loc, "must be an expression string or a boolean", "type_error")
            return None
        try:
            return compile_condition(value)
        except ExpressionSyntaxError as error:
            self.problems.add(loc, f"invalid expression: {error.message}", "expression")
            return None


def _seconds_text(seconds: float) -> str:
    """`86,400` and `31,622,400`, not `3.16224e+07`; `0.5` stays."""
    return f"{int(seconds):,}" if float(seconds).is_integer() else f"{seconds:,g}"
