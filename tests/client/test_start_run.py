"""Starting runs in the application's own transaction (`app.client`, `flow_manager.start_run`):
the run exists if and only if the transaction commits, and then the service runs it as one
started by `POST /flows/{name}/runs`."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from app.client import start_run, start_run_sync, start_runs
from app.errors import (
    InputValidationError,
    NotStartableFromSqlError,
    RequestError,
    UnknownFlowError,
    UnknownUserError,
    UnknownVersionError,
)
from app.store.notifications import RUNS_QUEUED
from tests.api.flows import GREET_YAML
from tests.api.support import add_user, admin_of, auth_settings, poll_run, register, serve

KEYED_YAML = """\
flow: Keyed
inputs:
  tenant: {type: string, required: true}
  size: {type: number, default: 2.5}
  org: {type: object, default: {id: 7}}
concurrency: {limit: 1, key: "tenant-${inputs.tenant}/${inputs.size}/${inputs.org.id}"}
steps:
  - set: {id: echo, values: {tenant: "${inputs.tenant}"}}
outputs:
  tenant: ${echo.tenant}
"""
LIMITED_YAML = """\
flow: Limited
concurrency: {limit: 2}
steps:
  - set: {id: one, values: {n: 1}}
"""
COMPUTED_KEY_YAML = """\
flow: Computed
inputs:
  tenant: {type: string, required: true}
concurrency: {limit: 1, key: "${lower(inputs.tenant)}"}
steps:
  - set: {id: one, values: {n: 1}}
"""
# What a run row holds from its creation on, whoever created it.
CREATED_COLUMNS = (
    "flow_name, definition_id, inputs, idempotency_key, created_by, traceparent, "
    "forked_from, parent_run_id, parent_step_id, depth, priority, concurrency_key, "
    "concurrency_limit"
)
VOLATILE = {"run_id", "created_at", "started_at", "finished_at", "steps"}
VOLATILE_STEP = {"started_at", "finished_at", "duration_ms"}


async def runs_of(connection: asyncpg.Connection, flow: str) -> list[str]:
    rows = await connection.fetch("SELECT id FROM flow_runs WHERE flow_name = $1", flow)
    return [row["id"] for row in rows]


def comparable(run: dict[str, Any]) -> dict[str, Any]:
    """A run as GET /runs/{id} answers it, without what differs from one run to the next."""
    kept = {key: value for key, value in run.items() if key not in VOLATILE}
    kept["steps"] = [
        {key: value for key, value in step.items() if key not in VOLATILE_STEP}
        for step in run["steps"]
    ]
    return kept


async def test_a_run_started_in_a_committed_transaction_runs_to_its_outputs(
    client: httpx.AsyncClient, connection: asyncpg.Connection
) -> None:
    await register(client, GREET_YAML)

    async with connection.transaction():
        run_id = await start_run(connection, "Greet", {"name": "Ada", "times": "2"})
        queued = await connection.fetchrow(
            "SELECT status, remaining_steps FROM flow_runs WHERE id = $1", run_id
        )

    assert dict(queued) == {"status": "queued", "remaining_steps": 2}
    finished = await poll_run(client, run_id)
    assert finished["status"] == "completed"
    assert finished["inputs"] == {"name": "Ada", "times": 2}
    assert finished["outputs"] == {"text": "Hello, Ada!", "times": 2}


async def test_a_rolled_back_transaction_leaves_no_run(
    client: httpx.AsyncClient, connection: asyncpg.Connection
) -> None:
    await register(client, GREET_YAML)

    transaction = connection.transaction()
    await transaction.start()
    run_id = await start_run(connection, "Greet", {"name": "Ada"})
    await transaction.rollback()

    assert await runs_of(connection, "Greet") == []
    assert (await client.get(f"/runs/{run_id}")).status_code == 404
    assert await connection.fetchval("SELECT count(*) FROM task_runs") == 0


async def test_a_run_started_from_sql_reads_as_one_started_through_the_api(
    client: httpx.AsyncClient, connection: asyncpg.Connection
) -> None:
    await register(client, GREET_YAML)
    inputs = {"name": "Ada", "times": 3}

    from_sql = await start_run(connection, "Greet", inputs)
    answer = await client.post("/flows/Greet/runs", json={"inputs": inputs})
    assert answer.status_code == 202, answer.text
    from_api = answer.json()["run_id"]

    rows = [
        dict(await connection.fetchrow(f"SELECT {CREATED_COLUMNS} FROM flow_runs WHERE id = $1", i))
        for i in (from_sql, from_api)
    ]
    assert rows[0] == rows[1]
    assert rows[0]["created_by"] is not None  # the local admin, as the API's caller here
    tasks = "SELECT step_id, task_index FROM task_runs WHERE run_id = $1 ORDER BY id"
    assert [tuple(t) for t in await connection.fetch(tasks, from_sql)] == [
        tuple(t) for t in await connection.fetch(tasks, from_api)
    ]
    sql_run, api_run = [await poll_run(client, i) for i in (from_sql, from_api)]
    assert comparable(sql_run) == comparable(api_run)
    assert sql_run["created_by"] == "admin"


async def test_bad_inputs_are_refused_with_every_problem_and_abort_the_transaction(
    client: httpx.AsyncClient, connection: asyncpg.Connection
) -> None:
    await register(client, GREET_YAML)

    transaction = connection.transaction()
    await transaction.start()
    await connection.execute("SELECT 1")  # the application's own work
    with pytest.raises(InputValidationError) as refused:
        await start_run(connection, "Greet", {"times": "many", "colour": "red"})
    with pytest.raises(asyncpg.InFailedSQLTransactionError):
        await connection.execute("SELECT 1")  # the transaction is aborted: it can only end
    await transaction.rollback()

    assert [(p.loc, p.msg, p.type) for p in refused.value.problems] == [
        (("inputs", "name"), "missing required input 'name'", "missing"),
        (("inputs", "times"), "input 'times' must be an integer, got 'many'", "type_error"),
        (("inputs", "colour"), "unknown input 'colour' (inputs: name, times)", "extra"),
    ]
    assert await runs_of(connection, "Greet") == []


async def test_the_refusal_in_sql_names_the_input_and_what_was_expected(
    client: httpx.AsyncClient, connection: asyncpg.Connection
) -> None:
    await register(client, GREET_YAML)

    with pytest.raises(asyncpg.PostgresError) as refused:
        await connection.fetchval("""SELECT flow_manager.start_run('Greet', '{"name": ["Ada"]}')""")

    assert refused.value.sqlstate == "FM010"
    assert refused.value.as_dict()["message"] == (
        "The run's inputs do not match the flow's declared inputs: "
        "inputs.name: input 'name' must be a string, got ['Ada']"
    )


async def test_the_sql_function_starts_a_run_on_its_own(
    client: httpx.AsyncClient, connection: asyncpg.Connection
) -> None:
    await register(client, GREET_YAML)

    run_id = await connection.fetchval(
        """SELECT flow_manager.start_run('Greet', '{"name": "SQL"}'::jsonb)"""
    )
    by_name = await connection.fetchval(
        "SELECT flow_manager.start_run(flow => 'Greet', inputs => '{\"name\": \"Named\"}', "
        "priority => 5)"
    )

    batch = await connection.fetchval(
        """SELECT flow_manager.start_runs('Greet', '[{"name": "One"}, {"name": "Two"}]')"""
    )

    assert (await poll_run(client, run_id))["outputs"] == {"text": "Hello, SQL!", "times": 1}
    for name, batch_run in zip(["One", "Two"], batch, strict=True):
        assert (await poll_run(client, batch_run))["outputs"]["text"] == f"Hello, {name}!"
    named = await poll_run(client, by_name)
    assert (named["outputs"]["text"], named["priority"]) == ("Hello, Named!", 5)


async def test_unknown_flows_versions_and_users_are_refused(
    client: httpx.AsyncClient, connection: asyncpg.Connection
) -> None:
    await register(client, GREET_YAML)

    with pytest.raises(UnknownFlowError, match="no flow is registered under the name 'Nope'"):
        await start_run(connection, "Nope", {})
    with pytest.raises(UnknownVersionError, match="flow 'Greet' has no version 7"):
        await start_run(connection, "Greet", {"name": "x"}, version=7)
    with pytest.raises(UnknownUserError, match="no user is named 'nobody'"):
        await start_run(connection, "Greet", {"name": "x"}, started_by="nobody")
    with pytest.raises(RequestError, match="priority must be an integer from -1000 to 1000"):
        await start_run(connection, "Greet", {"name": "x"}, priority=5000)
    assert await runs_of(connection, "Greet") == []


async def test_an_idempotency_key_answers_the_first_run_here_and_through_the_api(
    client: httpx.AsyncClient, connection: asyncpg.Connection
) -> None:
    await register(client, GREET_YAML)

    first = await start_run(connection, "Greet", {"name": "Ada"}, idempotency_key="order-42")
    again = await start_run(connection, "Greet", {"name": "Bob"}, idempotency_key="order-42")
    over_http = await client.post(
        "/flows/Greet/runs",
        json={"inputs": {"name": "Cy"}},
        headers={"Idempotency-Key": "order-42"},
    )

    assert again == first
    assert over_http.status_code == 200, over_http.text
    assert over_http.json()["run_id"] == first
    assert await runs_of(connection, "Greet") == [first]


async def test_two_transactions_racing_on_one_key_make_one_run(
    client: httpx.AsyncClient, connection: asyncpg.Connection, dsn: str
) -> None:
    await register(client, GREET_YAML)
    other = await asyncpg.connect(dsn)
    try:
        first = connection.transaction()
        await first.start()
        mine = await start_run(connection, "Greet", {"name": "A"}, idempotency_key="k")
        # The second waits on the first's uncommitted key, then answers its run.
        theirs = asyncio.ensure_future(
            start_run(other, "Greet", {"name": "B"}, idempotency_key="k")
        )
        deadline = time.monotonic() + 10
        while not await connection.fetchval(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND pid = $1", other.get_server_pid()
        ):
            assert time.monotonic() < deadline, "the second call never waited for the first"
            await asyncio.sleep(0.01)
        await first.commit()

        assert await asyncio.wait_for(theirs, 10) == mine
    finally:
        await other.close()
    assert await runs_of(connection, "Greet") == [mine]


async def test_workers_are_notified_only_when_the_transaction_commits(
    client: httpx.AsyncClient, connection: asyncpg.Connection, dsn: str
) -> None:
    await register(client, GREET_YAML)
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(dsn)
    await listener.add_listener(RUNS_QUEUED, lambda *args: heard.put_nowait(args[3]))
    try:
        rolled_back = connection.transaction()
        await rolled_back.start()
        await start_run(connection, "Greet", {"name": "Ada"})
        await rolled_back.rollback()
        # Notifications arrive in commit order: this one comes after any the rollback sent.
        await connection.execute(f"SELECT pg_notify('{RUNS_QUEUED}', 'marker')")
        assert await asyncio.wait_for(heard.get(), 10) == "marker"

        async with connection.transaction():
            await start_run(connection, "Greet", {"name": "Ada"})
            await start_run(connection, "Greet", {"name": "Bob"})
        assert await asyncio.wait_for(heard.get(), 10) == ""  # one for the transaction
        await connection.execute(f"SELECT pg_notify('{RUNS_QUEUED}', 'marker')")
        assert await asyncio.wait_for(heard.get(), 10) == "marker"
    finally:
        await listener.close()


async def test_many_runs_in_one_call_start_in_order_or_not_at_all(
    client: httpx.AsyncClient, connection: asyncpg.Connection
) -> None:
    await register(client, GREET_YAML)
    names = ["Ada", "Grace", "Edsger"]

    run_ids = await start_runs(connection, "Greet", [{"name": name} for name in names])
    with pytest.raises(InputValidationError) as refused:
        await start_runs(connection, "Greet", [{"name": "Ok"}, {"times": 2}])

    for name, run_id in zip(names, run_ids, strict=True):
        assert (await poll_run(client, run_id))["outputs"]["text"] == f"Hello, {name}!"
    (problem,) = refused.value.problems
    assert (problem.loc, problem.msg) == (
        ("runs", 1, "inputs", "name"),
        "missing required input 'name'",
    )
    assert sorted(await runs_of(connection, "Greet")) == sorted(run_ids)


async def test_concurrency_keys_are_rendered_as_the_service_renders_them(
    client: httpx.AsyncClient, connection: asyncpg.Connection
) -> None:
    await register(client, KEYED_YAML)
    await register(client, LIMITED_YAML)

    keyed = await start_run(connection, "Keyed", {"tenant": "acme"})
    over_http = await client.post("/flows/Keyed/runs", json={"inputs": {"tenant": "acme"}})
    limited = await start_run(connection, "Limited")

    sql_run, api_run = [await poll_run(client, i) for i in (keyed, over_http.json()["run_id"])]
    assert (sql_run["concurrency_key"], sql_run["concurrency_limit"]) == ("tenant-acme/2.5/7", 1)
    assert comparable(sql_run) == comparable(api_run)
    limited_run = await poll_run(client, limited)
    assert (limited_run["concurrency_key"], limited_run["concurrency_limit"]) == ("Limited", 2)
    keys = await connection.fetch("SELECT name FROM concurrency_keys ORDER BY name")
    assert [row["name"] for row in keys] == ["Keyed:tenant-acme/2.5/7", "Limited"]


async def test_a_key_sql_cannot_render_is_refused_clearly(
    client: httpx.AsyncClient, connection: asyncpg.Connection
) -> None:
    await register(client, COMPUTED_KEY_YAML)

    with pytest.raises(NotStartableFromSqlError) as refused:
        await start_run(connection, "Computed", {"tenant": "ACME"})

    assert "concurrency.key ${lower(inputs.tenant)} computes a value" in refused.value.message
    assert "POST /flows/Computed/runs" in refused.value.message
    assert await runs_of(connection, "Computed") == []


async def test_a_version_without_a_start_description_is_refused_clearly(
    client: httpx.AsyncClient, connection: asyncpg.Connection
) -> None:
    await register(client, GREET_YAML)
    await connection.execute("UPDATE flow_definitions SET start_spec = NULL")

    with pytest.raises(NotStartableFromSqlError, match="register the flow again"):
        await start_run(connection, "Greet", {"name": "Ada"})


async def test_runs_are_started_as_the_user_named(database_url: str, dsn: str) -> None:
    async with serve(auth_settings(database_url)) as client:
        alice = await add_user(await admin_of(client), "alice")
        await alice.register(GREET_YAML)
        connection = await asyncpg.connect(dsn)
        try:
            run_id = await start_run(connection, "Greet", {"name": "A"}, started_by="alice")
        finally:
            await connection.close()

        run = await poll_run(client, run_id, headers=alice.auth)

    assert run["created_by"] == "alice"


async def test_sqlalchemy_connections_and_sessions_start_runs_too(
    client: httpx.AsyncClient, database_url: str, connection: asyncpg.Connection
) -> None:
    await register(client, GREET_YAML)
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as sa_connection:
            in_connection = await start_run(sa_connection, "Greet", {"name": "Conn"})
            in_sync = await sa_connection.run_sync(
                lambda sync: start_run_sync(sync, "Greet", {"name": "Sync"})
            )
        async with AsyncSession(engine) as session, session.begin():
            in_session = await start_run(session, "Greet", {"name": "Session"})
        async with engine.begin() as sa_connection:
            await sa_connection.execute(text("SELECT 1"))
            with pytest.raises(InputValidationError, match="missing required input 'name'"):
                await start_run(sa_connection, "Greet", {})
            await sa_connection.rollback()
    finally:
        await engine.dispose()

    for name, run_id in [("Conn", in_connection), ("Sync", in_sync), ("Session", in_session)]:
        assert (await poll_run(client, run_id))["outputs"]["text"] == f"Hello, {name}!"
    assert len(await runs_of(connection, "Greet")) == 3
