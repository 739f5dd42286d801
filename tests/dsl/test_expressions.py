"""The `${...}` expression language: what each construct means, what is refused, and the limits
that keep an expression from running code or exhausting the process."""

from __future__ import annotations

import gc
import itertools
import time
import warnings
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

import pytest

from app.dsl.expressions import Reference, compile_expression, compiler, evaluation
from app.errors import ExpressionEvaluationError, ExpressionLimitError, ExpressionSyntaxError


def evaluate(source: str, **scope: Any) -> Any:
    return compile_expression(source).evaluate(scope)


class Outputs(Mapping[str, Any]):
    """Like the engine's step outputs: a missing output of a skipped step reads as None."""

    def __init__(self, **values: Any) -> None:
        self._values = values

    def __getitem__(self, key: str) -> Any:
        return self._values.get(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


# --- literals, names, paths ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("42", 42),
        ("-7", -7),
        ("2.5", 2.5),
        ("'text'", "text"),
        ('"double"', "double"),
        ("True", True),
        ("False", False),
        ("None", None),
        ("true", True),
        ("false", False),
        ("null", None),
        ("[1, 'a', null]", [1, "a", None]),
        ("(1, 2)", (1, 2)),
        ("{'a': 1, 'b': [true]}", {"a": 1, "b": [True]}),
        ("[]", []),
        ("{}", {}),
        ("  1 + 1  ", 2),
        ("(1 +\n 2)", 3),
    ],
)
def test_literals(source: str, expected: Any) -> None:
    assert evaluate(source) == expected
    assert type(evaluate(source)) is type(expected)


def test_names_and_attribute_paths_read_the_scope() -> None:
    scope = {"inputs": {"user_id": 7}, "fetch": {"rows": [{"email": "a@b.c"}]}}

    assert evaluate("inputs", **scope) == {"user_id": 7}
    assert evaluate("inputs.user_id", **scope) == 7
    assert evaluate("fetch.rows[0].email", **scope) == "a@b.c"
    assert evaluate("fetch['rows'][-1]['email']", **scope) == "a@b.c"


def test_attribute_access_uses_getitem_of_mapping_subclasses() -> None:
    class Defaulting(dict[str, Any]):
        def __missing__(self, key: str) -> None:
            return None

    assert evaluate("step.missing", step=Defaulting(a=1)) is None
    assert evaluate("step.exists", step=Outputs()) is None
    assert evaluate("step.exists", step=Outputs(exists=True)) is True
    assert evaluate("not step.exists", step=Outputs()) is True
    assert evaluate("step['exists']", step=Outputs(exists=1)) == 1


def test_any_mapping_can_be_the_scope() -> None:
    expression = compile_expression("inputs.x + 1")

    assert expression.evaluate(MappingProxyType({"inputs": {"x": 1}})) == 2
    assert expression.evaluate(Outputs(inputs={"x": 2})) == 3


def test_unknown_name_is_an_evaluation_error_naming_it() -> None:
    with pytest.raises(ExpressionEvaluationError, match="name 'chek' is not defined") as caught:
        evaluate("chek.exists", check={}, inputs={})

    assert "'check'" in caught.value.message  # the names that do exist


def test_missing_key_names_the_key_and_the_available_ones() -> None:
    with pytest.raises(ExpressionEvaluationError) as caught:
        evaluate("step.rowz", step={"rows": [], "row_count": 0})

    assert "'rowz'" in caught.value.message
    assert "'rows'" in caught.value.message
    assert "'row_count'" in caught.value.message


def test_the_list_of_available_keys_is_truncated() -> None:
    many = {f"key{index}": index for index in range(1000)}

    with pytest.raises(ExpressionEvaluationError) as caught:
        evaluate("step.missing", step=many)

    assert "key0" in caught.value.message
    assert "key999" not in caught.value.message
    assert "990 more" in caught.value.message


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("value.attribute", "integer"),
        ("items.first", "array"),
        ("text.upper", "string"),
        ("nothing.attribute", "null"),
    ],
)
def test_attribute_of_a_non_mapping_is_an_error(source: str, kind: str) -> None:
    with pytest.raises(ExpressionEvaluationError, match=kind):
        evaluate(source, value=1, items=[1], text="a", nothing=None)


def test_attribute_access_never_reads_python_attributes() -> None:
    class Secretive:
        secret = "leaked"

    with pytest.raises(ExpressionEvaluationError, match="not an object"):
        evaluate("thing.secret", thing=Secretive())


def test_computed_keys_are_only_looked_up_in_the_mapping() -> None:
    with pytest.raises(ExpressionEvaluationError, match="has no key '__class__'"):
        evaluate("inputs[key]", inputs={"a": 1}, key="__class__")


# --- indexing and slicing --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("items[0]", 10),
        ("items[-1]", 30),
        ("items[i]", 20),
        ("items[1:]", [20, 30]),
        ("items[::-1]", [30, 20, 10]),
        ("items[:i]", [10]),
        ("text[1:3]", "bc"),
        ("text[0]", "a"),
        ("pair[1]", "y"),
        ("data['k']", "v"),
        ("data[name]", "v"),
    ],
)
def test_indexing_and_slicing(source: str, expected: Any) -> None:
    scope = {
        "items": [10, 20, 30],
        "i": 1,
        "text": "abcd",
        "pair": ("x", "y"),
        "data": {"k": "v"},
        "name": "k",
    }
    assert evaluate(source, **scope) == expected


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("items[5]", "index 5 is out of range"),
        ("items[-9]", "out of range"),
        ("items['a']", "must be an integer"),
        ("items[1.5]", "must be an integer"),
        ("number[0]", "cannot index"),
        ("nothing[0]", "cannot index `nothing`: it is null"),
        ("data[0:1]", "cannot slice"),
        ("data[items]", "cannot be a key"),
        ("items[::0]", "bad slice"),
        ("items['a':]", "bad slice"),
    ],
)
def test_bad_indexes_are_evaluation_errors(source: str, message: str) -> None:
    scope = {"items": [1, 2], "number": 3, "nothing": None, "data": {"k": 1}}
    with pytest.raises(ExpressionEvaluationError, match=message):
        evaluate(source, **scope)


# --- operators -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("7 - 10", -3),
        ("7 / 2", 3.5),
        ("7 // 2", 3),
        ("-7 // 2", -4),
        ("7 % 3", 1),
        ("2 ** 10", 1024),
        ("2 ** -1", 0.5),
        ("-x", -5),
        ("+x", 5),
        ("'ab' + 'cd'", "abcd"),
        ("'ab' * 3", "ababab"),
        ("3 * 'ab'", "ababab"),
        ("[1] + [2]", [1, 2]),
        ("[0] * 3", [0, 0, 0]),
        ("(1,) + (2,)", (1, 2)),
        ("'a' * -1", ""),
        ("10 ** 100", 10**100),
        ("-(10 ** 100)", -(10**100)),
    ],
)
def test_arithmetic(source: str, expected: Any) -> None:
    assert evaluate(source, x=5) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 == 1", True),
        ("1 != 1", False),
        ("1 < 2 <= 2", True),
        ("3 > 2 > 2", False),
        ("2 >= 3", False),
        ("'a' in 'cat'", True),
        ("2 in [1, 2]", True),
        ("'k' in {'k': 1}", True),
        ("3 not in [1, 2]", True),
        ("x is None", True),
        ("x is not None", False),
        ("None is x", True),
        ("x is null", True),
        ("[1, 2] == [1, 2]", True),
    ],
)
def test_comparisons(source: str, expected: bool) -> None:
    assert evaluate(source, x=None) is expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("true and 'yes'", "yes"),
        ("0 and missing", 0),
        ("'' or 'default'", "default"),
        ("'set' or missing", "set"),
        ("not 0", True),
        ("not [1]", False),
        ("null or false or 0", 0),
        ("1 and 2 and 3", 3),
    ],
)
def test_boolean_operators_short_circuit_like_python(source: str, expected: Any) -> None:
    # `missing` is not defined: evaluating it would raise
    assert evaluate(source) == expected


def test_conditional_expression_evaluates_only_the_chosen_branch() -> None:
    assert evaluate("'big' if n > 10 else 'small'", n=11) == "big"
    assert evaluate("'big' if n > 10 else 'small'", n=1) == "small"
    assert evaluate("1 if true else missing") == 1
    assert evaluate("missing if false else 2") == 2


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("1 / 0", "division by zero"),
        ("1 // 0", "division by zero"),
        ("1 % 0", "division by zero"),
        ("0 ** -1", "division by zero|zero"),
        ("'a' + 1", "cannot apply '\\+' to a string and an integer"),
        ("[1] - [1]", "cannot apply '-' to an array and an array"),
        ("{} * 2", "cannot apply"),
        ("-'a'", "unary '-'"),
        ("1 < 'a'", "cannot apply '<' to an integer and a string"),
        ("1 in 5", "cannot apply 'in'"),
        ("(-8) ** 0.5", "complex"),
        ("10.0 ** 400", "failed"),
        ("'%s' % 1", "'%' formatting of strings is not supported"),
        ("{[1]: 2}", "cannot be a key"),
    ],
)
def test_operator_errors_are_evaluation_errors(source: str, message: str) -> None:
    with pytest.raises(ExpressionEvaluationError, match=message):
        evaluate(source)


def test_errors_quote_the_failing_part_of_the_expression() -> None:
    with pytest.raises(ExpressionEvaluationError, match="in `a / b`"):
        evaluate("1 + a / b", a=1, b=0)


# --- functions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("len([1, 2, 3])", 3),
        ("len('abc')", 3),
        ("len({'a': 1})", 1),
        ("str(12)", "12"),
        ("str(1.5)", "1.5"),
        ("str('s')", "s"),
        ("str(true)", "true"),
        ("str(null)", "null"),
        ("str({'a': [1, 'x']})", '{"a":[1,"x"]}'),
        ("int('42')", 42),
        ("int(3.9)", 3),
        ("int('ff', 16)", 255),
        ("float('1.5')", 1.5),
        ("float(2)", 2.0),
        ("bool('')", False),
        ("bool([0])", True),
        ("min([3, 1, 2])", 1),
        ("min(3, 1, 2)", 1),
        ("max([3, 1, 2])", 3),
        ("max('a', 'b')", "b"),
        ("sum([1, 2, 3])", 6),
        ("sum([1.5, 1], 10)", 12.5),
        ("abs(-3)", 3),
        ("round(2.675, 2)", 2.67),
        ("round(7.5)", 8),
        ("round(1234, -2)", 1200),
        ("lower('AbC')", "abc"),
        ("upper('AbC')", "ABC"),
        ("'user:' + str(id)", "user:7"),
    ],
)
def test_functions(source: str, expected: Any) -> None:
    result = evaluate(source, id=7)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("len(5)", "len\\(\\) cannot take \\(integer\\)"),
        ("int('abc')", "invalid literal"),
        ("int(null)", "int\\(\\) cannot take \\(null\\)"),
        ("float('x')", "could not convert"),
        ("min([])", "empty"),
        ("max([1, 'a'])", "cannot take"),
        ("sum(['a'])", "sum\\(\\) adds numbers, not a string"),
        ("sum([[1], [2]], [])", "sum\\(\\) adds numbers, not an array"),
        ("abs('a')", "cannot take"),
        ("round('a')", "cannot take"),
        ("round(1.5, 'a')", "cannot take"),
        ("lower(1)", "lower\\(\\) takes a string, not an integer"),
        ("upper(null)", "upper\\(\\) takes a string, not null"),
        ("int(float('inf'))", "failed"),
    ],
)
def test_function_errors_are_evaluation_errors(source: str, message: str) -> None:
    with pytest.raises(ExpressionEvaluationError, match=message):
        evaluate(source)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("len()", "len\\(\\) takes 1 argument, got 0"),
        ("len(1, 2)", "len\\(\\) takes 1 argument, got 2"),
        ("round(1, 2, 3)", "round\\(\\) takes 1 or 2 arguments, got 3"),
        ("max()", "max\\(\\) takes at least 1 argument, got 0"),
    ],
)
def test_wrong_number_of_arguments_is_refused_at_compile_time(source: str, message: str) -> None:
    with pytest.raises(ExpressionSyntaxError, match=message):
        compile_expression(source)


def test_function_names_are_not_scope_names() -> None:
    assert evaluate("len(len)", len=[1, 2]) == 2
    assert compile_expression("len(items)").references == {Reference("items")}


# --- references ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("inputs.user_id", {Reference("inputs", ("user_id",))}),
        ("not check_cache.exists", {Reference("check_cache", ("exists",))}),
        ("fetch_from_db.rows[0]", {Reference("fetch_from_db", ("rows", 0))}),
        ("a.b[-1]['c'].d", {Reference("a", ("b", -1, "c", "d"))}),
        ("a", {Reference("a")}),
        ("a.b[i].c", {Reference("a", ("b",)), Reference("i")}),
        ("a[1:2]", {Reference("a")}),
        ("len(a.b) + x.y", {Reference("a", ("b",)), Reference("x", ("y",))}),
        ("a.x if c else a.y", {Reference("a", ("x",)), Reference("c"), Reference("a", ("y",))}),
        ("{'k': v.w}", {Reference("v", ("w",))}),
        ("true or null or 1", set()),
        ("'inputs.x'", set()),
    ],
)
def test_references_are_names_with_their_constant_paths(
    source: str, expected: set[Reference]
) -> None:
    assert compile_expression(source).references == expected


def test_a_reference_reads_like_the_expression() -> None:
    assert str(Reference("fetch", ("rows", 0, "email"))) == "fetch.rows[0].email"
    assert str(Reference("inputs")) == "inputs"


def test_an_expression_keeps_its_source() -> None:
    assert compile_expression(" a + 1 ").source == " a + 1 "


# --- compile-time refusals: syntax and constructs outside the language -----------------------


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("inputs.__class__", "'__class__' is not allowed"),
        ("().__class__.__bases__", "'__class__' is not allowed"),
        ("inputs._private", "'_private' is not allowed"),
        ("inputs['__class__']", "'__class__' is not allowed"),
        ("inputs['_x'].y", "'_x' is not allowed"),
        ("__builtins__", "'__builtins__' is not allowed"),
        ("__import__('os')", "the function '__import__' is not allowed"),
        ("getattr(inputs, 'x')", "the function 'getattr' is not allowed"),
        ("eval('1')", "the function 'eval' is not allowed"),
        ("exec('1')", "the function 'exec' is not allowed"),
        ("open('/etc/passwd')", "the function 'open' is not allowed"),
        ("type(1)", "the function 'type' is not allowed"),
        ("inputs.keys()", "method calls"),
        ("'a'.upper()", "method calls"),
        ("(lambda: 1)()", "only the functions"),
        ("[len][0](x)", "only the functions"),
        ("lambda: 1", "lambda functions are not allowed"),
        ("[x for x in y]", "comprehensions are not allowed"),
        ("{x: 1 for x in y}", "comprehensions are not allowed"),
        ("{x for x in y}", "comprehensions are not allowed"),
        ("(x for x in y)", "generator expressions are not allowed"),
        ("(x := 1)", "assignment expressions"),
        ("f'{x}'", "f-strings are not allowed"),
        ("len(*x)", "starred expressions"),
        ("[*x]", "starred expressions"),
        ("len(x=1)", "keyword arguments are not allowed"),
        ("round(1, ndigits=2)", "keyword arguments are not allowed"),
        ("{**x}", "dict unpacking"),
        ("await x", "await is not allowed"),
        ("(yield)", "yield is not allowed"),
        ("{1, 2}", "set literals are not allowed"),
        ("x[1:2, 3]", "slices are only allowed"),
        ("1 << 2", "the operator '<<' is not allowed"),
        ("1 | 2", "the operator '\\|' is not allowed"),
        ("~1", "the operator '~' is not allowed"),
        ("x is 1", "'is' is only allowed with None"),
        ("x is not y", "'is not' is only allowed with None"),
        ("b'bytes'", "bytes literals are not allowed"),
        ("1j", "complex literals are not allowed"),
        ("...", "ellipsis literals are not allowed"),
        ("1" + "0" * 101, "integer literals larger than 10\\*\\*100"),
        ("", "empty"),
        ("   ", "empty"),
        ("1 +", "invalid syntax"),
        ("a if b", "invalid syntax"),
        ("x = 1", "invalid syntax"),
        ("import os", "invalid syntax"),
        ("a\x00", "null bytes"),
    ],
)
def test_constructs_outside_the_language_are_refused_at_compile_time(
    source: str, message: str
) -> None:
    with pytest.raises(ExpressionSyntaxError, match=message):
        compile_expression(source)


def test_a_non_string_is_refused() -> None:
    with pytest.raises(ExpressionSyntaxError, match="must be a string"):
        compile_expression(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("source", "offset"),
    [
        ("inputs.__class__", 7),
        ("  inputs.__class__", 9),
        ("'é' + x._y", 8),
        ("(a +\n  b._c)", 9),
        ("1 + $", 4),
        ("  1 + $", 6),
        ("x['_k']", 2),
        ("lambda: 1", 0),
        ("a + getattr(b)", 4),
    ],
)
def test_syntax_errors_point_at_the_offending_character(source: str, offset: int) -> None:
    with pytest.raises(ExpressionSyntaxError) as caught:
        compile_expression(source)

    assert caught.value.offset == offset


# --- limits: none of these executes or allocates ----------------------------------------------

# Refusals happen before any work: were a check to regress, the computation would run for
# minutes (or exhaust memory) and this timeout would fail the test instead of hanging the suite.
finishes_fast = pytest.mark.timeout(10)


@finishes_fast
@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("x" * 4097, "4,097 characters long; the limit is 4,096"),
        ("not " * 10000 + "x", "characters long"),
        ("-" * 100000 + "1", "characters long"),
        ("(" * 500, "too many nested parentheses"),
        ("(" * 500 + "1" + ")" * 500, "too many nested parentheses"),
        ("-" * 4000 + "1", "nested"),
        ("not " * 1000 + "x", "nested more than 64 levels"),
        ("[" * 100 + "]" * 100, "nested more than 64 levels"),
        ("+".join(["1"] * 100), "nested more than 64 levels"),
        ("[" + ",".join(["1"] * 2001) + "]", "more than 2000 parts"),
    ],
)
def test_oversized_expressions_are_refused_at_compile_time(source: str, message: str) -> None:
    with pytest.raises(ExpressionSyntaxError, match=message):
        compile_expression(source)


def test_the_largest_allowed_shapes_still_compile_and_evaluate() -> None:
    assert evaluate("+".join(["1"] * 64)) == 64
    assert evaluate("not " * 60 + "true") is True
    assert evaluate("[" + ",".join(["1"] * 1999) + "]") == [1] * 1999


@finishes_fast
@pytest.mark.parametrize(
    "source",
    [
        "2 ** 10 ** 10",
        "10 ** 101",
        "(-10) ** 101",
        "7 ** 1000000",
        "big ** 2",
        "10 ** 100 + 1",
        "-(10 ** 100) - 1",
        "10 ** 100 * 10",
        "10 ** 60 * 10 ** 60",
        "int('9' * 101)",
        "int(1e300)",
        "round(1e300)",
        "big * 3",
        "sum([10 ** 100, 10 ** 100])",
        "round(1, -10 ** 9)",
    ],
)
def test_integers_beyond_10_to_the_100_are_refused(source: str) -> None:
    with pytest.raises(ExpressionLimitError):
        evaluate(source, big=10**99 * 5)


@finishes_fast
@pytest.mark.parametrize(
    "source",
    [
        "'a' * 10 ** 9",
        "10 ** 9 * 'a'",
        "[0] * 10 ** 9",
        "(0,) * 10 ** 9",
        "'a' * (2 ** 20 + 1)",
        "[0] * 131073",
        "[[0] * 131072] * 131072",
        "[[0] * 1000] * 1000",
        "[long] * 3",
        "s + s + s",
        "(s + s) + (s + s)",
        "list100k + list100k",
        "s[:] + s[:] + s[:]",
        "min([[0] * 131072] * 131072)",
        "str(shared)",
        "str(long) + str(long) + str(long)",
        "lower(s + s + s)",
    ],
)
def test_values_over_one_mebibyte_are_refused_before_they_are_built(source: str) -> None:
    scope = {
        "s": "a" * 400_000,
        "long": "b" * 1_000_000,
        "list100k": [0] * 100_000,
        "shared": ["c" * 1000] * 2000,  # 2 MB once written out, though small in memory
    }
    with pytest.raises(ExpressionLimitError, match=r"1 MiB|1,048,576"):
        evaluate(source, **scope)


def test_values_up_to_one_mebibyte_are_fine() -> None:
    assert len(evaluate("'a' * 2 ** 20")) == 2**20
    assert len(evaluate("[0] * 131072")) == 131072
    assert len(evaluate("s + s", s="a" * 400_000)) == 800_000


@finishes_fast
def test_one_evaluation_cannot_build_many_large_values() -> None:
    # Each value is under 1 MiB, but together they are 20 MB.
    source = "[" + ", ".join(["'a' * 1000000"] * 20) + "]"

    with pytest.raises(ExpressionLimitError, match="builds more than"):
        evaluate(source)


BIG = "x" * 300_000  # a value from the scope: reading it builds nothing
MANY = ", ".join(["big"] * 4)  # 1.2 MB once written out, though small in memory


@finishes_fast
@pytest.mark.parametrize(
    "source",
    [
        f"[{MANY}]",
        f"({MANY},)",
        "{" + ", ".join(f"'k{index}': big" for index in range(4)) + "}",
        "[[big, big], [big, big]]",
        "[big, [big, [big, [big]]]]",
        "{'a': [big, big], 'b': {'c': big, 'd': big}}",
        "str([big, big, big, big])",
        "str({'a': big, 'b': big, 'c': big, 'd': big})",
        "upper(big + big + big + big)",
    ],
)
def test_literals_are_charged_for_each_value_they_hold_as_often_as_it_appears(
    source: str,
) -> None:
    with pytest.raises(ExpressionLimitError, match=r"1 MiB|1,048,576"):
        evaluate(source, big=BIG)


@finishes_fast
@pytest.mark.parametrize(
    "source",
    [
        # Each literal is 900 KB: under 1 MiB, but ten of them are 9 MB built in one go.
        " + ".join(["len([big, big, big])"] * 10),
        " + ".join(["len((big, big, big))"] * 10),
        " + ".join(["len({'a': big, 'b': big, 'c': big})"] * 10),
        " + ".join(["len(upper(big) + lower(big) + big)"] * 10),
        " + ".join(["len(str([big, big, big]))"] * 10),
    ],
)
def test_literals_and_function_results_count_against_the_evaluations_budget(
    source: str,
) -> None:
    with pytest.raises(ExpressionLimitError, match="builds more than 8,388,608 bytes"):
        evaluate(source, big=BIG)


def test_literals_within_the_limits_are_fine() -> None:
    assert evaluate("len([big, big, big])", big=BIG) == 3
    assert evaluate("{'a': big, 'b': big}['b']", big=BIG) == BIG
    assert evaluate("len(upper(big))", big=BIG) == 300_000
    assert evaluate(" + ".join(["len([big, big])"] * 10), big=BIG) == 20  # 6 MB in all


def test_the_allocation_budget_is_per_evaluation() -> None:
    expression = compile_expression("len('a' * 1000000 + 'b')")

    for _ in range(20):  # 20 MB over all evaluations: no single one exceeds its budget
        assert expression.evaluate({}) == 1_000_001


@finishes_fast
def test_printf_formatting_cannot_pad_to_a_huge_width() -> None:
    with pytest.raises(ExpressionEvaluationError, match="'%' formatting"):
        evaluate("'%0999999999d' % 1")


def test_evaluation_stops_once_the_time_budget_is_spent(monkeypatch: pytest.MonkeyPatch) -> None:
    ticks = itertools.count()
    # Every reading of the clock is 60 ms after the previous one.
    monkeypatch.setattr(evaluation, "_clock", lambda: next(ticks) * 0.06)
    expression = compile_expression("1 + 2 + 3 + 4")

    with pytest.raises(ExpressionLimitError, match="longer than 100 ms"):
        expression.evaluate({})


def test_the_time_budget_is_per_evaluation(monkeypatch: pytest.MonkeyPatch) -> None:
    expression = compile_expression("1 + 2 + 3")
    now = [0.0]
    monkeypatch.setattr(evaluation, "_clock", lambda: now[0])

    for _ in range(3):
        now[0] += 10.0  # much time passes between evaluations, none within one
        assert expression.evaluate({}) == 6


def test_a_garbage_collection_during_an_evaluation_does_not_count_against_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [0.0]
    monkeypatch.setattr(time, "thread_time", lambda: now[0])

    def slow_collection(phase: str, _info: dict[str, int]) -> None:
        if phase == "stop":  # before the evaluator's callback reads the clock
            now[0] += 0.5  # half a second in the collector, over a large process's heap

    class Collecting(Mapping[str, Any]):
        def __getitem__(self, key: str) -> Any:
            gc.collect()  # as an allocation may trigger one
            return 1

        def __iter__(self) -> Iterator[str]:
            return iter(("value",))

        def __len__(self) -> int:
            return 1

    gc.callbacks.insert(0, slow_collection)
    try:
        assert evaluate("step.value + 1", step=Collecting()) == 2
    finally:
        gc.callbacks.remove(slow_collection)


def test_a_misbehaving_scope_value_never_leaks_a_raw_exception() -> None:
    class Broken(Mapping[str, Any]):
        def __getitem__(self, key: str) -> Any:
            raise RuntimeError("database gone")

        def __iter__(self) -> Iterator[str]:
            return iter(())

        def __len__(self) -> int:
            return 0

    with pytest.raises(ExpressionEvaluationError, match="RuntimeError: database gone"):
        evaluate("step.value", step=Broken())


def test_deeply_nested_scope_values_are_a_limit_error() -> None:
    nested: list[Any] = []
    for _ in range(100_000):
        nested = [nested]

    with pytest.raises(ExpressionLimitError, match="too costly"):
        evaluate("a == b", a=nested, b=[nested])


def test_a_compiled_expression_can_be_evaluated_many_times() -> None:
    expression = compile_expression("inputs.n * 2")

    assert [expression.evaluate({"inputs": {"n": n}}) for n in range(3)] == [0, 2, 4]


@pytest.mark.parametrize(
    ("source", "value"),
    [
        ("'\\d'", "\\d"),  # an invalid escape: Python warns, and keeps the backslash
        ("len('a\\w')", 3),
    ],
)
def test_what_pythons_parser_warns_about_is_accepted_without_a_warning(
    source: str, value: Any
) -> None:
    compiler._compiled.cache_clear()  # compile it here, not from an earlier test
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = compile_expression(source)

    assert caught == []
    assert compiled.evaluate({}) == value


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("0x1for", "invalid syntax"),
        ("1 is 1", "'is' is only allowed with None"),
        ("'\\d' is 1", "'is' is only allowed with None"),
    ],
)
def test_what_pythons_parser_warns_about_is_refused_as_before_without_a_warning(
    source: str, message: str
) -> None:
    compiler._compiled.cache_clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ExpressionSyntaxError, match=message):
            compile_expression(source)

    assert caught == []


def test_one_text_is_compiled_once_and_shared() -> None:
    assert compile_expression("a.b + 1") is compile_expression("a.b + 1")


def test_a_refused_text_is_refused_with_a_new_error_each_time() -> None:
    errors = []
    for _ in range(2):
        with pytest.raises(ExpressionSyntaxError) as caught:
            compile_expression("1 +")
        errors.append(caught.value)

    assert errors[0] is not errors[1]
    assert (errors[0].message, errors[0].offset) == (errors[1].message, errors[1].offset)
