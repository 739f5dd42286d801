"""How fast compiled expressions and templates evaluate: `python -m bench.bench_expressions`.

The engine evaluates on the order of 10^5 expressions per second, so a typical one must stay
well under 10 µs. Prints the best of several runs, in nanoseconds per evaluation.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable
from functools import partial
from typing import Any

from app.dsl.expressions import compile_expression
from app.dsl.templates import compile_condition, compile_template

SCOPE: dict[str, Any] = {
    "inputs": {"user_id": 7, "name": "Ada"},
    "check_cache": {"exists": False},
    "fetch_from_db": {"rows": [{"id": 7, "email": "ada@example.org"}]},
    "a": {"b": [1, 2]},
}

EXPRESSIONS = [
    "inputs.user_id",
    "not check_cache.exists",
    "fetch_from_db.rows[0]",
    "a.b[0] + 1",
    "inputs.user_id > 3 and not check_cache.exists",
    "len(a.b) == 2",
    "'user:' + str(inputs.user_id)",
]
TEMPLATES: list[Any] = [
    "${inputs.user_id}",
    "user:${inputs.user_id}",
    {"user_data": "${fetch_from_db.rows[0]}", "headers": {"Accept": "application/json"}},
    ["${inputs.user_id}", "${inputs.name}", 3],
]
CONDITIONS = ["not ${check_cache.exists}", "${inputs.user_id} > 3 and ${a.b}"]


def nanoseconds_per_call(call: Callable[[], object], number: int = 100_000) -> float:
    best = min(timeit.repeat(call, number=number, repeat=5))
    return best / number * 1e9


def main() -> None:
    baseline = nanoseconds_per_call(lambda: SCOPE["inputs"]["user_id"])
    print(f"{'plain Python: SCOPE[...][...]':55s} {baseline:8.0f} ns")
    for source in EXPRESSIONS:
        expression = compile_expression(source)
        print(f"{source:55s} {nanoseconds_per_call(partial(expression.evaluate, SCOPE)):8.0f} ns")
    for value in TEMPLATES:
        template = compile_template(value)
        label = f"template {value!r}"[:55]
        print(f"{label:55s} {nanoseconds_per_call(partial(template.render, SCOPE)):8.0f} ns")
    for text in CONDITIONS:
        condition = compile_condition(text)
        label = f"condition {text!r}"[:55]
        print(f"{label:55s} {nanoseconds_per_call(partial(condition.evaluate, SCOPE)):8.0f} ns")


if __name__ == "__main__":
    main()
