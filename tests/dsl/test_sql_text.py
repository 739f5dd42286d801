"""SQL text is written in the definition: `${...}` on a declared SQL-text path is refused."""

from __future__ import annotations

import json

import pytest

from app.connections.manager import ConnectionManager
from app.dsl.catalog import TaskSpec
from app.dsl.definitions import parse_definition
from app.dsl.models import FlowDefinition
from app.dsl.sql_text import spliced_sql, sql_path
from app.dsl.templates import compile_template
from app.errors import DefinitionError, Problem
from app.tasks.builtins import builtin_registry

CUSTOM = {
    "Report": TaskSpec(
        "Report",
        required_params=frozenset({"sql", "sections"}),
        sql_text=frozenset({"sql", "sections[].body[]"}),
    )
}
CATALOG = {**builtin_registry().catalog(), **CUSTOM}
TYPES = ConnectionManager().types
HEAD = """flow: Sql
connections: {db: {type: postgres, url: "postgresql://h/db"}}
inputs: {p: string, q: string}
steps:
"""


def parse(steps: str) -> FlowDefinition:
    return parse_definition(HEAD + steps, CATALOG, TYPES)


def problems_of(steps: str) -> list[Problem]:
    with pytest.raises(DefinitionError) as caught:
        parse(steps)
    return [problem for problem in caught.value.problems if problem.type == "sql_placeholder"]


@pytest.mark.parametrize(
    ("declared", "path"),
    [
        ("query", ("query",)),
        ("queries[].query", ("queries", "[]", "query")),
        ("matrix[][]", ("matrix", "[]", "[]")),
        ("a.b[].c", ("a", "b", "[]", "c")),
    ],
)
def test_sql_paths(declared: str, path: tuple[str, ...]) -> None:
    assert sql_path(declared) == path


def test_a_placeholder_in_a_query_is_refused_at_its_place_showing_the_params_form() -> None:
    (problem,) = problems_of(
        "  - pg_query:\n      id: q\n      connection: db\n      query: \"SELECT '${inputs.p}'\"\n"
    )

    assert problem.loc == ("steps", 0, "pg_query", "query")
    assert (problem.line, problem.column) == (8, 7)
    assert problem.msg == (
        "`query` is SQL text: `${...}` would splice a value into the SQL. Write $1, $2... in "
        'it and pass the values in `params`, e.g. `query: "SELECT name FROM users WHERE id = '
        '$1"` with `params: [${inputs.id}]`'
    )


@pytest.mark.parametrize(
    ("step", "loc", "is_text"),
    [
        ("pg_execute: {id: q, connection: db, query: ${inputs.q}}", ("query",), True),
        ("pg_query: {id: q, connection: db, query: 'a ${inputs.p} b'}", ("query",), True),
        (
            "pg_transaction: {id: q, connection: db, queries: [{query: 'x'}, {query: '${1}'}]}",
            ("queries", 1, "query"),
            True,
        ),
        (
            "pg_transaction: {id: q, connection: db, queries: ['${inputs.q}']}",
            ("queries", 0),
            False,
        ),
        ("pg_transaction: {id: q, connection: db, queries: ${inputs.q}}", ("queries",), False),
    ],
)
def test_every_way_a_placeholder_makes_sql_text_is_refused(
    step: str, loc: tuple[str | int, ...], is_text: bool
) -> None:
    (problem,) = problems_of(f"  - {step}\n")

    task = step.split(":", maxsplit=1)[0]
    assert problem.loc == ("steps", 0, task, *loc)
    assert ("is SQL text" if is_text else "holds SQL text") in problem.msg


def test_values_in_params_an_escaped_dollar_brace_and_other_fields_are_fine() -> None:
    definition = parse(
        "  - pg_transaction:\n"
        "      id: q\n"
        "      connection: db\n"
        "      queries:\n"
        "        - {query: \"SELECT $1, '$${not a placeholder}'\", params: [${inputs.p}]}\n"
        "        - query: INSERT INTO t VALUES ($1)\n"
        "          params: ['${inputs.p}-${inputs.q}']\n"
    )

    queries = definition.steps[0].arguments["queries"].render({"inputs": {"p": "a", "q": "b"}})
    assert queries[0]["query"] == "SELECT $1, '${not a placeholder}'"
    assert queries[1]["params"] == ["a-b"]


def test_a_custom_task_declares_its_own_sql_text() -> None:
    found = problems_of(
        "  - task: Report\n"
        "    id: r\n"
        "    inputs:\n"
        "      sql: SELECT 1\n"
        "      sections: [{title: '${inputs.p}', body: ['SELECT 2', 'SELECT ${inputs.q}']}]\n"
    )

    assert [problem.loc for problem in found] == [("steps", 0, "inputs", "sections", 0, "body", 1)]


def test_condition_graph_tasks_are_checked_too() -> None:
    graph = {
        "id": "g",
        "start_task": "q",
        "tasks": [{"name": "q", "task": "pg_query", "inputs": {"query": "SELECT ${inputs.p}"}}],
    }

    with pytest.raises(DefinitionError) as caught:
        parse_definition(json.dumps(graph), CATALOG, TYPES)

    found = [problem for problem in caught.value.problems if problem.type == "sql_placeholder"]
    assert [problem.loc for problem in found] == [("tasks", 0, "inputs", "query")]


@pytest.mark.parametrize(
    ("value", "spliced"),
    [
        ({"sql": "SELECT 1", "sections": [{"body": ["x"]}]}, False),
        ({"sql": "SELECT 1", "sections": [{"title": "${inputs.p}", "body": ["x"]}]}, False),
        ({"sql": "SELECT ${inputs.p}", "sections": []}, True),
        ({"sql": "SELECT 1", "sections": [{"body": ["x", "${inputs.p}"]}]}, True),
        ({"sql": "SELECT 1", "sections": [{"body": "${inputs.p}"}]}, True),
        ({"sql": "SELECT 1", "sections": "${inputs.p}"}, True),
    ],
)
def test_the_engine_checks_compiled_arguments_the_same_way(
    value: dict[str, object], spliced: bool
) -> None:
    arguments = {name: compile_template(item) for name, item in value.items()}

    problem = spliced_sql(arguments, CUSTOM["Report"].sql_text)

    assert (problem is not None) == spliced
