"""The built-in PostgreSQL tasks, called the way the engine calls them, on a real database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

import asyncpg
import pytest

from app.connections.postgres import PostgresConnection
from app.domain.runs import RunStatus
from app.dsl.templates import compile_template
from app.engine.executor import FlowExecutor
from app.errors import DefinitionError, NonRetryableError
from app.tasks.builtins.postgres import registry
from app.tasks.context import TaskContext

Run = Callable[..., Awaitable[dict[str, Any]]]

SCHEMA = """
    CREATE TABLE users (
        id SERIAL PRIMARY KEY,
        email TEXT UNIQUE NOT NULL,
        name TEXT NOT NULL,
        active BOOLEAN NOT NULL DEFAULT true,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        last_login TIMESTAMP
    );
    INSERT INTO users (email, name, active) VALUES
        ('alice@example.com', 'Alice Smith', true),
        ('bob@example.com', 'Bob Johnson', true),
        ('charlie@example.com', 'Charlie Brown', false);
"""


@pytest.fixture
async def connection(postgres_url: str) -> AsyncIterator[Any]:
    """A pooled connection lent by the plugin, on a database holding three users."""
    plugin = PostgresConnection("db", {"url": postgres_url})
    await plugin.open()
    try:
        async with plugin.session() as connection:
            await connection.execute(SCHEMA)
            yield connection
    finally:
        await plugin.close()


@pytest.fixture
def run(connection: Any) -> Run:
    async def run_(task: str, **arguments: Any) -> dict[str, Any]:
        context = TaskContext(run_id="run-1", flow="Users", step_id=task)
        return await registry.get(task).invoke(arguments, context=context, connection=connection)

    return run_


async def user_names(connection: Any) -> list[str]:
    return [row["name"] for row in await connection.fetch("SELECT name FROM users ORDER BY id")]


async def test_pg_query_returns_rows_of_native_values(run: Run) -> None:
    outputs = await run(
        "pg_query",
        query="SELECT id, email, name, active, created_at, last_login FROM users WHERE id = $1",
        params=[1],
    )

    assert outputs["row_count"] == 1
    [row] = outputs["rows"]
    created_at = row.pop("created_at")
    assert isinstance(created_at, datetime)
    assert created_at.tzinfo is not None
    assert row == {
        "id": 1,
        "email": "alice@example.com",
        "name": "Alice Smith",
        "active": True,
        "last_login": None,
    }


async def test_datetime_parameters_and_values_round_trip(run: Run) -> None:
    seen = datetime(2024, 5, 17, 9, 30, 15)

    await run(
        "pg_execute", query="UPDATE users SET last_login = $1 WHERE id = $2", params=[seen, 2]
    )
    outputs = await run("pg_query", query="SELECT last_login FROM users WHERE id = $1", params=[2])

    assert outputs["rows"] == [{"last_login": seen}]


async def test_pg_query_without_params_or_matches(run: Run) -> None:
    counted = await run("pg_query", query="SELECT count(*) AS users FROM users")
    nothing = await run("pg_query", query="SELECT * FROM users WHERE id = $1", params=[99])

    assert counted == {"rows": [{"users": 3}], "row_count": 1}
    assert nothing == {"rows": [], "row_count": 0}


async def test_parameters_are_values_never_sql(run: Run, connection: Any) -> None:
    hostile = "1; DROP TABLE users"

    await run(
        "pg_execute",
        query="INSERT INTO users (email, name) VALUES ($1, $2)",
        params=["mallory@example.com", hostile],
    )
    found = await run("pg_query", query="SELECT id FROM users WHERE name = $1", params=[hostile])
    sneaky = await run(
        "pg_query", query="SELECT id FROM users WHERE email = $1", params=["x' OR '1'='1"]
    )

    assert found == {"rows": [{"id": 4}], "row_count": 1}
    assert sneaky["rows"] == []
    assert await user_names(connection) == ["Alice Smith", "Bob Johnson", "Charlie Brown", hostile]


async def test_a_query_holding_two_statements_is_refused(run: Run, connection: Any) -> None:
    with pytest.raises(asyncpg.PostgresSyntaxError, match="multiple commands"):
        await run("pg_execute", query="DELETE FROM users; DROP TABLE users")

    assert len(await user_names(connection)) == 3


@pytest.mark.parametrize(
    ("query", "params", "result", "row_count"),
    [
        ("UPDATE users SET active = $1 WHERE active", [False], "UPDATE 2", 2),
        (
            "INSERT INTO users (email, name) VALUES ($1, $2), ($3, $4)",
            ["d@example.com", "Dan", "e@example.com", "Eve"],
            "INSERT 0 2",
            2,
        ),
        ("DELETE FROM users WHERE id = $1", [99], "DELETE 0", 0),
        ("CREATE TABLE audit (id int)", None, "CREATE TABLE", 0),
    ],
)
async def test_pg_execute_reports_the_status_and_rows_touched(
    run: Run, query: str, params: list[Any] | None, result: str, row_count: int
) -> None:
    outputs = await run("pg_execute", query=query, params=params)

    assert outputs == {"result": result, "row_count": row_count}


async def test_pg_execute_changes_are_kept(run: Run, connection: Any) -> None:
    await run("pg_execute", query="UPDATE users SET name = $1 WHERE id = $2", params=["Al", 1])

    assert (await user_names(connection))[0] == "Al"


async def test_pg_transaction_returns_each_statements_outcome(run: Run) -> None:
    outputs = await run(
        "pg_transaction",
        queries=[
            {
                "query": "INSERT INTO users (email, name) VALUES ($1, $2) RETURNING id",
                "params": ["d@example.com", "Dan"],
            },
            {"query": "UPDATE users SET active = false WHERE id <> $1", "params": [4]},
            {"query": "SELECT name FROM users WHERE active"},
        ],
    )

    assert outputs == {
        "results": [
            {"rows": [{"id": 4}], "row_count": 1, "result": "INSERT 0 1"},
            {"rows": [], "row_count": 3, "result": "UPDATE 3"},
            {"rows": [{"name": "Dan"}], "row_count": 1, "result": "SELECT 1"},
        ]
    }


async def test_pg_transaction_is_all_or_nothing(run: Run, connection: Any) -> None:
    with pytest.raises(asyncpg.UniqueViolationError):
        await run(
            "pg_transaction",
            queries=[
                {"query": "UPDATE users SET name = $1 WHERE id = $2", "params": ["Al", 1]},
                {
                    "query": "INSERT INTO users (email, name) VALUES ($1, $2)",
                    "params": ["bob@example.com", "Bob again"],
                },
            ],
        )

    assert not connection.is_in_transaction()
    assert await user_names(connection) == ["Alice Smith", "Bob Johnson", "Charlie Brown"]


async def test_pg_transaction_checks_every_statement_before_running_any(
    run: Run, connection: Any
) -> None:
    with pytest.raises(NonRetryableError, match=r"'queries\[1\]\.query' must be a non-empty"):
        await run(
            "pg_transaction",
            queries=[{"query": "DELETE FROM users"}, {"query": " "}],
        )

    assert len(await user_names(connection)) == 3


async def test_database_errors_keep_their_asyncpg_type(run: Run) -> None:
    with pytest.raises(asyncpg.UndefinedTableError, match='"accounts" does not exist'):
        await run("pg_query", query="SELECT * FROM accounts")


@pytest.mark.parametrize(
    ("task", "arguments", "complaint"),
    [
        ("pg_query", {"query": ""}, "'query' must be a non-empty string, got str ''"),
        ("pg_query", {"query": 5}, "'query' must be a non-empty string, got int 5"),
        ("pg_query", {"query": "SELECT $1", "params": "1"}, "'params' must be a list"),
        ("pg_execute", {"query": None}, "'query' must be a non-empty string"),
        ("pg_execute", {"query": "SELECT $1", "params": {"a": 1}}, "'params' must be a list"),
        ("pg_transaction", {"queries": []}, "'queries' must be a non-empty list"),
        ("pg_transaction", {"queries": "SELECT 1"}, "'queries' must be a non-empty list"),
        ("pg_transaction", {"queries": ["SELECT 1"]}, r"queries\[0\] must be a mapping"),
        (
            "pg_transaction",
            {"queries": [{"query": "SELECT 1", "parms": [1]}]},
            r"queries\[0\] has unknown key\(s\) 'parms' \(allowed: 'query', 'params'\)",
        ),
        ("pg_transaction", {"queries": [{"params": [1]}]}, r"'queries\[0\]\.query' must be"),
        (
            "pg_transaction",
            {"queries": [{"query": "SELECT $1", "params": 1}]},
            r"'queries\[0\]\.params' must be a list",
        ),
    ],
)
async def test_badly_shaped_arguments_fail_without_retry(
    run: Run, task: str, arguments: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(NonRetryableError, match=complaint):
        await run(task, **arguments)


def test_specs_describe_parameters_outputs_and_connection() -> None:
    catalog = registry.catalog()

    assert set(catalog) == {"pg_query", "pg_execute", "pg_transaction"}
    for name, outputs in [
        ("pg_query", frozenset({"rows", "row_count"})),
        ("pg_execute", frozenset({"result", "row_count"})),
    ]:
        assert catalog[name].required_params == {"query"}
        assert catalog[name].optional_params == {"params"}
        assert catalog[name].outputs == outputs
    assert catalog["pg_transaction"].required_params == {"queries"}
    assert catalog["pg_transaction"].outputs == frozenset({"results"})
    for spec in catalog.values():
        assert spec.builtin
        assert spec.connection_types == {"postgres"}
        assert spec.connection_required
        assert spec.description


def test_the_sql_text_of_each_task_is_declared() -> None:
    catalog = registry.catalog()

    assert catalog["pg_query"].sql_text == {"query"}
    assert catalog["pg_execute"].sql_text == {"query"}
    assert catalog["pg_transaction"].sql_text == {"queries[].query"}


INJECTION = "x' UNION SELECT current_user --"


def injected_flow(step: str, outputs: str = "{}") -> str:
    return f"""flow: Injection
connections: {{db: {{type: postgres, url: "${{env.DB}}"}}}}
inputs: {{p: string}}
steps:
  - {step}
outputs: {outputs}
"""


@pytest.mark.parametrize(
    "step",
    [
        "pg_query: {id: q, connection: db, query: \"SELECT '${inputs.p}' AS v\"}",
        "pg_query: {id: q, connection: db, query: ${inputs.p}}",
        "pg_execute: {id: q, connection: db, query: \"SELECT '${inputs.p}'\"}",
        "pg_transaction: {id: q, connection: db, queries: [{query: \"SELECT '${inputs.p}'\"}]}",
        "pg_transaction: {id: q, connection: db, queries: ${inputs.p}}",
        "pg_transaction: {id: q, connection: db, queries: [${inputs.p}]}",
    ],
)
async def test_a_value_cannot_be_spliced_into_sql_text(postgres_url: str, step: str) -> None:
    executor = FlowExecutor(env={"DB": postgres_url})

    with pytest.raises(DefinitionError) as caught:
        await executor.execute_flow(injected_flow(step), {"p": INJECTION})

    (problem,) = caught.value.problems
    assert problem.type == "sql_placeholder"
    assert "$1" in problem.msg
    assert "`params`" in problem.msg


async def test_the_value_travels_as_a_parameter_and_stays_a_value(postgres_url: str) -> None:
    executor = FlowExecutor(env={"DB": postgres_url})
    step = "pg_query: {id: q, connection: db, query: 'SELECT $1::text AS v', params: [${inputs.p}]}"

    flow = injected_flow(step, outputs='{rows: "${q.rows}"}')

    outputs = await executor.execute_flow(flow, {"p": INJECTION})

    assert outputs == {"rows": [{"v": INJECTION}]}


async def test_a_spliced_query_built_in_code_fails_its_step_without_reaching_the_database(
    postgres_url: str,
) -> None:
    # Validation refuses such a definition; one built in code meets the engine's own check.
    executor = FlowExecutor(env={"DB": postgres_url})
    safe = "pg_query: {id: q, connection: db, query: 'SELECT 1', params: []}"
    definition = executor.load(injected_flow(safe))
    (step,) = definition.steps
    spliced = replace(
        step, arguments={**step.arguments, "query": compile_template("SELECT '${inputs.p}'")}
    )
    built = replace(definition, steps=(spliced,))

    result = await executor.run(built, {"p": INJECTION})

    assert result.status is RunStatus.FAILED
    assert result.error is not None
    assert (result.error.step, result.error.type) == ("q", "NonRetryableError")
    assert "`query` is SQL text" in result.error.message
