"""The operators: each checks the size of what it would build before building it."""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any, Final

from app.dsl.expressions.kinds import SEQUENCES, TEXTS
from app.dsl.expressions.limits import (
    MAX_INTEGER_BITS,
    Budget,
    charge,
    estimated_size,
    within_integer_limit,
)
from app.errors import ExpressionEvaluationError, ExpressionLimitError


def _add(left: Any, right: Any, budget: Budget) -> Any:
    if isinstance(left, SEQUENCES) and isinstance(right, SEQUENCES):
        charge(budget, estimated_size(left) + estimated_size(right))
        return operator.add(left, right)  # mixed kinds raise TypeError, as they should
    return within_integer_limit(left + right)


def _subtract(left: Any, right: Any, budget: Budget) -> Any:
    return within_integer_limit(left - right)


def _multiply(left: Any, right: Any, budget: Budget) -> Any:
    if isinstance(left, SEQUENCES) and isinstance(right, int):
        charge(budget, estimated_size(left) * max(right, 0))
        return left * right
    if isinstance(right, SEQUENCES) and isinstance(left, int):
        charge(budget, estimated_size(right) * max(left, 0))
        return left * right
    return within_integer_limit(left * right)


def _divide(left: Any, right: Any, budget: Budget) -> Any:
    return left / right


def _floor_divide(left: Any, right: Any, budget: Budget) -> Any:
    return within_integer_limit(left // right)


def _modulo(left: Any, right: Any, budget: Budget) -> Any:
    if isinstance(left, TEXTS):
        # printf-style formatting can pad to any width: "%0999999999d" % 1
        raise ExpressionEvaluationError(
            "'%' formatting of strings is not supported; use text around placeholders"
        )
    return within_integer_limit(left % right)


def _power(base: Any, exponent: Any, budget: Budget) -> Any:
    if (
        isinstance(base, int)
        and isinstance(exponent, int)
        and exponent > 0
        and abs(base) > 1
        # |base| >= 2 ** (bits - 1), so the result has at least (bits - 1) * exponent bits
        and (abs(base).bit_length() - 1) * exponent >= MAX_INTEGER_BITS
    ):
        raise ExpressionLimitError("the integer result is beyond ±10**100")
    result = base**exponent
    if isinstance(result, complex):
        raise ExpressionEvaluationError("the result is a complex number")
    return within_integer_limit(result)


BINARY_OPERATORS: Final[
    Mapping[type[ast.operator], tuple[str, Callable[[Any, Any, Budget], Any]]]
] = {
    ast.Add: ("+", _add),
    ast.Sub: ("-", _subtract),
    ast.Mult: ("*", _multiply),
    ast.Div: ("/", _divide),
    ast.FloorDiv: ("//", _floor_divide),
    ast.Mod: ("%", _modulo),
    ast.Pow: ("**", _power),
}


def _contains(left: Any, right: Any) -> bool:
    return left in right


def _does_not_contain(left: Any, right: Any) -> bool:
    return left not in right


COMPARISONS: Final[Mapping[type[ast.cmpop], tuple[str, Callable[[Any, Any], Any]]]] = {
    ast.Eq: ("==", operator.eq),
    ast.NotEq: ("!=", operator.ne),
    ast.Lt: ("<", operator.lt),
    ast.LtE: ("<=", operator.le),
    ast.Gt: (">", operator.gt),
    ast.GtE: (">=", operator.ge),
    ast.In: ("in", _contains),
    ast.NotIn: ("not in", _does_not_contain),
    ast.Is: ("is", operator.is_),
    ast.IsNot: ("is not", operator.is_not),
}
