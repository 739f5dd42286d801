"""Registering, validating, reading and deleting flow definitions over HTTP."""

from __future__ import annotations

import gc
import json
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from app.schemas.flows import ValidationResult
from tests.api.flows import FAILING_YAML, GREET_JSON, GREET_YAML, as_json
from tests.api.support import JSON, YAML, api_settings, register, serve
from tests.loop import watch_loop


async def test_a_yaml_definition_is_registered_as_version_1(client: httpx.AsyncClient) -> None:
    response = await client.post("/flows", content=GREET_YAML, headers=YAML)

    assert response.status_code == 201
    answer = response.json()
    assert answer["name"] == "Greet"
    assert answer["version"] == 1
    assert len(answer["checksum"]) == 64
    assert datetime.fromisoformat(answer["created_at"]).utcoffset() is not None


async def test_a_json_definition_is_registered(client: httpx.AsyncClient) -> None:
    response = await client.post("/flows", content=as_json(GREET_JSON), headers=JSON)

    assert response.status_code == 201
    assert response.json()["name"] == "GreetJson"
    stored = (await client.get("/flows/GreetJson")).json()
    assert stored["definition"] == GREET_JSON


async def test_each_yaml_content_type_is_accepted(client: httpx.AsyncClient) -> None:
    for content_type in ("application/yaml", "text/yaml", "application/x-yaml; charset=utf-8"):
        response = await client.post(
            "/flows", content=GREET_YAML, headers={"content-type": content_type}
        )

        assert response.status_code in (200, 201), (content_type, response.text)


async def test_an_unchanged_body_answers_200_with_the_current_version(
    client: httpx.AsyncClient,
) -> None:
    first = await register(client, GREET_YAML)

    again = await client.post("/flows", content=GREET_YAML, headers=YAML)

    assert again.status_code == 200
    assert again.json() == first
    versions = (await client.get("/flows/Greet/versions")).json()
    assert [version["version"] for version in versions] == [1]


async def test_a_changed_body_makes_version_2_and_both_stay_readable(
    client: httpx.AsyncClient,
) -> None:
    first = await register(client, GREET_YAML)
    changed = GREET_YAML.replace("description: Say hello", "description: Say hello twice")

    response = await client.post("/flows", content=changed, headers=YAML)

    assert response.status_code == 201
    assert response.json()["version"] == 2
    versions = (await client.get("/flows/Greet/versions")).json()
    assert [(v["version"], v["checksum"]) for v in versions] == [
        (1, first["checksum"]),
        (2, response.json()["checksum"]),
    ]
    latest = (await client.get("/flows/Greet")).json()
    assert (latest["version"], latest["description"], latest["source"]) == (
        2,
        "Say hello twice",
        changed,
    )
    old = (await client.get("/flows/Greet/versions/1")).json()
    assert (old["version"], old["description"], old["source"]) == (1, "Say hello", GREET_YAML)
    assert old["definition"]["flow"] == "Greet"


async def test_the_flow_list_shows_each_flows_latest_version(client: httpx.AsyncClient) -> None:
    await register(client, GREET_YAML)
    await register(client, GREET_YAML.replace("Say hello", "Say hi"))
    await register(client, FAILING_YAML)

    flows = (await client.get("/flows")).json()

    assert sorted((flow["name"], flow["version"], flow["description"]) for flow in flows) == [
        ("Failing", 1, ""),
        ("Greet", 2, "Say hi"),
    ]
    assert all(
        set(flow) == {"name", "version", "description", "checksum", "created_at", "owner", "public"}
        for flow in flows
    )
    assert {(flow["owner"], flow["public"]) for flow in flows} == {("admin", False)}


async def test_put_registers_under_the_name_of_the_path(client: httpx.AsyncClient) -> None:
    created = await client.put("/flows/Greet", content=GREET_YAML, headers=YAML)
    unchanged = await client.put("/flows/Greet", content=GREET_YAML, headers=YAML)

    assert (created.status_code, created.json()["version"]) == (201, 1)
    assert (unchanged.status_code, unchanged.json()["version"]) == (200, 1)


async def test_put_refuses_a_definition_named_otherwise(client: httpx.AsyncClient) -> None:
    response = await client.put("/flows/Other", content=GREET_YAML, headers=YAML)

    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["flow"]
    assert "Other" in problem["msg"]
    assert (await client.get("/flows")).json() == []


async def test_unknown_flows_and_versions_are_404(client: httpx.AsyncClient) -> None:
    await register(client, GREET_YAML)

    for path in ("/flows/Nope", "/flows/Nope/versions", "/flows/Greet/versions/2"):
        response = await client.get(path)

        assert response.status_code == 404, path
        assert isinstance(response.json()["detail"], str)
    assert (await client.delete("/flows/Nope")).status_code == 404


async def test_delete_removes_the_flow_its_versions_and_its_runs(
    client: httpx.AsyncClient,
) -> None:
    await register(client, GREET_YAML)
    await register(client, GREET_YAML.replace("Say hello", "Say hi"))
    run = (await client.post("/flows/Greet/execute", json={"inputs": {"name": "Ada"}})).json()
    await register(client, FAILING_YAML)

    response = await client.delete("/flows/Greet")

    assert response.status_code == 204
    assert response.content == b""
    assert (await client.get("/flows/Greet")).status_code == 404
    assert (await client.get("/flows/Greet/versions/1")).status_code == 404
    assert (await client.get(f"/runs/{run['run_id']}")).status_code == 404
    assert (await client.get("/runs", params={"flow": "Greet"})).json()["items"] == []
    assert [flow["name"] for flow in (await client.get("/flows")).json()] == ["Failing"]


async def test_validate_lists_steps_and_edges_without_saving(client: httpx.AsyncClient) -> None:
    response = await client.post("/flows/validate", content=GREET_YAML, headers=YAML)

    assert response.status_code == 200
    assert response.json() == {
        "valid": True,
        "name": "Greet",
        "steps": [
            {"id": "greet", "task": "set", "depends_on": [], "handler_of": None},
            {"id": "shout", "task": "set", "depends_on": ["greet"], "handler_of": None},
        ],
        "edges": [{"from": "greet", "to": "shout"}],
    }
    assert (await client.get("/flows")).json() == []


async def test_validate_answers_handlers_and_dag_edges_as_its_model_says(
    client: httpx.AsyncClient,
) -> None:
    source = """flow: Handled
mode: dag
steps:
  - set: {id: a, values: {v: 1}}
  - set: {id: b, values: {v: 2}}
  - set:
      id: c
      values: {v: "${a.v + b.v}"}
      on_error: [{log: {id: told, message: "${context.last_error.message}"}}]
"""
    response = await client.post("/flows/validate", content=source, headers=YAML)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert ValidationResult.model_validate_json(response.content) == ValidationResult(
        name="Handled",
        steps=[
            {"id": "a", "task": "set", "depends_on": [], "handler_of": None},
            {"id": "b", "task": "set", "depends_on": [], "handler_of": None},
            {"id": "c", "task": "set", "depends_on": ["a", "b"], "handler_of": None},
            {"id": "told", "task": "log", "depends_on": ["c"], "handler_of": "c"},
        ],
        edges=[{"from": "a", "to": "c"}, {"from": "b", "to": "c"}, {"from": "c", "to": "told"}],
    )


def chain(count: int) -> str:
    lines = ["flow: Chain", "steps:", "  - set: {id: s0, values: {v: 0}}"]
    lines += [
        f'  - set: {{id: s{index}, values: {{v: "${{s{index - 1}.v + 1}}"}}}}'
        for index in range(1, count)
    ]
    return "\n".join(lines) + "\n"


async def test_validating_5000_steps_leaves_the_event_loop_free(tmp_path: Path) -> None:
    """The definition is parsed and its report (every step and edge) built in a thread; the
    answer is written from the report without a model per step and edge. What is left on
    the loop is a few milliseconds of its own work (it was 30-40 ms, plus the collector's
    passes over the 10,000 models, 50-110 ms in all)."""
    async with serve(api_settings(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")) as client:
        await client.post("/flows/validate", content=chain(3), headers=YAML)  # warmed up
        # The collector's passes hold every thread, wherever they run: the benchmark
        # (bench_validation) measures them with /health; here, only the loop's own work.
        gc.disable()
        try:
            watched = await watch_loop(
                client.post("/flows/validate", content=chain(5000), headers=YAML)
            )
        finally:
            gc.enable()

    assert watched.result.status_code == 200
    answer = watched.result.json()
    assert (len(answer["steps"]), len(answer["edges"])) == (5000, 4999)
    assert watched.elapsed > 0.15  # enough work that doing it on the loop would show
    assert watched.longest_busy < 0.02


async def test_validate_reports_problems_with_line_and_column(client: httpx.AsyncClient) -> None:
    broken = GREET_YAML.replace("id: shout", "id: 2shout")

    response = await client.post("/flows/validate", content=broken, headers=YAML)

    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["steps", 1, "set", "id"]
    assert (problem["line"], problem["column"]) == (11, 7)  # the `id` key
    assert problem["type"]
    assert problem["msg"]


async def test_malformed_yaml_is_422_with_its_position(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/flows", content="flow: Broken\nsteps: [\n  - set: {id: a\n", headers=YAML
    )

    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["type"] == "yaml_syntax"
    assert problem["line"] >= 3
    assert problem["column"] >= 1
    assert (await client.get("/flows")).json() == []


async def test_malformed_json_definition_is_422_with_its_position(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/flows", content=b'{"flow": "Broken",\n "steps": [}', headers=JSON
    )

    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["type"] == "json_syntax"
    assert problem["line"] == 2
    assert (await client.get("/flows")).json() == []


DEFINITION_ROUTES = [("POST", "/flows"), ("PUT", "/flows/Greet"), ("POST", "/flows/validate")]
# What a page on another site can make a browser POST without asking the service first.
FORM_TYPES = ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]


@pytest.mark.parametrize(("method", "path"), DEFINITION_ROUTES)
async def test_a_definition_in_another_content_type_is_415(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    for content_type in FORM_TYPES:
        response = await client.request(
            method, path, content=GREET_YAML, headers={"content-type": content_type}
        )

        assert response.status_code == 415, content_type
        detail = response.json()["detail"]
        assert "application/yaml" in detail
        assert content_type.split(";")[0] in detail
    assert (await client.get("/flows")).json() == []


@pytest.mark.parametrize(("method", "path"), DEFINITION_ROUTES)
async def test_a_definition_without_content_type_is_415(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    for source in (GREET_YAML, json.dumps(GREET_JSON), ""):
        response = await client.request(method, path, content=source)

        assert response.status_code == 415, source[:20]
        assert "Content-Type header is missing" in response.json()["detail"]
    assert (await client.get("/flows")).json() == []
