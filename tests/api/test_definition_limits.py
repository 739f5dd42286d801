"""Definitions the flow language refuses, over HTTP: past its limits, or splicing values into
SQL text; 422 saying why, and nothing stored."""

from __future__ import annotations

from pathlib import Path

from tests.api.support import JSON, YAML, api_settings, register, serve


def steps_yaml(count: int) -> str:
    lines = ["flow: Many", "steps:"]
    lines += [f"  - set: {{id: s{index}, values: {{v: {index}}}}}" for index in range(count)]
    return "\n".join(lines) + "\n"


async def test_more_steps_than_max_steps_is_422_naming_the_limit_and_the_setting(
    tmp_path: Path,
) -> None:
    settings = api_settings(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}", max_steps=3)
    async with serve(settings) as client:
        accepted = await client.post("/flows", content=steps_yaml(3), headers=YAML)
        refused = await client.post("/flows", content=steps_yaml(4), headers=YAML)
        checked = await client.post("/flows/validate", content=steps_yaml(4), headers=YAML)
        graph = {
            "id": "g",
            "start_task": "t0",
            "tasks": [{"name": f"t{index}", "task": "log"} for index in range(4)],
        }
        through_flow_run = await client.post("/flow/run", json={"flow": graph}, headers=JSON)

    assert accepted.status_code == 201
    assert refused.status_code == checked.status_code == 422
    assert refused.json() == {
        "detail": [
            {
                "loc": ["steps"],
                "msg": "the flow has 4 steps (handlers included); at most 3 are allowed "
                "(setting MAX_STEPS)",
                "type": "too_many_steps",
                "line": 2,
                "column": 1,
            }
        ]
    }
    assert checked.json() == refused.json()
    assert through_flow_run.status_code == 422
    assert through_flow_run.json()["detail"][0]["type"] == "too_many_steps"


async def test_a_value_spliced_into_sql_text_is_422_showing_the_params_form(
    tmp_path: Path,
) -> None:
    source = (
        "flow: Injection\nconnections: {db: {type: postgres, url: u}}\ninputs: {p: string}\n"
        "steps:\n  - pg_query: {id: q, connection: db, query: \"SELECT '${inputs.p}'\"}\n"
    )
    async with serve(api_settings(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")) as client:
        refused = await client.post("/flows", content=source, headers=YAML)
        stored = await client.get("/flows/Injection")

    assert refused.status_code == 422
    (problem,) = refused.json()["detail"]
    assert problem["loc"] == ["steps", 0, "pg_query", "query"]
    assert problem["type"] == "sql_placeholder"
    assert "$1" in problem["msg"]
    assert "params: [${inputs.id}]" in problem["msg"]
    assert stored.status_code == 404


async def test_a_timeout_past_max_step_timeout_seconds_is_422_at_its_place(
    tmp_path: Path,
) -> None:
    source = "flow: Slow\nsteps:\n  - log: {id: nap, message: hi, timeout: 1e9}\n"
    async with serve(api_settings(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")) as client:
        refused = await client.post("/flows", content=source, headers=YAML)
        checked = await client.post("/flows/validate", content=source, headers=YAML)
        stored = await client.get("/flows/Slow")

    assert refused.status_code == checked.status_code == 422
    assert refused.json() == {
        "detail": [
            {
                "loc": ["steps", 0, "log", "timeout"],
                "msg": "must be at most 86,400 seconds (setting MAX_STEP_TIMEOUT_SECONDS), "
                "not 1e+09",
                "type": "duration_too_long",
                "line": 3,
                "column": 33,
            }
        ]
    }
    assert checked.json() == refused.json()
    assert stored.status_code == 404


async def test_a_wait_for_timeout_past_max_durable_wait_seconds_is_422_at_its_place(
    tmp_path: Path,
) -> None:
    source = "flow: Late\nsteps:\n  - wait_for: {id: ok, signal: ok, timeout: 1e9}\n"
    async with serve(api_settings(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")) as client:
        refused = await client.post("/flows", content=source, headers=YAML)

    assert refused.status_code == 422
    (problem,) = refused.json()["detail"]
    assert problem["loc"] == ["steps", 0, "wait_for", "timeout"]
    assert problem["msg"] == (
        "must be at most 31,622,400 seconds (setting MAX_DURABLE_WAIT_SECONDS), not 1e+09"
    )


async def test_a_step_without_timeout_runs_at_most_max_step_timeout_seconds(
    tmp_path: Path,
) -> None:
    """A task that does not return fails its attempt: it holds a worker slot no longer. A
    sleep holds none, but waits at most MAX_DURABLE_WAIT_SECONDS: a longer one fails at
    once."""
    source = f"""flow: Stuck
steps:
  - task: WaitForMarker
    id: stuck
    inputs: {{directory: "{tmp_path}", marker: never}}
"""
    nap = "flow: Nap\nsteps:\n  - sleep: {id: nap, seconds: 7200}\n"
    settings = api_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'store.db'}",
        max_step_timeout_seconds=0.2,
        max_durable_wait_seconds=3600,
    )
    async with serve(settings) as client:
        await register(client, source)
        await register(client, nap)
        stuck = await client.post("/flows/Stuck/execute", json={"wait": 10})
        slept = await client.post("/flows/Nap/execute", json={"wait": 10})

    assert stuck.status_code == 200
    assert stuck.json()["status"] == "failed"
    assert stuck.json()["error"] == {
        "step": "stuck",
        "type": "TimeoutError",
        "message": "attempt exceeded 0.2s, the longest a step without `timeout` may run "
        "(setting MAX_STEP_TIMEOUT_SECONDS)",
    }
    assert slept.status_code == 200
    assert slept.json()["error"]["type"] == "WaitTooLongError"
    assert slept.json()["error"]["message"].endswith("MAX_DURABLE_WAIT_SECONDS allows 3600 seconds")
