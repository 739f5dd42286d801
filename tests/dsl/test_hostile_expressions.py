"""A standing hostile-input suite for `${...}` expressions.

A hand-written corpus of what an attacker tries first — sandbox escapes through dunder
attributes and format strings, calls outside the allow-list, huge powers and repetitions, deep
nesting, long literals, unicode tricks, comprehensions, lambdas, walrus, f-strings — each
refused when compiled, or failing cleanly, or bounded when evaluated. Then property-based
generation (hypothesis, bounded in examples and time): for any expression, compiling and
evaluating it either succeeds within the limits or raises the language's own errors — never
another exception, never a value past the limits, never more than the time budget.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.dsl.expressions import (
    MAX_INTEGER,
    MAX_SOURCE_LENGTH,
    MAX_VALUE_SIZE,
    TIME_BUDGET_SECONDS,
    compile_expression,
    estimated_size,
)
from app.dsl.templates import Template, compile_condition, compile_template
from app.errors import ExpressionEvaluationError, ExpressionLimitError, ExpressionSyntaxError
from tests.dsl.properties import BOUNDED

# What expressions see: ordinary values, and values as large as a step's outputs may be.
SCOPE: dict[str, Any] = {
    "inputs": {"n": 7, "s": "text", "items": [1, 2, 3], "map": {"k": "v"}, "none": None},
    # 600 KB and 340 KB: together under 1 MiB, so `a` itself is a value an expression may give
    "a": {"big": "x" * 600_000, "list": ["y" * 60] * 5000, "deep": {"b": {"c": [1, {"d": 2}]}}},
    "context": {"run_id": "r", "flow": "f", "attempt": 1, "last_error": None},
    "item": "element",
    "index": 0,
}
# CPU time one evaluation may take: its budget, plus the work of the last step it checks.
TIME_ALLOWED = TIME_BUDGET_SECONDS + 0.15
COMPILE_ALLOWED = 0.25


def check_bounded(value: Any) -> None:
    """A value an expression may give: within the size and integer limits."""
    assert estimated_size(value) <= MAX_VALUE_SIZE
    if type(value) is int:
        assert -MAX_INTEGER <= value <= MAX_INTEGER


@contextmanager
def cpu_time_under(seconds: float) -> Iterator[None]:
    """Fail unless the block takes less than `seconds` of this thread's CPU. The collector is
    off meanwhile: a full collection of the test process's heap is not the block's cost."""
    was_enabled = gc.isenabled()
    gc.disable()
    started = time.thread_time()
    try:
        yield
    finally:
        spent = time.thread_time() - started
        if was_enabled:
            gc.enable()
        assert spent < seconds


def judge(source: str, scope: dict[str, Any] = SCOPE) -> str:
    """Compile and evaluate `source`: "refused" (at compile), "failed" (evaluation error),
    "limit" (a limit stopped it) or "value" (a bounded value). Any other exception, an
    unbounded value, or too much CPU time fails the test."""
    try:
        with cpu_time_under(COMPILE_ALLOWED):
            expression = compile_expression(source)
    except ExpressionSyntaxError:
        return "refused"
    try:
        with cpu_time_under(TIME_ALLOWED):
            value = expression.evaluate(scope)
    except ExpressionLimitError:
        return "limit"
    except ExpressionEvaluationError:
        return "failed"
    check_bounded(value)
    return "value"


# --- the corpus ------------------------------------------------------------------------------

ESCAPES = [
    # dunder attributes and the object graph behind them
    "().__class__",
    "().__class__.__base__.__subclasses__()",
    "''.__class__.__mro__[1].__subclasses__()",
    "inputs.__class__",
    "inputs.__dict__",
    "inputs.map.__init__.__globals__",
    "a.big.__len__",
    "[].__class__.__base__",
    "(1).__class__",
    "true.__class__",
    "inputs._private",
    "inputs['__class__']",
    "inputs['_private']",
    "inputs.items.__getitem__(0)",
    "__builtins__",
    "__import__('os')",
    "__loader__",
    "__spec__",
    # calls outside the allow-list, methods, getattr-likes
    "getattr(inputs, '__class__')",
    "setattr(inputs, 'n', 1)",
    "hasattr(inputs, 'n')",
    "vars(inputs)",
    "type(inputs)",
    "eval('1')",
    "exec('1')",
    "compile('1', '', 'eval')",
    "open('/etc/passwd')",
    "globals()",
    "locals()",
    "dir()",
    "breakpoint()",
    "help()",
    "id(inputs)",
    "object()",
    "print(1)",
    "input()",
    "iter(inputs.items)",
    "next(iter([]))",
    "map(str, inputs.items)",
    "sorted(inputs.items)",
    "inputs.map.get('k')",
    "inputs.map.keys()",
    "inputs.s.upper()",
    "a.big.join(['a', 'b'])",
    "str.upper('a')",
    "len.__self__",
    "str(1)(2)",
    "inputs['map']['k'](1)",
    "upper(x='a')",
    # format strings
    "'{0.__class__}'.format(inputs)",
    "'{}'.format(1)",
    "format(inputs, 's')",
    "f'{inputs}'",
    "f'{inputs.__class__}'",
    "f'{1:>{10 ** 9}}'",
    "f'{a.big!r}'",
    # comprehensions, lambdas, walrus, generators, unpacking, async
    "[x for x in inputs.items]",
    "{x: 1 for x in inputs.items}",
    "{x for x in inputs.items}",
    "(x for x in inputs.items)",
    "[x for x in [1] for y in __builtins__]",
    "lambda: 1",
    "(lambda: 1)()",
    "(lambda f: f(f))(lambda f: f(f))",
    "(y := 1)",
    "[y := 1, y]",
    "[*inputs.items]",
    "{**inputs.map}",
    "await inputs",
    "(yield 1)",
    # literals outside the language
    "{1, 2}",
    "b'bytes'",
    "1j",
    "...",
    "1 if 2 else ...",
    # operators outside the language
    "1 << 10 ** 9",
    "1 | 2",
    "~1",
    "inputs.items @ inputs.items",
    # `is` only compares with None
    "1 is 1",
    "inputs is inputs",
    # statements are not expressions
    "import os",
    "del inputs",
    "x = 1",
    "1; 2",
    "pass",
    # the size of the text itself
    "x" * (MAX_SOURCE_LENGTH + 1),
    "(" * 300 + "1" + ")" * 300,
    "[" * 65 + "1" + "]" * 65,
    "[" * 100 + "]" * 100,
    "not " * 1000 + "true",
    "-" * 2000 + "1",
    "+".join(["1"] * 2001),
    "a" + ".b" * 100,
    "1 < " * 1500 + "1",
    "10" + "0" * 100,
    # unicode: identifiers are NFKC-normalized by Python, so these are the dunders above
    "inputs.__ｃｌａｓｓ__",
    "inputs.＿＿class＿＿",
    "ｅｖａｌ('1')",
    "__ｉｍｐｏｒｔ__('os')",
    # unicode that is no identifier at all
    "inputs.\u200bn",
    "inputs.n\u202e",
    "'\ud800'",
    "'\x00'",
    "inputs.n\x00",
]


@pytest.mark.parametrize("source", ESCAPES)
def test_escapes_and_constructs_outside_the_language_are_refused_when_compiled(
    source: str,
) -> None:
    assert judge(source) == "refused"


RESOURCE_ATTACKS = [
    # huge powers
    "9 ** 9 ** 9",
    "2 ** 10 ** 10",
    "10 ** 101",
    "(10 ** 50) ** 3",
    "(-2) ** 400",
    "10 ** 100 * 10",
    "-(10 ** 100) - 1",
    "int('9' * 101)",
    "int('1' * 5000)",
    "int(1e300)",
    "round(1e300)",
    "round(1, 10 ** 9)",
    "sum([10 ** 100] * 2)",
    "abs(-(10 ** 100)) + 1",
    "10.0 ** 400",
    "int(float('inf'))",
    "round(float('nan'))",
    # repetition and concatenation
    "'a' * 10 ** 9",
    "10 ** 9 * 'a'",
    "[0] * 10 ** 9",
    "(0,) * 10 ** 9",
    "[[0] * 1000] * 1000",
    "[a.big] * 2",
    "a.big + a.big",
    "a.list + a.list + a.list + a.list",
    "[a.big, a.big]",
    "(a.big, a.big)",
    "{'a': a.big, 'b': a.big}",
    "[[a.big], [a.big]]",
    "str(a.list) + str(a.list) + str(a.list) + str(a.list)",
    "str([a.big, a.big])",
    "upper(a.big + a.big)",
    "lower(a.big) + upper(a.big)",
    "[a.list[:] , a.list[:], a.list[:], a.list[:]]",
    "a.big[::-1] + a.big[::-1]",
    " + ".join(["len([a.big])"] * 20),
    " + ".join(["len(upper(a.big))"] * 20),
    # printf-style padding
    "'%0999999999d' % 1",
    "'%s' % a.big",
]


@pytest.mark.parametrize("source", RESOURCE_ATTACKS)
def test_attempts_to_exhaust_memory_or_cpu_stop_at_a_limit(source: str) -> None:
    assert judge(source) in ("limit", "failed")


CLEAN_FAILURES = [
    "1 / 0",
    "0 ** -1",
    "1 // 0",
    "1 % 0",
    "(-8) ** 0.5",
    "min([])",
    "max(1)",
    "sum('abc')",
    "int('x')",
    "float('x')",
    "len(1)",
    "inputs.items[10]",
    "inputs.items['x']",
    "inputs.items[::0]",
    "inputs.map[[1]]",
    "inputs.nope",
    "nope",
    "inputs.n.x",
    "inputs.n[0]",
    "'a' in 10",
    "[1] < 'a'",
    "-'a'",
    "inputs.s + 1",
    "{[1]: 2}",
    "lower(1)",
    "round('x')",
]


@pytest.mark.parametrize("source", CLEAN_FAILURES)
def test_bad_operations_fail_with_the_languages_own_error(source: str) -> None:
    assert judge(source) == "failed"


BOUNDED_VALUES = [
    "a.big",
    "a.list[:100]",
    "[a.big]",
    "str(a.deep)",
    "len(a.list)",
    "inputs.map['k'] * 1000",
    "float('inf')",
    "float('nan') != float('nan')",
    "'\\d'",
    "inputs['_' + 'private'] if false else 1",
    "inputs.items[-1]",
    "10 ** 100",
    "-(10 ** 100)",
    "'ｉｎｐｕｔｓ'",
    "upper('ß')",
]


@pytest.mark.parametrize("source", BOUNDED_VALUES)
def test_legitimate_edge_cases_give_bounded_values(source: str) -> None:
    assert judge(source) == "value"


def test_a_computed_key_reads_data_never_an_attribute() -> None:
    # Only constant keys starting with '_' are refused; a computed one is a mapping lookup.
    scope = {**SCOPE, "inputs": {"__class__": "just a key"}}

    assert compile_expression("inputs['__cla' + 'ss__']").evaluate(scope) == "just a key"
    assert judge("inputs['__cla' + 'ss__']") == "failed"  # no such key in the usual scope


@pytest.mark.parametrize(
    "text",
    [
        "${().__class__}",
        "x=${inputs.__dict__}",
        "${[x for x in inputs.items]}",
        "${'a' * 10 ** 9}",
        "${" + "(" * 300 + "1" + ")" * 300 + "}",
        "${a.big}${a.big}",
        "${",
        "${{}",
        "${'}",
        "$${ not a placeholder } ${1 +}",
    ],
)
def test_templates_and_conditions_refuse_or_bound_the_same_attacks(text: str) -> None:
    for compile_ in (compile_template, compile_condition):
        try:
            with cpu_time_under(COMPILE_ALLOWED + TIME_ALLOWED):
                compiled = compile_(text)
                value = (
                    compiled.render(SCOPE)
                    if isinstance(compiled, Template)
                    else compiled.evaluate(SCOPE)
                )
        except (ExpressionSyntaxError, ExpressionEvaluationError):
            continue
        check_bounded(value)


# --- generated expressions -------------------------------------------------------------------

NAMES = st.sampled_from(
    ["inputs", "a", "context", "item", "index", "true", "false", "null", "nope", "__class__"]
)
KEYS = st.sampled_from(
    ["n", "s", "items", "map", "big", "list", "deep", "b", "c", "d", "k", "x", "__dict__"]
)
ATOMS = st.one_of(
    NAMES,
    st.builds(lambda name, key: f"{name}.{key}", NAMES, KEYS),
    st.integers(min_value=-(10**120), max_value=10**120).map(str),
    st.floats(allow_nan=False).map(repr),
    st.text(max_size=6).map(repr),
    st.sampled_from(["a.big", "a.list", "inputs.items", "inputs.map", "1e308", "0", "-1"]),
)
BINARY = st.sampled_from(
    [
        "+",
        "-",
        "*",
        "/",
        "//",
        "%",
        "**",
        "==",
        "!=",
        "<",
        "<=",
        ">",
        ">=",
        "in",
        "not in",
        "and",
        "or",
        "is",
        "is not",
        "<<",
        "|",
        "@",
    ]
)
FUNCTIONS = st.sampled_from(
    [
        "len",
        "str",
        "int",
        "float",
        "bool",
        "min",
        "max",
        "sum",
        "abs",
        "round",
        "lower",
        "upper",
        "eval",
        "getattr",
        "type",
        "open",
    ]
)


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds(lambda left, op, right: f"({left} {op} {right})", children, BINARY, children),
        st.builds(
            lambda op, operand: f"{op}{operand}", st.sampled_from(["-", "+", "not "]), children
        ),
        st.builds(
            lambda function, arguments: f"{function}({', '.join(arguments)})",
            FUNCTIONS,
            st.lists(children, max_size=3),
        ),
        st.lists(children, max_size=4).map(lambda items: "[" + ", ".join(items) + "]"),
        st.lists(children, max_size=3).map(lambda items: "(" + ", ".join(items) + ",)"),
        st.lists(st.tuples(children, children), max_size=3).map(
            lambda pairs: "{" + ", ".join(f"{key}: {value}" for key, value in pairs) + "}"
        ),
        st.builds(lambda value, key: f"{value}[{key}]", children, children),
        st.builds(
            lambda value, start, stop, step: f"{value}[{start}:{stop}:{step}]",
            children,
            st.sampled_from(["", "0", "1", "-1", "10 ** 9"]),
            st.sampled_from(["", "2", "-1", "10 ** 9"]),
            st.sampled_from(["", "1", "-1", "2", "0"]),
        ),
        st.builds(lambda value, key: f"{value}.{key}", children, KEYS),
        st.builds(
            lambda test, yes, no: f"({yes} if {test} else {no})", children, children, children
        ),
        st.builds(
            lambda value, times: f"({value} * {times})",
            children,
            st.sampled_from(["2", "10 ** 6", "-1"]),
        ),
    )


EXPRESSIONS = st.recursive(ATOMS, _combine, max_leaves=12)
HOSTILE_FRAGMENTS = st.sampled_from(
    [
        "__class__",
        "__globals__",
        "lambda: 0",
        "x for x in y",
        ":=",
        "f'{1}'",
        "**",
        "*",
        "[",
        ")",
        "'",
        "\\",
        "\x00",
        "\ud800",
        "ｅｖａｌ",
        "#",
        "\n",
        "${",
        "}",
        "...",
        "0x1for",
    ]
)


@BOUNDED
@given(source=EXPRESSIONS)
def test_any_expression_of_the_language_stays_within_the_limits(source: str) -> None:
    judge(source)


@BOUNDED
@given(source=EXPRESSIONS, fragment=HOSTILE_FRAGMENTS, where=st.integers(min_value=0))
def test_any_expression_with_a_hostile_fragment_stays_within_the_limits(
    source: str, fragment: str, where: int
) -> None:
    cut = where % (len(source) + 1)
    judge(source[:cut] + fragment + source[cut:])


@BOUNDED
@given(source=st.text(max_size=200))
def test_any_text_compiles_or_is_refused_with_the_languages_error(source: str) -> None:
    judge(source)


@BOUNDED
@given(text=st.lists(st.one_of(st.text(max_size=8), EXPRESSIONS.map(lambda e: "${" + e + "}"))))
def test_any_template_renders_within_the_limits_or_fails_cleanly(text: list[str]) -> None:
    parts = sum(1 for piece in text if piece.startswith("${"))
    try:
        with cpu_time_under(COMPILE_ALLOWED + TIME_ALLOWED * max(parts, 1)):
            value = compile_template("".join(text)).render(SCOPE)
    except (ExpressionSyntaxError, ExpressionEvaluationError):
        return
    check_bounded(value)
