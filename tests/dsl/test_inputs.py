"""A run's inputs against the declared inputs: required, defaults, coercions, strictness."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.dsl.inputs import coerce_input, validate_inputs
from app.dsl.models import InputSpec, InputType
from app.errors import InputValidationError
from tests.dsl.properties import BOUNDED

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


@pytest.mark.parametrize("kind", list(InputType))
def test_an_optional_input_left_out_is_null_and_null_is_valid_again(kind: InputType) -> None:
    declared = {"a": InputSpec("a", kind)}

    left_out = validate_inputs(declared, {})
    sent_null = validate_inputs(declared, {"a": None})

    assert left_out == sent_null == {"a": None}
    assert validate_inputs(declared, left_out) == left_out  # the engine checks them again


@pytest.mark.parametrize("kind", [kind for kind in InputType if kind is not InputType.ANY])
def test_a_required_typed_input_may_not_be_null(kind: InputType) -> None:
    declared = {"a": InputSpec("a", kind, required=True)}

    with pytest.raises(InputValidationError, match="input 'a' must be"):
        validate_inputs(declared, {"a": None})


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | st.sampled_from(["42", " -7 ", "2.5", "true", "False", "1e3", ""]),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=6,
)
SPECS = st.dictionaries(
    st.sampled_from(["a", "b", "c", "d"]),  # names that given inputs may or may not match
    st.tuples(st.sampled_from(list(InputType)), st.booleans(), st.none() | JSON_VALUES),
    max_size=4,
)


def declared_inputs(specs: dict[str, tuple[InputType, bool, Any]]) -> dict[str, InputSpec]:
    declared = {}
    for name, (kind, required, written) in specs.items():
        spec = InputSpec(name, kind, required)
        if written is not None:
            try:  # a default is checked as the definition's loader checks it
                default = coerce_input(spec, written, ("inputs", name, "default"))
            except InputValidationError:
                continue
            spec = InputSpec(name, kind, required, default, True)
        declared[name] = spec
    return declared


@BOUNDED
@given(
    specs=SPECS, given_inputs=st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), JSON_VALUES)
)
def test_inputs_accepted_at_the_door_are_accepted_again_unchanged(
    specs: dict[str, tuple[InputType, bool, Any]], given_inputs: dict[str, Any]
) -> None:
    # The API checks a run's inputs and stores them as JSON; the engine checks what it reads
    # back. Whatever the door accepts, the engine must accept as it is: one rule.
    declared = declared_inputs(specs)
    try:
        accepted = validate_inputs(declared, given_inputs)
    except InputValidationError:
        return
    stored = json.loads(json.dumps(accepted))

    assert validate_inputs(declared, stored) == stored == accepted
