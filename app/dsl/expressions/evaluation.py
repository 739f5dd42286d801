"""Evaluating a compiled expression: the `Expression` and the closures it is made of.

Work-doing closures check the evaluation's deadline first; names, constants and attribute reads
are O(1) and skip it. No attribute is ever read from a Python object: `a.b` means `a["b"]` on
mappings only.
"""

from __future__ import annotations

import gc
import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from app.dsl.expressions.functions import Function
from app.dsl.expressions.kinds import INDEXABLE, MAPPINGS, type_name, with_article
from app.dsl.expressions.limits import (
    SLOT_SIZE,
    TIME_BUDGET_SECONDS,
    Budget,
    charge,
    estimated_size,
    items_size,
    over_time,
    within_integer_limit,
)
from app.errors import (
    ExpressionError,
    ExpressionEvaluationError,
    ExpressionLimitError,
    format_loc,
)

Scope = Mapping[str, Any]


class _GarbageCollection:
    """The CPU time the interpreter spent collecting garbage so far (`gc.callbacks`)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def __call__(self, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.thread_time()
        else:
            self.seconds += time.thread_time() - self._started


_collected = _GarbageCollection()
gc.callbacks.append(_collected)


def _thread_time_but_collection() -> float:
    return time.thread_time() - _collected.seconds


# The evaluating thread's CPU time, not the wall clock: a process descheduled on a busy machine
# (or waiting for a lock) must not fail an expression that did little work; nor does a pass of
# the garbage collector that happens to run during it, over the whole process's heap (over
# 100 ms in a large process). Module level so tests can replace the clock instead of sleeping.
_clock = _thread_time_but_collection


@dataclass(frozen=True)
class Reference:
    """A name an expression reads, with the constant attribute/index path read after it."""

    root: str
    path: tuple[str | int, ...] = ()

    def __str__(self) -> str:
        return format_loc((self.root, *self.path))


_UNUSED_BUDGET: Final[Budget] = [float("inf"), 0]  # for expressions that never consult it

Evaluator = Callable[[Scope, Budget], Any]


class Expression:
    """A compiled expression. Immutable: evaluate it as often as needed, from any thread."""

    __slots__ = ("_budgeted", "_evaluator", "references", "source")

    def __init__(
        self,
        source: str,
        evaluator: Evaluator,
        references: frozenset[Reference],
        *,
        budgeted: bool = True,
    ) -> None:
        self.source = source
        self.references = references
        self._evaluator = evaluator
        self._budgeted = budgeted  # False: no part of it does work worth a clock reading

    def evaluate(self, scope: Scope) -> Any:
        """The expression's value in `scope`; raises only `ExpressionEvaluationError` (or its
        subclass `ExpressionLimitError`)."""
        budget = [_clock() + TIME_BUDGET_SECONDS, 0] if self._budgeted else _UNUSED_BUDGET
        return self._run(scope, budget)

    def evaluate_within(self, scope: Scope, budget: Budget) -> Any:
        """As `evaluate`, counting what it builds in `budget` (a template's, shared by its
        expressions); its time budget is its own."""
        if self._budgeted:
            budget[0] = _clock() + TIME_BUDGET_SECONDS
        return self._run(scope, budget)

    def _run(self, scope: Scope, budget: Budget) -> Any:
        try:
            return self._evaluator(scope, budget)
        except ExpressionError:
            raise
        except (RecursionError, MemoryError) as error:
            raise ExpressionLimitError(
                f"`{shorten(self.source)}` is too costly to evaluate ({type(error).__name__})"
            ) from None
        except Exception as error:  # a scope value misbehaved; never leak a raw exception
            raise ExpressionEvaluationError(
                f"`{shorten(self.source)}` failed: {type(error).__name__}: {error}"
            ) from error

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


def shorten(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------------------------
# Evaluators: the closures a compiled expression is made of. Work-doing ones check the deadline
# first; names, constants and attribute reads are O(1) and skip it.


def constant(value: Any) -> Evaluator:
    def evaluate(scope: Scope, budget: Budget) -> Any:
        return value

    return evaluate


def read_name(name: str) -> Evaluator:
    def evaluate(scope: Scope, budget: Budget) -> Any:
        try:
            return scope[name]
        except KeyError:
            raise _undefined(name, scope) from None

    return evaluate


def _undefined(name: str, scope: Scope) -> ExpressionEvaluationError:
    return ExpressionEvaluationError(
        f"name {name!r} is not defined; {_listed_keys(scope, 'defined names')}"
    )


def read_path(base: Evaluator, steps: tuple[tuple[Any, bool, str], ...]) -> Evaluator:
    def evaluate(scope: Scope, budget: Budget) -> Any:
        return _walk(base(scope, budget), steps, budget)

    return evaluate


def read_name_path(name: str, steps: tuple[tuple[Any, bool, str], ...]) -> Evaluator:
    """`name.a[0]`, the most common expression, as one closure: faster than a name evaluator
    under a path evaluator, and fewer objects for the collector to walk per definition."""

    def evaluate(scope: Scope, budget: Budget) -> Any:
        try:
            value = scope[name]
        except KeyError:
            raise _undefined(name, scope) from None
        return _walk(value, steps, budget)

    return evaluate


def _walk(value: Any, steps: tuple[tuple[Any, bool, str], ...], budget: Budget) -> Any:
    for key, is_attribute, where in steps:
        kind = type(value)
        if kind is dict or (kind is list and not is_attribute):
            try:
                value = value[key]
                continue
            except (KeyError, IndexError, TypeError):
                pass  # the general case below explains what went wrong
        if is_attribute:
            value = _attribute_of(value, key, where)
        else:
            value = _index(value, key, where, budget)
    return value


def _attribute_of(value: Any, key: str, where: str) -> Any:
    """`value.key`: a key of a mapping, read with __getitem__ (scope mappings may define it)."""
    if isinstance(value, MAPPINGS):
        try:
            return value[key]
        except KeyError:
            raise _missing_key(where, key, value) from None
    raise ExpressionEvaluationError(
        f"cannot read {key!r} of `{where}`: it is {with_article(type_name(value))}, not an object"
    )


def subscript(target: Evaluator, key_evaluator: Evaluator, where: str) -> Evaluator:
    def evaluate(scope: Scope, budget: Budget) -> Any:
        container = target(scope, budget)
        key = key_evaluator(scope, budget)
        if _clock() > budget[0]:
            raise over_time()
        return _index(container, key, where, budget)

    return evaluate


def _index(container: Any, key: Any, where: str, budget: Budget) -> Any:
    """`container[key]` for the containers the language knows, with errors that explain."""
    if isinstance(container, MAPPINGS):
        if isinstance(key, slice):
            raise ExpressionEvaluationError(f"cannot slice `{where}`: it is an object")
        try:
            return container[key]
        except KeyError:
            raise _missing_key(where, key, container) from None
        except TypeError:
            raise ExpressionEvaluationError(
                f"{with_article(type_name(key))} cannot be a key of `{where}`"
            ) from None
    if isinstance(container, INDEXABLE):
        if isinstance(key, slice):
            return _slice_of(container, key, where, budget)
        try:
            return container[key]
        except IndexError:
            if not container:  # a query that matched no row, a search that found nothing
                raise ExpressionEvaluationError(
                    f"`{where}` is empty ({with_article(type_name(container))} of length 0), "
                    f"so it has no index {key!r}"
                ) from None
            raise ExpressionEvaluationError(
                f"index {key!r} is out of range for `{where}` "
                f"({with_article(type_name(container))} of length {len(container)})"
            ) from None
        except TypeError:
            raise ExpressionEvaluationError(
                f"`{where}` is {with_article(type_name(container))}: its index must be an integer, "
                f"not {with_article(type_name(key))}"
            ) from None
    raise ExpressionEvaluationError(
        f"cannot index `{where}`: it is {with_article(type_name(container))}"
    )


def _slice_of(container: Sequence[Any], key: slice, where: str, budget: Budget) -> Any:
    try:
        length = len(range(*key.indices(len(container))))
    except (TypeError, ValueError) as error:
        raise ExpressionEvaluationError(f"bad slice of `{where}`: {error}") from None
    charge(budget, length if isinstance(container, str) else length * SLOT_SIZE)
    return container[key]


def make_slice(
    lower: Evaluator | None, upper: Evaluator | None, step: Evaluator | None
) -> Evaluator:
    def evaluate(scope: Scope, budget: Budget) -> slice:
        return slice(
            None if lower is None else lower(scope, budget),
            None if upper is None else upper(scope, budget),
            None if step is None else step(scope, budget),
        )

    return evaluate


def make_list(elements: tuple[Evaluator, ...]) -> Evaluator:
    def evaluate(scope: Scope, budget: Budget) -> list[Any]:
        if _clock() > budget[0]:
            raise over_time()
        values = [element(scope, budget) for element in elements]
        charge(budget, items_size(values))
        return values

    return evaluate


def make_tuple(elements: tuple[Evaluator, ...]) -> Evaluator:
    def evaluate(scope: Scope, budget: Budget) -> tuple[Any, ...]:
        if _clock() > budget[0]:
            raise over_time()
        values = [element(scope, budget) for element in elements]
        charge(budget, items_size(values))
        return tuple(values)

    return evaluate


def make_dict(items: tuple[tuple[Evaluator, Evaluator], ...], where: str) -> Evaluator:
    def evaluate(scope: Scope, budget: Budget) -> dict[Any, Any]:
        if _clock() > budget[0]:
            raise over_time()
        result: dict[Any, Any] = {}
        for key_evaluator, value_evaluator in items:
            key = key_evaluator(scope, budget)
            value = value_evaluator(scope, budget)
            try:
                result[key] = value
            except TypeError:
                raise ExpressionEvaluationError(
                    f"{with_article(type_name(key))} cannot be a key in `{where}`"
                ) from None
        charge(budget, estimated_size(result))
        return result

    return evaluate


def binary(
    left: Evaluator,
    right: Evaluator,
    symbol: str,
    operation: Callable[[Any, Any, Budget], Any],
    where: str,
) -> Evaluator:
    def evaluate(scope: Scope, budget: Budget) -> Any:
        left_value = left(scope, budget)
        right_value = right(scope, budget)
        if _clock() > budget[0]:
            raise over_time()
        try:
            return operation(left_value, right_value, budget)
        except ExpressionError as error:
            raise type(error)(f"{error.message} (in `{where}`)") from None
        except ZeroDivisionError:
            raise ExpressionEvaluationError(f"division by zero in `{where}`") from None
        except TypeError:
            raise ExpressionEvaluationError(
                f"cannot apply '{symbol}' to {with_article(type_name(left_value))} and "
                f"{with_article(type_name(right_value))} in `{where}`"
            ) from None
        except (ValueError, ArithmeticError) as error:
            raise ExpressionEvaluationError(f"`{where}` failed: {error}") from None

    return evaluate


def unary(
    operand: Evaluator, symbol: str, operation: Callable[[Any], Any], where: str
) -> Evaluator:
    def evaluate(scope: Scope, budget: Budget) -> Any:
        value = operand(scope, budget)
        try:
            return operation(value)
        except TypeError:
            raise ExpressionEvaluationError(
                f"cannot apply unary '{symbol}' to {with_article(type_name(value))} in `{where}`"
            ) from None

    return evaluate


def logical_not(operand: Evaluator) -> Evaluator:
    def evaluate(scope: Scope, budget: Budget) -> bool:
        return not operand(scope, budget)

    return evaluate


def logical_and(operands: tuple[Evaluator, ...]) -> Evaluator:
    def evaluate(scope: Scope, budget: Budget) -> Any:
        value = None
        for operand in operands:
            value = operand(scope, budget)
            if not value:
                return value
        return value

    return evaluate


def logical_or(operands: tuple[Evaluator, ...]) -> Evaluator:
    def evaluate(scope: Scope, budget: Budget) -> Any:
        value = None
        for operand in operands:
            value = operand(scope, budget)
            if value:
                return value
        return value

    return evaluate


def conditional(test: Evaluator, body: Evaluator, orelse: Evaluator) -> Evaluator:
    def evaluate(scope: Scope, budget: Budget) -> Any:
        return body(scope, budget) if test(scope, budget) else orelse(scope, budget)

    return evaluate


def compare(
    first: Evaluator,
    steps: tuple[tuple[str, Callable[[Any, Any], Any], Evaluator], ...],
    where: str,
) -> Evaluator:
    def evaluate(scope: Scope, budget: Budget) -> Any:
        left = first(scope, budget)
        result: Any = True
        for symbol, comparison, right_evaluator in steps:  # Python's chained semantics
            right = right_evaluator(scope, budget)
            if _clock() > budget[0]:
                raise over_time()
            try:
                result = comparison(left, right)
            except TypeError:
                raise ExpressionEvaluationError(
                    f"cannot apply '{symbol}' to {with_article(type_name(left))} and "
                    f"{with_article(type_name(right))} in `{where}`"
                ) from None
            if not result:
                return result
            left = right
        return result

    return evaluate


def call(
    name: str,
    function: Function,
    arguments: tuple[Evaluator, ...],
    where: str,
) -> Evaluator:
    call, builds = function.call, function.builds

    def evaluate(scope: Scope, budget: Budget) -> Any:
        values = [argument(scope, budget) for argument in arguments]
        if _clock() > budget[0]:
            raise over_time()
        expected = 0
        try:
            if builds is not None:  # charged before the text is made
                expected = builds(values[0])
                charge(budget, expected)
            result = call(*values)
        except ExpressionError as error:
            raise type(error)(f"{error.message} (in `{where}`)") from None
        except TypeError as error:
            kinds = ", ".join(type_name(value) for value in values)
            raise ExpressionEvaluationError(
                f"{name}() cannot take ({kinds}) in `{where}`: {error}"
            ) from None
        except (ValueError, ArithmeticError) as error:
            raise ExpressionEvaluationError(f"`{where}` failed: {error}") from None
        if type(result) is int:
            return within_integer_limit(result)
        if type(result) is str and len(result) > expected:  # the estimate fell short
            charge(budget, len(result) - expected)
        return result

    return evaluate


def _missing_key(where: str, key: Any, mapping: Mapping[Any, Any]) -> ExpressionEvaluationError:
    return ExpressionEvaluationError(
        f"`{where}` has no key {key!r}; {_listed_keys(mapping, 'available keys')}"
    )


def _listed_keys(mapping: Mapping[Any, Any], label: str, shown: int = 10) -> str:
    keys = [shorten(repr(key), 40) for key in itertools.islice(mapping, shown)]
    if not keys:
        return f"{label}: none"
    more = len(mapping) - len(keys)
    return f"{label}: {', '.join(keys)}" + (f" and {more} more" if more > 0 else "")
