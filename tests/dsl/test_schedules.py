"""A definition's `schedules:` (DESIGN.md section 9): read with the API's fields and defaults,
and refused where they misfit, at their place (line and column in YAML)."""

from __future__ import annotations

import pytest

from app.connections.manager import ConnectionManager
from app.domain.schedules import MAX_DECLARED_SCHEDULES, Cron, Overlap, ScheduleSpec
from app.dsl.definitions import parse_definition
from app.dsl.models import FlowDefinition
from app.errors import DefinitionError, Problem
from app.tasks.builtins import builtin_registry

CATALOG = builtin_registry().catalog()
HEAD = "flow: Nightly\ninputs:\n  - {name: n, type: integer, default: 1}\n"
STEPS = "steps:\n  - log: {id: hello, message: hi}\n"


def parse(source: str) -> FlowDefinition:
    return parse_definition(source, CATALOG, ConnectionManager().types)


def problems_of(source: str) -> list[Problem]:
    with pytest.raises(DefinitionError) as caught:
        parse(source)
    return list(caught.value.problems)


def with_schedules(schedules: str) -> str:
    return f"{HEAD}schedules:\n{schedules}{STEPS}"


def test_schedules_are_read_with_their_fields() -> None:
    source = with_schedules(
        "  - cron: '30 2 * * *'\n"
        "    timezone: Europe/Paris\n"
        "    inputs: {n: 5}\n"
        "    overlap: cancel_previous\n"
        "    enabled: false\n"
    )

    assert parse(source).schedules == (
        ScheduleSpec(Cron("30 2 * * *", "Europe/Paris"), {"n": 5}, Overlap.CANCEL_PREVIOUS, False),
    )


def test_a_schedule_takes_the_apis_defaults() -> None:
    assert parse(with_schedules("  - {cron: '*/5 * * * * *'}\n")).schedules == (
        ScheduleSpec(Cron("*/5 * * * * *", "UTC"), {}, Overlap.SKIP, True),
    )


def test_a_flow_without_schedules_declares_none() -> None:
    assert parse(HEAD + STEPS).schedules == ()


@pytest.mark.parametrize(
    ("schedule", "loc"),
    [
        ("{cron: '0 24 * * *'}", ("schedules", 0, "cron")),
        ("{cron: '* * * *'}", ("schedules", 0, "cron")),
        ("{cron: 5}", ("schedules", 0, "cron")),
        ("{cron: '* * * * *', timezone: Europe/Atlantis}", ("schedules", 0, "timezone")),
        ("{cron: '* * * * *', overlap: queue}", ("schedules", 0, "overlap")),
        ("{cron: '* * * * *', enabled: maybe}", ("schedules", 0, "enabled")),
        ("{cron: '* * * * *', inputs: {n: many}}", ("schedules", 0, "inputs", "n")),
        ("{cron: '* * * * *', inputs: {m: 1}}", ("schedules", 0, "inputs", "m")),
        ("{cron: '* * * * *', every: 5}", ("schedules", 0, "every")),
        ("{timezone: UTC}", ("schedules", 0)),
    ],
)
def test_a_bad_schedule_is_refused_at_its_place(schedule: str, loc: tuple[str | int, ...]) -> None:
    [problem] = problems_of(with_schedules(f"  - {schedule}\n"))

    assert problem.loc == loc
    assert problem.line == HEAD.count("\n") + 2


def test_schedules_must_be_a_list_of_at_most_the_limit() -> None:
    too_many = "".join("  - {cron: '* * * * *'}\n" for _ in range(MAX_DECLARED_SCHEDULES + 1))

    assert [problem.loc for problem in problems_of(with_schedules(too_many))] == [("schedules",)]
    assert [problem.loc for problem in problems_of(f"{HEAD}schedules: daily\n{STEPS}")] == [
        ("schedules",)
    ]
