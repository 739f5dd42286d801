"""Definitions the flow language refuses, over HTTP: past its limits, or splicing values into
SQL text; 422 saying why, and nothing stored."""

from __future__ import annotations

from pathlib import Path

from tests.api.support import JSON, YAML, api_settings, serve


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
