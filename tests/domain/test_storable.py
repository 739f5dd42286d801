"""Storable JSON (`app.domain.storable`): what every store keeps as it is, and how it is
measured."""

from __future__ import annotations

import json
from collections import OrderedDict
from datetime import UTC, date, datetime, time
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID

import pytest

from app.domain.storable import MAX_DEPTH, json_data, json_size, sized_json_data
from app.errors import UnstorableValueError, ValueTooLargeError


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


class Colour(StrEnum):
    RED = "red"


UNSTORABLE = [
    pytest.param({"v": float("nan")}, "value.v", "NaN is not a JSON number", id="nan"),
    pytest.param({"v": float("inf")}, "value.v", "Infinity is not a JSON number", id="inf"),
    pytest.param({"v": [float("-inf")]}, "value.v[0]", "-Infinity is not", id="-inf"),
    pytest.param({"v": "a\ud800b"}, "value.v", "lone surrogates", id="lone surrogate"),
    pytest.param({"v": "a\x00b"}, "value.v", "NUL", id="NUL"),
    pytest.param({"v": {"\x00": 1}}, "value.v", "the key '\\x00'", id="NUL in a key"),
    pytest.param({"v": {1: "one"}}, "value.v", "the key 1 is not text (int)", id="int key"),
    pytest.param({"v": {(1, 2): 3}}, "value.v", "the key (1, 2) is not text", id="tuple key"),
    pytest.param({"v": object()}, "value.v", "type object is not JSON data", id="object"),
    pytest.param({"v": Decimal("NaN")}, "value.v", "Decimal('NaN')", id="decimal NaN"),
    pytest.param({"v": 10**4300}, "value.v", "more than 4300 digits", id="huge int"),
    pytest.param(
        {"v": nested(MAX_DEPTH)}, "value.v" + "[0]" * (MAX_DEPTH - 1), "deeper", id="deep"
    ),
    pytest.param({"v": b"\x00"}, "value.v", "NUL", id="bytes with NUL"),
]


@pytest.mark.parametrize(("value", "path", "reason"), UNSTORABLE)
def test_an_unstorable_value_is_refused_with_its_path(value: Any, path: str, reason: str) -> None:
    with pytest.raises(UnstorableValueError) as refused:
        json_data(value)

    assert refused.value.path == path
    assert reason in refused.value.reason
    assert refused.value.message == f"{path}: {refused.value.reason}"


def test_the_path_names_indexes_and_keys_as_written() -> None:
    value = {"rows": [{"name": "a"}, {"name": "b"}, {"name": "c"}, {"full name": "\ud800"}]}

    with pytest.raises(UnstorableValueError) as refused:
        json_data(value, root="outputs")

    assert refused.value.path == 'outputs.rows[3]["full name"]'
    assert refused.value.loc == ("outputs", "rows", 3, "full name")


def test_a_cycle_is_refused_as_too_deep_not_a_crash() -> None:
    cycle: dict[str, Any] = {}
    cycle["self"] = cycle

    with pytest.raises(UnstorableValueError, match="deeper than"):
        json_data(cycle)


def test_nesting_up_to_the_limit_is_storable() -> None:
    value = nested(MAX_DEPTH - 1)

    assert json_data({"v": value}) == {"v": value}


def test_plain_json_data_is_returned_as_is_without_a_copy() -> None:
    value = {"rows": [{"id": 1, "name": "Ada", "ok": True, "score": 1.5, "none": None}]}

    assert json_data(value) is value


def test_driver_values_are_converted_as_a_store_would_keep_them() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    value = {
        "at": moment,
        "day": date(2026, 1, 2),
        "time": time(3, 4),
        "price": Decimal("1.50"),
        "count": Decimal("3"),
        "id": UUID(int=1),
        "raw": b"caf\xc3\xa9 \xff",
        "pair": (1, 2),
        "tags": frozenset({"x"}),
        "colour": Colour.RED,
        "ordered": OrderedDict(a=1),
    }

    converted = json_data(value)

    assert converted == {
        "at": "2026-01-02T03:04:05+00:00",
        "day": "2026-01-02",
        "time": "03:04:00",
        "price": 1.5,
        "count": 3,
        "id": "00000000-0000-0000-0000-000000000001",
        "raw": "café \ufffd",
        "pair": [1, 2],
        "tags": ["x"],
        "colour": "red",
        "ordered": {"a": 1},
    }
    assert type(converted["colour"]) is str
    assert type(converted["ordered"]) is dict
    assert json.loads(json.dumps(converted)) == converted  # what a store gives back


def test_only_the_changed_branches_are_copied() -> None:
    untouched = {"a": [1, 2, 3]}
    value = {"same": untouched, "changed": (1, 2)}

    converted = json_data(value)

    assert converted is not value
    assert converted["same"] is untouched
    assert value["changed"] == (1, 2)  # the caller's value is left alone


@pytest.mark.parametrize(
    "value",
    [{"text": "Hello, Ada!", "n": 1}, {"é": "naïve ✓ 😀", "list": [1.25, None, True]}, []],
)
def test_the_size_is_that_of_compact_utf8_json(value: Any) -> None:
    expected = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())

    assert json_size(value) == expected
    assert sized_json_data(value, root="v", max_bytes=expected).size == expected


def test_a_value_past_the_limit_is_refused_with_its_exact_size() -> None:
    value = {"text": "é" * 600}  # 1200 bytes of text, 600 characters

    with pytest.raises(ValueTooLargeError) as refused:
        sized_json_data(value, root="v", max_bytes=1000)

    assert refused.value.size == json_size(value)
    assert refused.value.exact


def test_a_huge_value_is_refused_early_without_serializing_it() -> None:
    value = {"rows": ["x" * 1000] * 100_000}  # 100 MB as JSON

    with pytest.raises(ValueTooLargeError) as refused:
        sized_json_data(value, root="v", max_bytes=10_000)

    assert not refused.value.exact
    assert 10_000 < refused.value.size < 20_000  # the walk stopped just past the limit
