"""The `${...}` expression language: a safe, Python-like evaluator.

An expression is parsed with `ast.parse(mode="eval")`, checked against an allow-list of syntax,
and compiled once into a tree of closures (`compiler`); `Expression.evaluate` runs those closures
against a scope (`evaluation`). User text never reaches Python's eval/exec/compile, and no
attribute is ever read from a Python object: `a.b` means `a["b"]` on mappings only. Every
operation that could build a large value checks the size of its result before computing it, and
each evaluation has a time and an allocation budget (`limits`), so an expression can neither run
code nor exhaust the process. The functions it may call are in `functions`, its operators in
`operators`.

Choices a flow author sees: `true`/`false`/`null` are aliases of `True`/`False`/`None` (flows come
from YAML and JSON, so those names can never be scope names); set literals are refused so that
every value stays JSON-shaped; `str(x)` writes values the way templates do (`true`, `null`,
compact JSON), not Python's `repr`; `is` only compares with `None`.
"""

from app.dsl.expressions.compiler import compile_expression
from app.dsl.expressions.evaluation import Expression, Reference, Scope, shorten
from app.dsl.expressions.functions import format_value
from app.dsl.expressions.kinds import type_name
from app.dsl.expressions.limits import (
    COMPILED_CACHE_SIZE,
    MAX_ALLOCATED,
    MAX_DEPTH,
    MAX_INTEGER,
    MAX_NODES,
    MAX_SOURCE_LENGTH,
    MAX_VALUE_SIZE,
    TIME_BUDGET_SECONDS,
    Budget,
    charge,
    estimated_size,
    new_budget,
)

__all__ = [
    "COMPILED_CACHE_SIZE",
    "MAX_ALLOCATED",
    "MAX_DEPTH",
    "MAX_INTEGER",
    "MAX_NODES",
    "MAX_SOURCE_LENGTH",
    "MAX_VALUE_SIZE",
    "TIME_BUDGET_SECONDS",
    "Budget",
    "Expression",
    "Reference",
    "Scope",
    "charge",
    "compile_expression",
    "estimated_size",
    "format_value",
    "new_budget",
    "shorten",
    "type_name",
]
