"""The expression language's limits, and the budget one evaluation spends against them.

Every operation that could build a large value charges the size of its result to the
evaluation's budget before computing it (`charge`, from `estimated_size`); each evaluation also
has a deadline in CPU time, checked by the evaluators that do work.
"""

from __future__ import annotations

from typing import Any, Final

from app.dsl.expressions.kinds import ARRAYS, MAPPINGS, TEXTS
from app.errors import ExpressionLimitError

MAX_SOURCE_LENGTH: Final = 4096
COMPILED_CACHE_SIZE: Final = 1024  # distinct expression texts kept compiled
MAX_DEPTH: Final = 64
MAX_NODES: Final = 2000
MAX_VALUE_SIZE: Final = 1 << 20  # bytes, by `estimated_size`
MAX_ALLOCATED: Final = 8 * MAX_VALUE_SIZE  # new values built by one evaluation, all together
MAX_INTEGER: Final = 10**100
TIME_BUDGET_SECONDS: Final = 0.1

MAX_INTEGER_BITS: Final = MAX_INTEGER.bit_length()  # 2 ** (this - 1) already exceeds 10**100
MAX_ROUND_DIGITS: Final = 1000  # round(x, -n) computes 10**n
SLOT_SIZE: Final = 8  # what one element of a list or tuple costs

# What one evaluation may still spend, as `[deadline, bytes of new values built so far]`: a list
# because one is made per evaluation and a list costs a fraction of an object to create. A
# template shares one budget's bytes between its expressions (`Expression.evaluate_within`).
Budget = list[float]


def new_budget() -> Budget:
    """A budget for one evaluation (or one template's render): nothing built yet."""
    return [float("inf"), 0]


def charge(budget: Budget, size: float, *, one_value: bool = True) -> None:
    """Account for a new value of about `size` bytes, before it is built: refuse it past the
    per-value limit (unless `size` is not `one_value`), or when the evaluation has built too
    much altogether."""
    if one_value and size > MAX_VALUE_SIZE:
        raise ExpressionLimitError(
            f"the result would be about {size:,} bytes, over the limit of "
            f"{MAX_VALUE_SIZE:,} bytes (1 MiB) for one value"
        )
    budget[1] += size
    if budget[1] > MAX_ALLOCATED:
        raise ExpressionLimitError(
            f"the expression builds more than {MAX_ALLOCATED:,} bytes of values"
        )


def over_time() -> ExpressionLimitError:
    return ExpressionLimitError(
        f"the expression took longer than {TIME_BUDGET_SECONDS * 1000:.0f} ms of CPU to evaluate"
    )


def within_integer_limit(value: Any) -> Any:
    if type(value) is int and not -MAX_INTEGER <= value <= MAX_INTEGER:
        raise ExpressionLimitError("the integer result is beyond ±10**100")
    return value


def estimated_size(value: Any, limit: int = MAX_VALUE_SIZE) -> int:
    """About how many bytes `value` stands for: string lengths, 8 per element, a share for large
    integers, counting a shared part every time it appears (as writing it out would). Counting
    stops past `limit`, so the cost is bounded however large the value is."""
    kind = type(value)
    if kind is str:
        return len(value)
    if value is None or kind is bool or kind is float:
        return 0
    size = 0
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is str:  # the common kinds first, by exact type: this runs per placed value
            size += len(item)
        elif kind is dict:
            size += 2 * SLOT_SIZE * len(item)
            if size <= limit:
                pending += item.keys()
                pending += item.values()
        elif kind is list or kind is tuple:
            size += SLOT_SIZE * len(item)
            if size <= limit:
                pending += item
        elif kind is int:
            size += item.bit_length() // 8
        elif item is None or kind is bool or kind is float:
            continue
        elif isinstance(item, TEXTS):
            size += len(item)
        elif isinstance(item, int):
            size += item.bit_length() // 8
        elif isinstance(item, ARRAYS):
            size += SLOT_SIZE * len(item)
            if size <= limit:
                pending.extend(item)
        elif isinstance(item, MAPPINGS):
            size += 2 * SLOT_SIZE * len(item)
            if size <= limit:
                pending.extend(item.keys())
                pending.extend(item.values())
        if size > limit:
            break
    return size


def items_size(values: list[Any]) -> int:
    """The estimated size of a new list or tuple of `values`: a slot each, plus each value as
    often as it appears (`[a.big, a.big]` writes `a.big` out twice); counting stops past the
    limit."""
    size = SLOT_SIZE * len(values)
    for value in values:
        if size > MAX_VALUE_SIZE:
            break
        size += estimated_size(value, MAX_VALUE_SIZE - size)
    return size
