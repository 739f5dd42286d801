"""The interactive documentation: every route summarised, the request examples shown."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter

from app.api.operation_ids import duplicate_operation_ids
from app.schemas.flow_manager import SAMPLE_REQUEST
from tests.api.support import api_settings, serve

ROUTES = {
    ("post", "/flows"),
    ("post", "/flows/validate"),
    ("get", "/flows"),
    ("get", "/flows/{name}"),
    ("put", "/flows/{name}"),
    ("delete", "/flows/{name}"),
    ("get", "/flows/{name}/versions"),
    ("get", "/flows/{name}/versions/{version}"),
    ("post", "/flows/{name}/execute"),
    ("post", "/flows/{name}/runs"),
    ("get", "/runs"),
    ("get", "/runs/{run_id}"),
    ("post", "/runs/{run_id}/cancel"),
    ("post", "/runs/{run_id}/retry"),
    ("post", "/runs/{run_id}/fork"),
    ("get", "/runs/{run_id}/diff/{other_id}"),
    ("get", "/runs/{run_id}/inputs"),
    ("get", "/runs/{run_id}/outputs"),
    ("get", "/runs/{run_id}/fixture"),
    ("get", "/runs/{run_id}/steps/{step_id}/outputs"),
    ("get", "/runs/{run_id}/steps/{step_id}/logs"),
    ("post", "/flow/run"),
    ("get", "/health"),
    ("get", "/ready"),
    ("get", "/connections"),
    ("get", "/metrics"),
}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The documentation does not depend on the store: SQLite only."""
    async with serve(api_settings(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")) as client:
        yield client


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        resolved: dict[str, Any] = spec["components"]["schemas"][name]
        return resolved
    return schema


async def test_the_docs_page_and_the_schema_are_served(client: httpx.AsyncClient) -> None:
    docs = await client.get("/docs")
    spec = await client.get("/openapi.json")

    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    assert spec.status_code == 200


async def test_every_route_is_documented_with_a_summary_and_an_answer(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()

    documented = {
        (method, path): operation
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
    }
    assert set(documented) >= ROUTES
    for route in ROUTES:
        operation = documented[route]
        assert operation.get("summary"), route
        success = [status for status in operation["responses"] if status.startswith("2")]
        assert success, route


async def test_the_request_examples_are_shown(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]

    execute = paths["/flows/{name}/execute"]["post"]["requestBody"]["content"]["application/json"]
    assert execute["examples"]["tutorial"]["value"] == {"inputs": {"user_id": 1}}
    assert {"inputs": {"user_id": 1}} in resolve(spec, execute["schema"])["examples"]
    flow_run = paths["/flow/run"]["post"]["requestBody"]["content"]["application/json"]
    assert flow_run["examples"]["sample"]["value"] == SAMPLE_REQUEST
    assert resolve(spec, flow_run["schema"])["examples"] == [SAMPLE_REQUEST]
    register = paths["/flows"]["post"]["requestBody"]["content"]
    assert {"application/yaml", "text/yaml", "application/json"} <= set(register)
    assert register["application/yaml"]["example"].startswith("flow: Hello")


async def test_answers_document_their_error_shapes(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()

    run = spec["paths"]["/runs/{run_id}/retry"]["post"]["responses"]
    assert {"202", "404", "409", "422"} <= set(run)
    fork = spec["paths"]["/runs/{run_id}/fork"]["post"]["responses"]
    assert {"202", "404", "409", "422"} <= set(fork)
    execute = spec["paths"]["/flows/{name}/execute"]["post"]["responses"]
    assert {"200", "202", "404", "413", "415", "422"} <= set(execute)


async def test_operation_ids_are_the_route_functions_short_unique_names(
    client: httpx.AsyncClient,
) -> None:
    """They name the methods of generated clients: `execute_flow`, not
    `execute_flow_flows__name__execute_post`."""
    spec = (await client.get("/openapi.json")).json()

    operations = {
        (method, path): operation["operationId"]
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
    }
    ids = list(operations.values())
    assert len(ids) == len(set(ids))
    for (method, _path), operation_id in operations.items():
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", operation_id), operation_id  # no `__name__`
        assert not operation_id.endswith(f"_{method}"), operation_id  # no method appended
        assert len(operation_id) <= 20, operation_id  # no path appended
    assert {
        operations[("post", "/flows/{name}/execute")],
        operations[("post", "/flows/{name}/runs")],
        operations[("get", "/runs")],
        operations[("get", "/runs/{run_id}")],
        operations[("post", "/runs/{run_id}/cancel")],
        operations[("post", "/runs/{run_id}/retry")],
    } == {"execute_flow", "start_run", "list_runs", "get_run", "cancel_run", "retry_run"}


def test_operations_that_would_share_an_id_are_found() -> None:
    """`register_routes` refuses to serve them (a client would have two methods of one name)."""
    router = APIRouter()

    @router.get("/a")
    async def same() -> None: ...

    @router.get("/b")  # type: ignore[no-redef]
    async def same() -> None: ...  # noqa: F811

    @router.api_route("/c", methods=["GET", "POST"])
    async def two_methods() -> None: ...

    @router.get("/d", include_in_schema=False)
    async def unique() -> None: ...

    assert duplicate_operation_ids(router.routes) == ["same", "two_methods"]
