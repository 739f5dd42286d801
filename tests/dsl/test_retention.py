"""A definition's `retention: {days, max_runs}`: read, bounded, and refused where it misfits."""

from __future__ import annotations

import json

import pytest

from app.connections.manager import ConnectionManager
from app.domain.retention import MAX_RETENTION_DAYS, MAX_RETENTION_RUNS, Retention
from app.dsl.definitions import parse_definition
from app.dsl.models import FlowDefinition
from app.errors import DefinitionError, Problem
from app.tasks.builtins import builtin_registry

CATALOG = builtin_registry().catalog()
STEPS = "steps:\n  - log: {id: hello, message: hi}\n"


def parse(source: str) -> FlowDefinition:
    return parse_definition(source, CATALOG, ConnectionManager().types)


def problems_of(source: str) -> list[Problem]:
    with pytest.raises(DefinitionError) as caught:
        parse(source)
    return list(caught.value.problems)


def with_retention(retention: str) -> str:
    return f"flow: Kept\nretention: {retention}\n{STEPS}"


def test_days_and_max_runs_are_read() -> None:
    assert parse(with_retention("{days: 30, max_runs: 1000}")).retention == Retention(30, 1000)
    assert parse(with_retention("{days: 7}")).retention == Retention(days=7)
    assert parse(with_retention("{max_runs: 5}")).retention == Retention(max_runs=5)


def test_a_flow_without_retention_keeps_what_the_service_keeps() -> None:
    assert parse(f"flow: Kept\n{STEPS}").retention == Retention()


def test_json_definitions_declare_it_alike() -> None:
    source = json.dumps(
        {
            "flow": "Kept",
            "retention": {"max_runs": 3},
            "steps": [{"log": {"id": "hello", "message": "hi"}}],
        }
    )
    assert parse_definition(source, CATALOG, ConnectionManager().types).retention.max_runs == 3


@pytest.mark.parametrize(
    ("retention", "message"),
    [
        ("{days: 0}", "must be at least 1"),
        ("{days: -3}", "must be at least 1"),
        ("{max_runs: 0}", "must be at least 1"),
        ("{days: 1.5}", "must be an integer"),
        ("{days: '30'}", "must be an integer"),
        ("{days: true}", "must be an integer"),
        (f"{{days: {MAX_RETENTION_DAYS + 1}}}", f"must be at most {MAX_RETENTION_DAYS:,}"),
        (f"{{max_runs: {MAX_RETENTION_RUNS + 1}}}", f"must be at most {MAX_RETENTION_RUNS:,}"),
    ],
)
def test_a_value_out_of_bounds_is_refused_where_it_stands(retention: str, message: str) -> None:
    [problem] = problems_of(with_retention(retention))

    assert problem.msg == message
    assert problem.loc[0] == "retention"
    assert problem.line == 2  # on the value itself, within the mapping
    assert problem.column is not None
    assert problem.column > len("retention: {")


def test_unknown_fields_an_empty_mapping_and_other_shapes_are_refused() -> None:
    [unknown] = problems_of(with_retention("{days: 3, weeks: 2}"))
    assert unknown.loc == ("retention", "weeks")
    assert unknown.msg.startswith("unknown field 'weeks' (known: days, max_runs)")

    [empty] = problems_of(with_retention("{}"))
    assert empty.msg == "needs `days`, `max_runs` or both"
    assert empty.line == 2

    [scalar] = problems_of(with_retention("30"))
    assert scalar.msg == "must be a mapping with `days` and/or `max_runs`"


def test_the_bounds_themselves_are_accepted() -> None:
    source = with_retention(f"{{days: {MAX_RETENTION_DAYS}, max_runs: {MAX_RETENTION_RUNS}}}")
    assert parse(source).retention == Retention(MAX_RETENTION_DAYS, MAX_RETENTION_RUNS)
