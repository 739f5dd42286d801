"""Definition values with `${...}` placeholders, and `if:` conditions."""

from __future__ import annotations

from typing import Any

import pytest

from app.dsl.expressions import Reference
from app.dsl.templates import compile_condition, compile_template, render_all
from app.errors import ExpressionEvaluationError, ExpressionLimitError, ExpressionSyntaxError

SCOPE: dict[str, Any] = {
    "inputs": {"user_id": 7, "name": "Ada", "ratio": 0.5, "admin": True, "tags": ["a", "b"]},
    "fetch": {"rows": [{"id": 7, "email": "ada@example.org"}], "row_count": 1},
    "check_cache": {"exists": False, "count": 0},
    "nothing": None,
}


def render(value: Any) -> Any:
    return compile_template(value).render(SCOPE)


# --- one placeholder: the native value -------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${inputs.user_id}", 7),
        ("${inputs.ratio}", 0.5),
        ("${inputs.admin}", True),
        ("${nothing}", None),
        ("${inputs.tags}", ["a", "b"]),
        ("${fetch.rows[0]}", {"id": 7, "email": "ada@example.org"}),
        ("${inputs.user_id + 1}", 8),
        ("${ inputs.name }", "Ada"),
        ("${ {'a': '}'}['a'] }", "}"),
    ],
)
def test_a_string_that_is_one_placeholder_yields_the_native_value(
    template: str, expected: Any
) -> None:
    result = render(template)
    assert result == expected
    assert type(result) is type(expected)


def test_the_native_value_is_the_scope_object_itself() -> None:
    rows = [{"id": 1}]

    assert compile_template("${step.rows}").render({"step": {"rows": rows}}) is rows


# --- text around placeholders: a string ------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("user:${inputs.user_id}", "user:7"),
        (" ${inputs.user_id}", " 7"),
        ("${inputs.user_id} ", "7 "),
        ("${inputs.name}!", "Ada!"),
        ("ratio=${inputs.ratio}", "ratio=0.5"),
        ("admin=${inputs.admin}", "admin=true"),
        ("cached=${check_cache.exists}", "cached=false"),
        ("value=${nothing}", "value=null"),
        ("tags=${inputs.tags}", 'tags=["a","b"]'),
        ("row=${fetch.rows[0]}", 'row={"id":7,"email":"ada@example.org"}'),
        ("${inputs.name}-${inputs.user_id}", "Ada-7"),
        ("${inputs.name}${inputs.name}", "AdaAda"),
        ("unicode=${'é'}", "unicode=é"),
        ("json=${['é']}", 'json=["é"]'),
    ],
)
def test_text_around_placeholders_yields_a_string(template: str, expected: str) -> None:
    assert render(template) == expected


def test_values_json_cannot_encode_are_written_with_str() -> None:
    class Opaque:
        def __str__(self) -> str:
            return "opaque!"

    assert compile_template("v=${x}").render({"x": [Opaque()]}) == 'v=["opaque!"]'


def test_rendered_text_over_one_mebibyte_is_refused() -> None:
    template = compile_template("${s}${s}${s}")

    with pytest.raises(ExpressionLimitError):
        template.render({"s": "a" * 400_000})


BIG = {"big": "x" * 900_000, "list": ["y" * 1000] * 900, "n": 1}  # each about 900 KB
BUDGET = "builds more than 8,388,608 bytes"


@pytest.mark.parametrize(
    "value",
    [
        # Text around placeholders: each text is under 1 MiB, ten of them are 9 MB.
        {f"k{index}": "<${big}>" for index in range(10)},
        [f"${{big}} {index}" for index in range(10)],
        {"a": [{"b": "${list}!"}] * 10},
        # A value a placeholder reads, placed in a list or mapping of the definition as often
        # as it is written there: `[${big}, ${big}, ...]` is 9 MB once written out.
        ["${big}"] * 10,
        {f"k{index}": "${list}" for index in range(10)},
        [["${big}", "${list}"]] * 5,
    ],
)
def test_what_one_render_builds_is_charged_against_one_budget(value: Any) -> None:
    template = compile_template(value)

    with pytest.raises(ExpressionLimitError, match=BUDGET):
        template.render(BIG)


def test_one_budget_spans_a_steps_arguments() -> None:
    arguments = {f"a{index}": compile_template("<${big}>") for index in range(10)}

    assert all(len(template.render(BIG)) == 900_002 for template in arguments.values())
    with pytest.raises(ExpressionLimitError, match=BUDGET):
        render_all(arguments, BIG)


def test_a_render_within_the_budget_is_fine() -> None:
    rendered = compile_template({"a": ["${big}", "${n}"] * 4, "b": "${list}", "c": 3}).render(BIG)

    assert rendered["a"][6] is BIG["big"]  # values read are placed as they are, not copied
    assert rendered["b"] is BIG["list"]
    assert render_all({"x": compile_template("${big}")}, BIG) == {"x": BIG["big"]}


def test_a_shared_structure_is_refused_before_being_written_out() -> None:
    shared = ["x" * 1000] * 2000  # small in memory, 2 MB as text

    with pytest.raises(ExpressionLimitError):
        compile_template("v=${shared}").render({"shared": shared})


def test_evaluation_errors_surface_from_render() -> None:
    with pytest.raises(ExpressionEvaluationError, match="has no key 'missing'"):
        compile_template("id=${inputs.missing}").render(SCOPE)


# --- constants and escapes -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain text", "plain text"),
        ("$${inputs.user_id}", "${inputs.user_id}"),
        ("cost: $5 {braces}", "cost: $5 {braces}"),
        (42, 42),
        (1.5, 1.5),
        (True, True),
        (None, None),
    ],
)
def test_values_without_placeholders_are_constants(value: Any, expected: Any) -> None:
    template = compile_template(value)

    assert template.is_constant
    assert template.references == frozenset()
    assert template.render(SCOPE) == expected


def test_an_escape_next_to_a_placeholder() -> None:
    assert render("$${literal} and ${inputs.user_id}") == "${literal} and 7"


def test_constants_render_as_the_same_object_every_time() -> None:
    value = {"headers": {"Accept": "application/json"}, "retries": [1, 2]}
    template = compile_template(value)

    assert template.is_constant
    assert template.render(SCOPE) is value
    assert template.render({}) is value


def test_constant_parts_of_a_templated_value_are_not_copied() -> None:
    headers = {"Accept": "application/json"}
    template = compile_template({"headers": headers, "id": "${inputs.user_id}"})

    rendered = template.render(SCOPE)

    assert rendered == {"headers": headers, "id": 7}
    assert rendered["headers"] is headers


def test_escapes_inside_constant_structures_are_unescaped() -> None:
    assert render({"a": ["b", "$${c}"]}) == {"a": ["b", "${c}"]}


# --- dicts and lists -------------------------------------------------------------------------


def test_dicts_and_lists_are_rendered_recursively() -> None:
    value = {
        "query": "SELECT * FROM users WHERE id = $1",
        "params": ["${inputs.user_id}", "${inputs.name}", 3],
        "json": {"user": {"email": "${fetch.rows[0].email}", "label": "id ${inputs.user_id}"}},
    }

    assert render(value) == {
        "query": "SELECT * FROM users WHERE id = $1",
        "params": [7, "Ada", 3],
        "json": {"user": {"email": "ada@example.org", "label": "id 7"}},
    }


def test_dict_keys_are_literal() -> None:
    assert render({"${inputs.name}": "${inputs.name}"}) == {"${inputs.name}": "Ada"}


def test_rendering_builds_new_containers_each_time() -> None:
    template = compile_template({"ids": ["${inputs.user_id}"]})

    first, second = template.render(SCOPE), template.render(SCOPE)

    assert first == second
    assert first is not second
    assert first["ids"] is not second["ids"]


def test_references_are_collected_from_every_placeholder() -> None:
    template = compile_template(
        {
            "a": "${inputs.user_id}",
            "b": ["x ${fetch.rows[0].email} ${check_cache.exists}"],
            "c": "constant",
        }
    )

    assert not template.is_constant
    assert template.references == {
        Reference("inputs", ("user_id",)),
        Reference("fetch", ("rows", 0, "email")),
        Reference("check_cache", ("exists",)),
    }


@pytest.mark.parametrize("value", ["${a}", "x${a}", ["${a}"], {"k": "${a}"}, [{"k": ["${a}"]}]])
def test_anything_holding_a_placeholder_is_not_constant(value: Any) -> None:
    template = compile_template(value)

    assert not template.is_constant
    assert template.references == {Reference("a")}


# --- compile errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "offset"),
    [
        ("${inputs.__class__}", 9),
        ("id: ${inputs.__class__}", 13),
        ("a ${1 + $} b", 8),
        ("${a", 0),
        ("ok ${a} ${", 8),
    ],
)
def test_compile_errors_point_into_the_string(value: str, offset: int) -> None:
    with pytest.raises(ExpressionSyntaxError) as caught:
        compile_template(value)

    assert caught.value.offset == offset


def test_compile_errors_in_nested_values_name_their_place() -> None:
    with pytest.raises(ExpressionSyntaxError, match=r"^h\.k\[1\]: the function '__import__'"):
        compile_template({"h": {"k": ["ok", "${__import__('os')}"]}})


def test_an_empty_placeholder_is_refused() -> None:
    with pytest.raises(ExpressionSyntaxError, match="empty"):
        compile_template("x ${} y")


# --- conditions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("not ${check_cache.exists}", True),
        ("${check_cache.exists}", False),
        ("${inputs.user_id} > 3 and ${inputs.admin}", True),
        ("${inputs.user_id} > 3 and ${check_cache.exists}", False),
        ("${inputs.user_id + 1} == 8", True),
        ("${check_cache.exists} or ${check_cache.count} == 0", True),
        ("${inputs.name} == '$${literal}'", False),
        ("inputs.user_id == 7", True),
        ("not check_cache.exists", True),
        ("true", True),
        ("null", None),
    ],
)
def test_conditions_are_one_expression(condition: str, expected: Any) -> None:
    assert compile_condition(condition).evaluate(SCOPE) == expected


def test_each_placeholder_is_one_value_in_the_condition() -> None:
    # Without the parentheses, `not a or b` would group differently.
    condition = compile_condition("not ${check_cache.exists or True}")

    assert condition.evaluate(SCOPE) is False


@pytest.mark.parametrize("value", [True, False])
def test_a_boolean_condition_is_constant(value: bool) -> None:
    condition = compile_condition(value)

    assert condition.evaluate({}) is value
    assert condition.references == frozenset()


def test_condition_references() -> None:
    condition = compile_condition("${inputs.user_id} > 3 and not ${check_cache.exists}")

    assert condition.references == {
        Reference("inputs", ("user_id",)),
        Reference("check_cache", ("exists",)),
    }


@pytest.mark.parametrize(
    ("condition", "offset"),
    [
        ("not ${check_cache.__dict__}", 18),
        ("${a} and b._c", 11),
        ("'$${x}' and ${a._b}", 16),
        ("check_cache.__dict__", 12),
    ],
)
def test_condition_errors_point_into_the_original_string(condition: str, offset: int) -> None:
    with pytest.raises(ExpressionSyntaxError) as caught:
        compile_condition(condition)

    assert caught.value.offset == offset


def test_a_condition_must_be_a_string_or_a_boolean() -> None:
    with pytest.raises(ExpressionSyntaxError, match="string or a boolean"):
        compile_condition(1)  # type: ignore[arg-type]


def test_a_failed_argument_is_named_with_its_expression() -> None:
    arguments = {
        "ok": compile_template("${rows}"),
        "row": compile_template("${rows[0]}"),
        "text": compile_template("first: ${rows[1]}"),
    }

    with pytest.raises(ExpressionEvaluationError) as native:
        render_all({"row": arguments["row"]}, {"rows": []})
    with pytest.raises(ExpressionEvaluationError) as text:
        render_all({"ok": arguments["ok"], "text": arguments["text"]}, {"rows": [1]})

    assert native.value.message == (
        "input 'row' = `${rows[0]}`: `rows` is empty (an array of length 0), so it has no index 0"
    )
    assert text.value.message == (
        "input 'text': index 1 is out of range for `rows` (an array of length 1)"
    )
