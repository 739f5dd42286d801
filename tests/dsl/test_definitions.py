"""Definitions: both spellings of steps, forms of inputs/outputs, and every validation error."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from app.connections.manager import ConnectionManager
from app.dsl.catalog import TaskSpec
from app.dsl.definitions import parse_definition
from app.dsl.expressions import Reference
from app.dsl.limits import DefinitionLimits
from app.dsl.models import ErrorAction, FlowDefinition, FlowKind, InputType, Mode
from app.errors import DefinitionError, Problem
from app.tasks.builtins import builtin_registry

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CUSTOM = {
    "TransformUser": TaskSpec("TransformUser", required_params=frozenset({"user_data"})),
    "UpdateLastLogin": TaskSpec("UpdateLastLogin", required_params=frozenset({"user_id"})),
    "Anything": TaskSpec("Anything", accepts_any_params=True),
}
CATALOG = {**builtin_registry().catalog(), **CUSTOM}
TYPES = ConnectionManager().types


def parse(source: str) -> FlowDefinition:
    return parse_definition(source, CATALOG, TYPES)


def problems_of(source: str) -> list[Problem]:
    with pytest.raises(DefinitionError) as caught:
        parse(source)
    return list(caught.value.problems)


def messages(source: str) -> list[str]:
    return [problem.msg for problem in problems_of(source)]


def test_the_tutorial_flow_parses_as_written() -> None:
    definition = parse((EXAMPLES / "tutorial" / "flow.yaml").read_text())

    assert definition.name == "UserManager"
    assert [step.id for step in definition.steps] == [
        "check_cache",
        "get_cached_user",
        "fetch_from_db",
        "transform",
        "cache_user",
        "update_login",
        "increment_views",
    ]
    fetch = definition.step("fetch_from_db")
    assert fetch.task == "pg_query"
    assert fetch.connection == "db"
    assert fetch.arguments["params"].render({"inputs": {"user_id": 7}}) == [7]
    assert definition.inputs["user_id"].type is InputType.INTEGER
    assert definition.inputs["user_id"].required
    assert definition.connections["db"].type == "postgres"
    assert [output.name for output in definition.outputs] == ["user", "from_cache", "total_views"]
    assert definition.dependencies["transform"] == frozenset({"fetch_from_db"})


def test_json_and_yaml_give_the_same_model() -> None:
    yaml_text = "flow: Same\nsteps:\n  - set: {id: a, values: {x: 1}}\n"
    json_text = '{"flow": "Same", "steps": [{"set": {"id": "a", "values": {"x": 1}}}]}'

    assert parse(yaml_text).steps[0].outputs == parse(json_text).steps[0].outputs == ("x",)


def test_condition_graph_is_translated_to_the_same_model() -> None:
    source = (EXAMPLES / "flow_manager" / "sample_flow.json").read_text()
    catalog = {**CATALOG, **{name: TaskSpec(name) for name in ("task1", "task2", "task3")}}

    definition = parse_definition(source, catalog, TYPES)

    assert definition.name == "flow123"
    assert definition.kind is FlowKind.CONDITION_GRAPH
    assert definition.mode is Mode.DAG
    assert [step.id for step in definition.steps] == ["task1", "task2", "task3"]
    assert definition.dependencies["task3"] == frozenset({"task2"})
    assert all(step.on_error is ErrorAction.CONTINUE for step in definition.steps)


def test_every_problem_is_reported_at_once_with_line_and_column() -> None:
    source = """flow: Broken
steps:
  - set: {id: a, values: {x: 1}}
  - set: {id: a, values: {x: 2}}
  - nope: {id: b}
  - pg_query: {id: c, query: "SELECT 1", connection: missing}
"""
    found = {(problem.msg, problem.line) for problem in problems_of(source)}

    assert ("duplicate step id 'a'", 4) in found
    assert any(msg.startswith("unknown task type 'nope'") and line == 5 for msg, line in found)
    assert any(msg.startswith("unknown connection 'missing'") and line == 6 for msg, line in found)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("flow: 1bad\nsteps: [{set: {id: a, values: {}}}]", "does not match"),
        ("steps: [{set: {id: a, values: {}}}]", "a flow needs a name"),
        ("flow: X", "a flow needs `steps:`"),
        ("flow: X\nsteps: []", "must be a non-empty list of steps"),
        ("flow: X\nsteps: [{set: {values: {}}}]", "a step needs an `id`"),
        ("flow: X\nsteps: [{set: {id: 9a, values: {}}}]", "does not match"),
        ("flow: X\nsteps: [{set: {id: a}}]", "set needs the parameter 'values'"),
        ("flow: X\nsteps: [{set: {id: a, values: {}, bogus: 1}}]", "set has no parameter 'bogus'"),
        ("flow: X\nsteps: [{task: Missing, id: a}]", "unknown task type 'Missing'"),
        ("flow: X\nsteps: [{task: TransformUser, id: a}]", "TransformUser needs the parameter"),
        ("flow: X\nsteps: [{pg_query: {id: a, query: q}}]", "pg_query needs a `connection`"),
        ("flow: X\nsteps: [{set: {id: a, values: {}, retry: {max_attempts: 0}}}]", "at least 1"),
        ("flow: X\nsteps: [{set: {id: a, values: {}, timeout: -1}}]", "greater than 0"),
        ("flow: X\nsteps: [{set: {id: a, values: {}, on_error: explode}}]", "must be one of"),
        ("flow: X\nsteps: [{set: {id: a, values: {}, as: x}}]", "`as` needs `for_each`"),
        ("flow: X\nsteps: [{set: {id: a, values: {}, outputs: [status]}}]", "reserved"),
        ("flow: X\nsteps: [{redis_get: {id: a, key: k, outputs: [nope]}}]", "has no output"),
        ("flow: X\nmode: parallel\nsteps: [{set: {id: a, values: {}}}]", "must be one of"),
        ("flow: X\nwhat: 1\nsteps: [{set: {id: a, values: {}}}]", "unknown field 'what'"),
        ("flow: X\nsteps: [{set: {id: inputs, values: {}}}]", "reserved name"),
        (
            "flow: X\ninputs: [{name: n, type: integer, default: x}]\n"
            "steps: [{set: {id: a, values: {}}}]",
            "must be an integer",
        ),
        (
            "flow: X\nconnections: {db: {type: mongo}}\nsteps: [{set: {id: a, values: {}}}]",
            "must be one of",
        ),
    ],
)
def test_invalid_definitions_are_refused_with_a_precise_message(source: str, expected: str) -> None:
    assert any(expected in message for message in messages(source)), messages(source)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("steps:\n  - set: {id: a, values: {x: '${inputs.nope}'}}", "unknown input 'nope'"),
        ("steps:\n  - set: {id: a, values: {x: '${ghost.x}'}}", "unknown name 'ghost'"),
        (
            "steps:\n  - set: {id: a, values: {x: 1}}\n  - set: {id: b, values: {y: '${a.z}'}}",
            "step 'a' has no output 'z'",
        ),
        (
            "steps:\n  - set: {id: a, values: {x: '${b.y}'}}\n  - set: {id: b, values: {y: 1}}",
            "step 'b' is not an ancestor",
        ),
        ("steps:\n  - set: {id: a, values: {x: '${a.x}'}}", "cannot refer to itself"),
        ("steps:\n  - set: {id: a, values: {x: '${env.HOME}'}}", "only visible in `connections:`"),
        ("steps:\n  - set: {id: a, values: {x: '${context.secret}'}}", "context has no field"),
        ("steps:\n  - set: {id: a, values: {x: '${1 +}'}}", "invalid expression"),
        ("steps:\n  - set: {id: a, values: {x: '${().__class__}'}}", "invalid expression"),
        ("steps:\n  - set: {id: a, values: {x: 1}, depends_on: [zzz]}", "unknown step 'zzz'"),
    ],
)
def test_invalid_references_are_refused(source: str, expected: str) -> None:
    found = messages("flow: X\n" + source)

    assert any(expected in message for message in found), found


def test_cycles_are_refused_naming_the_cycle() -> None:
    source = """flow: Loop
mode: dag
steps:
  - set: {id: a, values: {x: "${c.z}"}}
  - set: {id: b, values: {y: "${a.x}"}}
  - set: {id: c, values: {z: "${b.y}"}}
"""
    (cycle,) = [message for message in messages(source) if message.startswith("cycle")]

    assert cycle in (
        "cycle: a -> b -> c -> a",
        "cycle: b -> c -> a -> b",
        "cycle: c -> a -> b -> c",
    )


def test_env_is_allowed_in_connections_only() -> None:
    definition = parse(
        "flow: X\nconnections: {cache: {type: redis, url: '${env.REDIS_URL}'}}\n"
        "steps: [{redis_get: {id: a, key: k, connection: cache}}]"
    )

    assert definition.connections["cache"].params["url"].render({"env": {"REDIS_URL": "u"}}) == "u"


def test_connection_of_the_wrong_type_is_refused() -> None:
    found = messages(
        "flow: X\nconnections: {cache: {type: redis, url: u}}\n"
        "steps: [{pg_query: {id: a, query: q, connection: cache}}]"
    )

    assert any("pg_query needs postgres" in message for message in found)


def test_handler_steps_may_be_referenced_later_and_wait_for_their_step() -> None:
    definition = parse(
        """flow: H
steps:
  - fail: {id: f, on_error: [{set: {id: h, values: {v: 1}}}]}
  - set: {id: after, values: {v: "${h.v}"}}
"""
    )

    assert definition.handlers == {"f": ("h",)}
    assert definition.dependencies["h"] == frozenset({"f"})
    assert definition.dependencies["after"] == frozenset({"f", "h"})


def test_dag_dependencies_come_from_references() -> None:
    definition = parse(
        """flow: D
mode: dag
steps:
  - set: {id: a, values: {x: 1}}
  - set: {id: b, values: {y: 2}}
  - set: {id: c, values: {z: "${a.x + b.y}"}}
"""
    )

    assert definition.dependencies == {
        "a": frozenset(),
        "b": frozenset(),
        "c": frozenset({"a", "b"}),
    }


@pytest.mark.parametrize("value", ["1", "1e999", "[a]", "true"])
def test_mapping_form_input_that_is_not_a_mapping_is_a_problem(value: str) -> None:
    found = problems_of(
        f"flow: X\ninputs: {{n: {value}}}\nsteps: [{{set: {{id: a, values: {{}}}}}}]"
    )

    assert [(problem.loc, problem.msg) for problem in found] == [
        (("inputs", "n"), "must be a mapping")
    ]


@pytest.mark.parametrize(
    "source",
    [
        '{"flow": "X\\u0000", "steps": [{"set": {"id": "a", "values": {}}}]}',
        '{"flow": "X", "steps": [{"set": {"id": "a", "values": {"\\ud800": 1}}}]}',
        'flow: "X\\0"\nsteps: [{set: {id: a, values: {}}}]',
    ],
)
def test_characters_no_store_can_keep_are_refused_with_their_place(source: str) -> None:
    (problem,) = problems_of(source)

    assert problem.type == "invalid_character"
    assert problem.line == 1


def steps_yaml(count: int, *, handlers: int = 0) -> str:
    lines = ["flow: Many", "steps:"]
    lines += [f"  - set: {{id: s{index}, values: {{v: {index}}}}}" for index in range(count)]
    if handlers:
        listed = ", ".join(f"{{log: {{id: h{index}, message: m}}}}" for index in range(handlers))
        lines.append(f"  - fail: {{id: f, on_error: [{listed}]}}")
    return "\n".join(lines) + "\n"


def test_a_definition_over_the_step_limit_is_refused_naming_the_limit_and_setting() -> None:
    parse_definition(steps_yaml(10), CATALOG, TYPES, limits=DefinitionLimits(max_steps=10))

    with pytest.raises(DefinitionError) as caught:
        parse_definition(steps_yaml(11), CATALOG, TYPES, limits=DefinitionLimits(max_steps=10))

    (problem,) = caught.value.problems
    assert problem.loc == ("steps",)
    assert problem.type == "too_many_steps"
    assert problem.msg == (
        "the flow has 11 steps (handlers included); at most 10 are allowed (setting MAX_STEPS)"
    )
    assert (problem.line, problem.column) == (2, 1)


def test_handlers_count_towards_the_step_limit() -> None:
    parse_definition(
        steps_yaml(5, handlers=4), CATALOG, TYPES, limits=DefinitionLimits(max_steps=10)
    )  # 5 + f + 4

    with pytest.raises(DefinitionError, match="the flow has 11 steps"):
        parse_definition(
            steps_yaml(5, handlers=5), CATALOG, TYPES, limits=DefinitionLimits(max_steps=10)
        )


def test_condition_graph_tasks_count_towards_the_step_limit() -> None:
    tasks = ", ".join(f'{{"name": "t{index}", "task": "log"}}' for index in range(4))
    graph = f'{{"id": "g", "start_task": "t0", "tasks": [{tasks}], "conditions": []}}'

    with pytest.raises(DefinitionError) as caught:
        parse_definition(graph, CATALOG, TYPES, limits=DefinitionLimits(max_steps=3))

    (problem,) = caught.value.problems
    assert (problem.loc, problem.type) == (("tasks",), "too_many_steps")


def test_the_default_step_limit_is_5000() -> None:
    parse_definition(steps_yaml(5000), CATALOG, TYPES)

    with pytest.raises(DefinitionError, match="at most 5,000 are allowed"):
        parse_definition(steps_yaml(5001), CATALOG, TYPES)


def test_a_mistake_repeated_everywhere_is_reported_a_hundred_times_and_counted() -> None:
    found = problems_of(steps_yaml(150).replace("values:", "valeus:"))

    assert len(found) == 101  # each of 150 steps has 2 problems
    assert found[0].msg == "set needs the parameter 'values'"
    assert found[1].msg.startswith("set has no parameter 'valeus'")
    assert (found[-1].loc, found[-1].type) == ((), "too_many_problems")
    assert found[-1].msg == "200 more problems are not listed (the first 100 are)"


def test_an_expression_repeated_by_yaml_aliases_is_compiled_once() -> None:
    # 472 bytes that expand to 40,000 placeholders: compiling each took 3 s of CPU.
    expression = "${1 + 2 * 3 + len([1, 2, 3]) + inputs.x}"
    source = f"""flow: Aliases
inputs: [{{name: x, type: integer}}]
steps:
  - set:
      id: a
      values:
        l0: &l0 {{a: "{expression}", b: "{expression}", c: "{expression}", d: "{expression}"}}
        l1: &l1 [*l0, *l0, *l0, *l0, *l0, *l0, *l0, *l0, *l0, *l0]
        l2: &l2 [*l1, *l1, *l1, *l1, *l1, *l1, *l1, *l1, *l1, *l1]
        l3: &l3 [*l2, *l2, *l2, *l2, *l2, *l2, *l2, *l2, *l2, *l2]
        l4: [*l3, *l3, *l3, *l3]
"""
    started = time.perf_counter()
    definition = parse(source)
    elapsed = time.perf_counter() - started

    rendered = definition.steps[0].arguments["values"].render({"inputs": {"x": 1}})
    assert rendered["l4"][3][9][9][9]["d"] == 11
    assert elapsed < 1.5


def test_a_condition_graph_task_may_have_any_number_of_routes_into_it() -> None:
    # Its condition was compiled from `t0.status == 'completed' or ...`: past ~150 routes the
    # text outgrew an expression's limit, and the error escaped as no definition problem.
    count = 300
    tasks = [{"name": f"t{index}", "task": "Anything"} for index in range(count)]
    graph = {
        "id": "Fan",
        "start_task": "t0",
        "tasks": [*tasks, {"name": "last", "task": "Anything"}],
        "conditions": [
            {"source_task": f"t{index}", "target_task_success": "last"} for index in range(count)
        ],
    }

    definition = parse(json.dumps(graph))

    condition = definition.step("last").condition
    assert condition is not None
    assert len(definition.dependencies["last"]) == count
    skipped = {f"t{index}": {"status": "skipped"} for index in range(count)}
    assert not condition.evaluate(skipped)
    assert condition.evaluate({**skipped, "t123": {"status": "completed"}})
    assert Reference("t299", ("status",)) in condition.references
