"""The step graph: waits from order, handlers and references; reference checks; its cost."""

from __future__ import annotations

import time

import pytest

from app.connections.manager import ConnectionManager
from app.dsl.catalog import TaskSpec
from app.dsl.definitions import parse_definition
from app.dsl.graph import build_graph
from app.dsl.models import FlowDefinition, Mode, Step
from app.dsl.problems import ProblemCollector
from app.dsl.templates import compile_template
from app.errors import DefinitionError
from app.tasks.builtins import builtin_registry

CATALOG: dict[str, TaskSpec] = builtin_registry().catalog()
TYPES = ConnectionManager().types


def parse(source: str) -> FlowDefinition:
    return parse_definition(source, CATALOG, TYPES)


def messages(source: str) -> list[str]:
    with pytest.raises(DefinitionError) as caught:
        parse(source)
    return [problem.msg for problem in caught.value.problems]


HANDLED = """flow: H
steps:
  - set: {id: first, values: {v: 0}}
  - fail:
      id: f
      on_error:
        - set: {id: h1, values: {v: 1}}
        - set: {id: h2, values: {v: "${h1.v}"}, on_error: [{set: {id: h2a, values: {v: 2}}}]}
  - set: {id: after, values: {v: "${first.v + h1.v + h2.v + h2a.v}"}}
"""


def test_handlers_chain_after_their_step_and_everything_after_waits_for_them() -> None:
    definition = parse(HANDLED)

    assert definition.handlers == {"f": ("h1", "h2"), "h2": ("h2a",)}
    assert definition.dependencies == {
        "first": frozenset(),
        "f": frozenset({"first"}),
        "h1": frozenset({"f"}),
        "h2": frozenset({"h1"}),
        "h2a": frozenset({"h2"}),
        "after": frozenset({"f", "h2", "h2a"}),
    }


@pytest.mark.parametrize(
    ("replace", "by", "expected"),
    [
        # A handler sees the handlers before it, not those after it nor later steps.
        ("{id: h1, values: {v: 1}}", '{id: h1, values: {v: "${h2.v}"}}', "step 'h2' is not"),
        ("{id: h1, values: {v: 1}}", '{id: h1, values: {v: "${after.v}"}}', "'after' is not"),
        ("{id: first, values: {v: 0}}", '{id: first, values: {v: "${h2a.v}"}}', "'h2a' is not"),
    ],
)
def test_a_reference_to_a_step_that_is_not_an_ancestor_is_refused(
    replace: str, by: str, expected: str
) -> None:
    assert replace in HANDLED

    found = messages(HANDLED.replace(replace, by))

    assert any(expected in message for message in found), found


def test_in_a_dag_depends_on_and_references_both_make_waits() -> None:
    definition = parse(
        """flow: D
mode: dag
steps:
  - set: {id: a, values: {v: 1}}
  - set: {id: b, values: {v: "${a.v}"}, depends_on: [c]}
  - set: {id: c, values: {v: 2}}
  - set: {id: d, values: {v: "${b.v + a.v}"}}
"""
    )

    assert definition.dependencies == {
        "a": frozenset(),
        "b": frozenset({"a", "c"}),
        "c": frozenset(),
        "d": frozenset({"a", "b"}),
    }


def chain(count: int, mode: Mode) -> list[Step]:
    """`count` steps; in a DAG each reads the one before it and the one halfway back."""
    steps = [Step("s0", "set", {"values": compile_template({"v": 0})})]
    for index in range(1, count):
        expression = f"${{s{index - 1}.v + s{index // 2}.v}}"
        steps.append(Step(f"s{index}", "set", {"values": compile_template({"v": expression})}))
    return steps


@pytest.mark.parametrize("mode", [Mode.SEQUENTIAL, Mode.DAG])
def test_the_graph_of_thousands_of_steps_is_built_in_near_linear_time(mode: Mode) -> None:
    # Quadratic work (a list.index per step, a set of every ancestor per step) took 6 s and
    # gigabytes for 8,000 sequential steps; near-linear work takes well under a tenth of it.
    steps = chain(8000, mode)
    problems = ProblemCollector()

    started = time.perf_counter()
    graph = build_graph(steps, mode, {}, True, {}, [], CATALOG, problems)
    elapsed = time.perf_counter() - started

    assert problems.problems == []
    assert graph.dependencies["s7999"] == (
        frozenset({"s7998"}) if mode is Mode.SEQUENTIAL else frozenset({"s7998", "s3999"})
    )
    assert elapsed < 1.5
