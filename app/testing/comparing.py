"""What a run gave against what a fixture expects: one line per difference, path by path.

    outputs.user.name: expected 'Alice', got 'Bob'
    outputs.tags[2]: missing, expected 'new'
    outputs.debug: not expected, got True

Values compare as JSON does: a boolean is not a number, 1 and 1.0 are the same number.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from app.domain.fixtures import Expectation, ExpectedFailure, ExpectedOutputs
from app.domain.runs import RunError, RunStatus
from app.errors import Loc, format_loc

MAX_SHOWN_CHARS = 200  # of one value in a difference; the start says enough


def differences(
    expect: Expectation, status: RunStatus, outputs: Any, error: RunError | None
) -> list[str]:
    """Where the run differs from the expectation; empty when it matches."""
    if isinstance(expect, ExpectedOutputs):
        if status is not RunStatus.COMPLETED:
            return [f"status: expected completed, got {status.value}{_failure(error)}"]
        return list(_value_differences(expect.outputs, outputs or {}, ("outputs",)))
    return _failure_differences(expect, status, outputs, error)


def _failure_differences(
    expect: ExpectedFailure, status: RunStatus, outputs: Any, error: RunError | None
) -> list[str]:
    if status is not RunStatus.FAILED or error is None:
        at = f" at step {expect.step!r}" if expect.step else ""
        return [f"status: expected failed{at}, got {status.value} with outputs {_shown(outputs)}"]
    found = []
    if error.step != expect.step:
        found.append(f"failed.step: expected {expect.step!r}, got {error.step!r} {_cause(error)}")
    if expect.message is not None and expect.message not in error.message:
        found.append(
            f"failed.message: expected to contain {expect.message!r}, got {_shown(error.message)}"
        )
    return found


def _value_differences(expected: Any, actual: Any, loc: Loc) -> Iterator[str]:
    place = format_loc(loc)
    if isinstance(expected, Mapping) and isinstance(actual, Mapping):
        for key, value in expected.items():
            if key in actual:
                yield from _value_differences(value, actual[key], (*loc, key))
            else:
                yield f"{format_loc((*loc, key))}: missing, expected {_shown(value)}"
        for key, value in actual.items():
            if key not in expected:
                yield f"{format_loc((*loc, key))}: not expected, got {_shown(value)}"
    elif isinstance(expected, list) and isinstance(actual, list):
        for index, (wanted, got) in enumerate(zip(expected, actual, strict=False)):
            yield from _value_differences(wanted, got, (*loc, index))
        for index in range(len(actual), len(expected)):
            yield f"{format_loc((*loc, index))}: missing, expected {_shown(expected[index])}"
        for index in range(len(expected), len(actual)):
            yield f"{format_loc((*loc, index))}: not expected, got {_shown(actual[index])}"
    elif not _same(expected, actual):
        yield f"{place}: expected {_shown(expected)}, got {_shown(actual)}"


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, Mapping | list) or isinstance(actual, Mapping | list):
        return False  # one is a container, the other not (both containers compare above)
    same_type = type(expected) is type(actual)
    return (same_type and expected == actual) or _numbers_equal(expected, actual)


def _numbers_equal(expected: Any, actual: Any) -> bool:
    numbers = (int, float)
    return isinstance(expected, numbers) and isinstance(actual, numbers) and expected == actual


def _failure(error: RunError | None) -> str:
    if error is None:
        return ""
    at = f" at step {error.step!r}" if error.step else ""
    return f"{at} {_cause(error)}"


def _cause(error: RunError) -> str:
    return f"({error.type}: {_shown(error.message)})"


def _shown(value: Any) -> str:
    text = repr(value)
    if len(text) > MAX_SHOWN_CHARS:
        return text[: MAX_SHOWN_CHARS - 3] + "..."
    return text
