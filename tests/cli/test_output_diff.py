"""What `watch` shows of the outputs between two runs: added, removed and changed values,
named by their path."""

from __future__ import annotations

from app.cli.output_diff import ChangeKind, OutputChange, output_changes, render_changes


def test_identical_outputs_have_no_changes() -> None:
    outputs = {"user": {"name": "Ada", "tags": [1, 2]}, "count": 2}
    assert output_changes(outputs, dict(outputs)) == []


def test_added_removed_and_changed_keys() -> None:
    before = {"kept": 1, "changed": "old", "gone": True}
    after = {"kept": 1, "changed": "new", "new": [1]}

    assert output_changes(before, after) == [
        OutputChange(ChangeKind.CHANGED, "changed", "old", "new"),
        OutputChange(ChangeKind.ADDED, "new", after=[1]),
        OutputChange(ChangeKind.REMOVED, "gone", before=True),
    ]


def test_a_change_deep_in_an_object_is_named_by_its_path() -> None:
    before = {"user": {"address": {"city": "Oslo", "zip": "0150"}, "name": "Ada"}}
    after = {"user": {"address": {"city": "Bergen", "zip": "0150"}, "name": "Ada", "id": 7}}

    assert output_changes(before, after) == [
        OutputChange(ChangeKind.CHANGED, "user.address.city", "Oslo", "Bergen"),
        OutputChange(ChangeKind.ADDED, "user.id", after=7),
    ]


def test_lists_are_compared_whole() -> None:
    assert output_changes({"items": [1, 2, 3]}, {"items": [1, 2]}) == [
        OutputChange(ChangeKind.CHANGED, "items", [1, 2, 3], [1, 2])
    ]


def test_values_equal_in_python_but_not_in_json_are_a_change() -> None:
    changes = output_changes({"a": 1, "b": 1, "c": [0]}, {"a": True, "b": 1.0, "c": [False]})
    assert [change.path for change in changes] == ["a", "b", "c"]


def test_an_object_replaced_by_a_value_is_one_change() -> None:
    assert output_changes({"user": {"name": "Ada"}}, {"user": None}) == [
        OutputChange(ChangeKind.CHANGED, "user", {"name": "Ada"}, None)
    ]


def test_keys_that_are_not_names_are_quoted() -> None:
    changes = output_changes({"by id": {"1": "a"}}, {"by id": {"1": "b"}})
    assert [change.path for change in changes] == ['["by id"]["1"]']


def test_the_rendering_marks_each_kind_of_change() -> None:
    changes = output_changes(
        {"total": 1, "old": "x", "user": {"name": "Ada"}},
        {"total": 2, "user": {"name": "Ada", "city": "Oslo"}},
    )

    assert render_changes(changes).plain.splitlines() == [
        "  ~ total: 1 → 2",
        '  + user.city: "Oslo"',
        '  - old: "x"',
    ]
