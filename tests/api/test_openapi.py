"""The interactive documentation: every route summarised, the request examples shown."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

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
    execute = spec["paths"]["/flows/{name}/execute"]["post"]["responses"]
    assert {"200", "202", "404", "413", "415", "422"} <= set(execute)
