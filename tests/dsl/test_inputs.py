"""A run's inputs against the declared inputs: required, defaults, coercions, strictness."""

from __future__ import annotations

from typing import Any

import pytest

from app.dsl.inputs import validate_inputs
from app.dsl.models import InputSpec, InputType
from app.errors import InputValidationError

DECLARED = {
    "id": InputSpec("id", InputType.INTEGER, required=True),
    "ratio": InputSpec("ratio", InputType.NUMBER, default=0.5, has_default=True),
    "flag": InputSpec("flag", InputType.BOOLEAN),
    "tags": InputSpec("tags", InputType.ARRAY),
    "meta": InputSpec("meta", InputType.OBJECT),
    "name": InputSpec("name", InputType.STRING),
    "blob": InputSpec("blob", InputType.ANY),
}


def test_defaults_apply_and_optional_inputs_are_null() -> None:
    assert validate_inputs(DECLARED, {"id": 1}) == {
        "id": 1,
        "ratio": 0.5,
        "flag": None,
        "tags": None,
        "meta": None,
        "name": None,
        "blob": None,
    }


@pytest.mark.parametrize(
    ("name", "given", "expected"),
    [
        ("id", "42", 42),
        ("id", " -7 ", -7),
        ("id", 3.0, 3),
        ("ratio", "2.5", 2.5),
        ("ratio", "3", 3),
        ("ratio", 1, 1),
        ("flag", "False", False),
        ("flag", True, True),
        ("blob", {"x": [1]}, {"x": [1]}),
    ],
)
def test_documented_coercions(name: str, given: Any, expected: Any) -> None:
    values = validate_inputs(DECLARED, {"id": 1, name: given})

    assert values[name] == expected
    assert type(values[name]) is type(expected)


@pytest.mark.parametrize(
    ("name", "given", "message"),
    [
        ("id", True, "must be an integer"),
        ("id", 1.5, "must be an integer"),
        ("id", "4x", "must be an integer"),
        ("ratio", "nan", "must be a number"),
        ("ratio", float("inf"), "must be a number"),
        ("ratio", False, "must be a number"),
        ("flag", 1, "must be a boolean"),
        ("flag", "yes", "must be a boolean"),
        ("tags", "a,b", "must be an array"),
        ("meta", [1], "must be an object"),
        ("name", 5, "must be a string"),
    ],
)
def test_values_that_do_not_fit_are_refused(name: str, given: Any, message: str) -> None:
    with pytest.raises(InputValidationError) as caught:
        validate_inputs(DECLARED, {"id": 1, name: given})

    (problem,) = caught.value.problems
    assert problem.loc == ("inputs", name)
    assert message in problem.msg


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(InputValidationError) as caught:
        validate_inputs(DECLARED, {"flag": "maybe", "surprise": 1})

    assert sorted(problem.loc for problem in caught.value.problems) == [
        ("inputs", "flag"),
        ("inputs", "id"),
        ("inputs", "surprise"),
    ]


def test_non_strict_flows_accept_undeclared_inputs() -> None:
    assert validate_inputs({}, {"anything": [1, 2]}, strict=False) == {"anything": [1, 2]}
