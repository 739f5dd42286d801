"""How a run's outputs are compared with a fixture's: path by path, as JSON sees values."""

from __future__ import annotations

from typing import Any

import pytest

from app.domain.fixtures import ExpectedFailure, ExpectedOutputs
from app.domain.runs import RunError, RunStatus
from app.testing.comparing import differences


def compared(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    return differences(ExpectedOutputs(expected), RunStatus.COMPLETED, actual, None)


def test_equal_outputs_have_no_difference_and_1_is_1_0() -> None:
    assert compared({"a": [1, {"b": None}], "c": 2}, {"a": [1.0, {"b": None}], "c": 2}) == []


@pytest.mark.parametrize(
    ("expected", "actual", "found"),
    [
        ({"n": True}, {"n": 1}, ["outputs.n: expected True, got 1"]),
        ({"n": 0}, {"n": False}, ["outputs.n: expected 0, got False"]),
        ({"n": "1"}, {"n": 1}, ["outputs.n: expected '1', got 1"]),
        ({"n": [1]}, {"n": {"0": 1}}, ["outputs.n: expected [1], got {'0': 1}"]),
        ({"l": [1, 2]}, {"l": [1]}, ["outputs.l[1]: missing, expected 2"]),
        ({"l": [1]}, {"l": [1, 3]}, ["outputs.l[1]: not expected, got 3"]),
        (
            {"m": {"x": [{"y": 1}]}},
            {"m": {"x": [{"y": 2}]}},
            ["outputs.m.x[0].y: expected 1, got 2"],
        ),
    ],
)
def test_each_difference_is_named_by_its_path(
    expected: dict[str, Any], actual: dict[str, Any], found: list[str]
) -> None:
    assert compared(expected, actual) == found


def test_a_long_value_is_shown_by_its_start() -> None:
    [line] = compared({"t": "a"}, {"t": "b" * 1000})

    assert line.startswith("outputs.t: expected 'a', got 'bbb")
    assert line.endswith("...")
    assert len(line) < 250


def test_a_failure_outside_any_step_matches_step_null() -> None:
    error = RunError(None, "ExpressionEvaluationError", "output 'x': no such key")

    assert differences(ExpectedFailure(None), RunStatus.FAILED, None, error) == []
    assert differences(ExpectedFailure("x"), RunStatus.FAILED, None, error) == [
        "failed.step: expected 'x', got None (ExpressionEvaluationError: \"output 'x': no "
        'such key")'
    ]
