"""What a definition may ask for (`DefinitionLimits`): a step's timeout and a retry's delays,
refused at their place past MAX_STEP_TIMEOUT_SECONDS and MAX_RETRY_DELAY_SECONDS."""

from __future__ import annotations

import json

import pytest

from app.connections.manager import ConnectionManager
from app.dsl.definitions import parse_definition
from app.dsl.limits import DefinitionLimits
from app.dsl.models import FlowDefinition, RetryPolicy
from app.errors import DefinitionError, Problem
from app.tasks.builtins import builtin_registry

CATALOG = builtin_registry().catalog()
TYPES = ConnectionManager().types
DAY = 86_400


def flow(*, defaults: str = "", step: str = "") -> str:
    """Two steps; the first one's extra fields are `step`, the flow's `defaults:` body is
    `defaults`."""
    lines = ["flow: Durations"]
    if defaults:
        lines.append(f"defaults: {{{defaults}}}")
    lines += [
        "steps:",
        f"  - set: {{id: a, values: {{v: 1}}{', ' + step if step else ''}}}",
        "  - set: {id: b, values: {v: 2}}",
    ]
    return "\n".join(lines) + "\n"


def parse(source: str, limits: DefinitionLimits | None = None) -> FlowDefinition:
    return parse_definition(source, CATALOG, TYPES, limits=limits or DefinitionLimits())


def refused(source: str, limits: DefinitionLimits | None = None) -> list[Problem]:
    with pytest.raises(DefinitionError) as caught:
        parse(source, limits)
    return list(caught.value.problems)


# (the definition, where the value stands, the setting that bounds it)
PLACES = [
    (
        lambda value: flow(step=f"timeout: {value}"),
        ("steps", 0, "set", "timeout"),
        "MAX_STEP_TIMEOUT_SECONDS",
    ),
    (
        lambda value: flow(defaults=f"timeout: {value}"),
        ("defaults", "timeout"),
        "MAX_STEP_TIMEOUT_SECONDS",
    ),
    (
        lambda value: flow(step=f"retry: {{max_attempts: 3, delay: {value}}}"),
        ("steps", 0, "set", "retry", "delay"),
        "MAX_RETRY_DELAY_SECONDS",
    ),
    (
        lambda value: flow(step=f"retry: {{max_attempts: 3, max_delay: {value}}}"),
        ("steps", 0, "set", "retry", "max_delay"),
        "MAX_RETRY_DELAY_SECONDS",
    ),
    (
        lambda value: flow(defaults=f"retry: {{max_attempts: 3, delay: {value}}}"),
        ("defaults", "retry", "delay"),
        "MAX_RETRY_DELAY_SECONDS",
    ),
    (
        lambda value: flow(defaults=f"retry: {{max_attempts: 3, max_delay: {value}}}"),
        ("defaults", "retry", "max_delay"),
        "MAX_RETRY_DELAY_SECONDS",
    ),
]
PLACE_IDS = [".".join(map(str, loc)) for _, loc, _ in PLACES]


@pytest.mark.parametrize(("build", "loc", "setting"), PLACES, ids=PLACE_IDS)
def test_a_duration_past_its_limit_is_refused_at_its_place_naming_the_setting(
    build: object, loc: tuple[str | int, ...], setting: str
) -> None:
    assert callable(build)
    source = build("1e9")

    (problem,) = refused(source)

    assert problem.loc == loc
    assert problem.type == "duration_too_long"
    assert problem.msg == f"must be at most 86,400 seconds (setting {setting}), not 1e+09"
    written = "defaults:" if loc[0] == "defaults" else "  - set: {id: a"
    line = next(i for i, text in enumerate(source.splitlines(), 1) if text.startswith(written))
    assert problem.line == line
    assert problem.column == source.splitlines()[line - 1].index(f"{loc[-1]}:") + 1


@pytest.mark.parametrize(("build", "loc", "setting"), PLACES, ids=PLACE_IDS)
def test_a_duration_at_its_limit_is_accepted(
    build: object, loc: tuple[str | int, ...], setting: str
) -> None:
    assert callable(build)
    parse(build(DAY))


def test_the_limits_are_parameters() -> None:
    limits = DefinitionLimits(max_step_timeout=10, max_retry_delay=5)
    parse(flow(step="timeout: 10, retry: {max_attempts: 2, delay: 5, max_delay: 5}"), limits)

    problems = refused(
        flow(step="timeout: 10.5, retry: {max_attempts: 2, delay: 6, max_delay: 5.5}"), limits
    )

    assert [(problem.loc[-1], problem.msg) for problem in problems] == [
        ("delay", "must be at most 5 seconds (setting MAX_RETRY_DELAY_SECONDS), not 6"),
        ("max_delay", "must be at most 5 seconds (setting MAX_RETRY_DELAY_SECONDS), not 5.5"),
        ("timeout", "must be at most 10 seconds (setting MAX_STEP_TIMEOUT_SECONDS), not 10.5"),
    ]


def test_infinity_is_past_every_limit() -> None:
    (problem,) = refused(flow(step="timeout: .inf"))

    assert problem.type == "duration_too_long"
    assert problem.msg.endswith("not inf")


def test_a_json_definition_is_refused_with_line_and_column() -> None:
    source = json.dumps(
        {"flow": "J", "steps": [{"sleep": {"id": "s", "seconds": 1, "timeout": 1e9}}]}, indent=1
    )

    (problem,) = refused(source)

    assert problem.loc == ("steps", 0, "sleep", "timeout")
    assert problem.line == source.splitlines().index('    "timeout": 1000000000.0') + 1


def test_a_problem_in_the_defaults_is_reported_once_where_it_is_written() -> None:
    """Not again at every step that takes the defaults, nor at a step's own `retry:` (each
    step used to report the defaults' retry problems at its own place)."""
    source = flow(
        defaults="timeout: 1e9, retry: {delay: -1, max_delay: 1e9}",
        step="retry: {max_attempts: 2}",
    )

    problems = refused(source)

    assert sorted((problem.loc, problem.line) for problem in problems) == [
        (("defaults", "retry", "delay"), 2),
        (("defaults", "retry", "max_delay"), 2),
        (("defaults", "timeout"), 2),
    ]


def test_a_steps_retry_fields_replace_the_defaults_one_by_one() -> None:
    source = flow(
        defaults="timeout: 30, retry: {max_attempts: 4, delay: 2, retry_on: [TimeoutError]}",
        step="retry: {delay: 7}",
    )

    first, second = parse(source).steps

    assert first.retry == RetryPolicy(max_attempts=4, delay=7, retry_on=frozenset({"TimeoutError"}))
    assert second.retry == RetryPolicy(
        max_attempts=4, delay=2, retry_on=frozenset({"TimeoutError"})
    )
    assert first.timeout == second.timeout == 30
