"""Bad requests: each gets a precise 4xx naming what is wrong, and nothing is half-written."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.api.flows import GREET_YAML
from tests.api.support import JSON, YAML, api_settings, register, serve, snapshot

UNKNOWN_RUN = "00000000-0000-4000-8000-000000000000"


def body(raw: bytes | str, content_type: str = "application/json") -> dict[str, Any]:
    return {"content": raw, "headers": {"content-type": content_type}}


# (method, path, request arguments, status, where the first problem is, text it mentions)
CASES: list[tuple[str, str, dict[str, Any], int, list[Any] | None, str]] = [
    ("POST", "/flows/Greet/execute", body(b'{"inputs": {'), 422, ["body", 12], "json_invalid"),
    ("POST", "/flows/Greet/execute", body(b"{}", "text/plain"), 415, None, "application/json"),
    ("POST", "/flows/Greet/execute", {"content": b"{}"}, 415, None, "Content-Type"),
    ("POST", "/flows/Nope/execute", {"json": {}}, 404, None, "Nope"),
    ("POST", "/flows/Nope/runs", {"json": {}}, 404, None, "Nope"),
    ("POST", "/flows/Greet/execute", {"json": {}}, 422, ["body", "inputs", "name"], "name"),
    ("POST", "/flows/Greet/runs", {"json": {}}, 422, ["body", "inputs", "name"], "name"),
    (
        "POST",
        "/flows/Greet/execute",
        {"json": {"inputs": {"name": "Ada", "times": "often"}}},
        422,
        ["body", "inputs", "times"],
        "integer",
    ),
    (
        "POST",
        "/flows/Greet/execute",
        {"json": {"inputs": {"name": "Ada", "colour": "red"}}},
        422,
        ["body", "inputs", "colour"],
        "colour",
    ),
    ("POST", "/flows/Greet/execute", {"json": {"inputs": [1]}}, 422, ["body", "inputs"], "dict"),
    ("POST", "/flows/Greet/runs", {"json": {"inputs": "x"}}, 422, ["body", "inputs"], "dict"),
    ("POST", "/flows/Greet/execute", {"json": [1, 2]}, 422, ["body"], "dictionary"),
    ("POST", "/flows/Greet/execute", {"json": "text"}, 422, ["body"], "dictionary"),
    ("POST", "/flows/Greet/execute", {"json": {"input": {}}}, 422, ["body", "input"], "extra"),
    ("POST", "/flows/Greet/execute", {"json": {"wait": -1}}, 422, ["body", "wait"], "greater"),
    ("POST", "/flows/Greet/execute", {"json": {"version": 0}}, 422, ["body", "version"], "greater"),
    (
        "POST",
        "/flows/Greet/execute",
        {"json": {"inputs": {"name": "A"}, "version": 9}},
        404,
        None,
        "9",
    ),
    (
        "POST",
        "/flows/Greet/execute",
        body(b'{"inputs": {"name": "A", "times": NaN}}'),
        422,
        ["body", 34],
        "json_invalid",
    ),
    (
        "POST",
        "/flows/Greet/execute",
        {"json": {"inputs": {"name": "A"}}, "headers": {"Idempotency-Key": "k" * 256}},
        422,
        ["header", "Idempotency-Key"],
        "255",
    ),
    ("POST", "/flow/run", {"json": {}}, 422, ["body", "flow"], "required"),
    ("POST", "/flow/run", {"json": {"flow": []}}, 422, ["body", "flow"], "dict"),
    ("POST", "/flows", body(b"[1, 2]"), 422, [], "mapping"),
    ("POST", "/flows", body(b""), 422, [], "empty"),
    ("PUT", "/flows/Greet", body(GREET_YAML, "text/csv"), 415, None, "text/csv"),
    ("GET", "/runs?cursor=not-a-cursor", {}, 422, ["query", "cursor"], "cursor"),
    ("GET", "/runs?limit=0", {}, 422, ["query", "limit"], "greater"),
    ("GET", "/runs?limit=201", {}, 422, ["query", "limit"], "less"),
    ("GET", "/runs?limit=many", {}, 422, ["query", "limit"], "integer"),
    ("GET", "/runs?status=done", {}, 422, ["query", "status"], "queued"),
    ("GET", "/runs?flow=no%20spaces", {}, 422, ["query", "flow"], "pattern"),
    ("GET", f"/runs/{UNKNOWN_RUN}", {}, 404, None, UNKNOWN_RUN),
    ("GET", "/runs/not-a-run-id", {}, 422, ["path", "run_id"], "UUID"),
    ("POST", f"/runs/{UNKNOWN_RUN}/retry", {}, 404, None, UNKNOWN_RUN),
    ("POST", f"/runs/{UNKNOWN_RUN}/fork", {"json": {}}, 422, ["body", "from_step"], "required"),
    ("POST", f"/runs/{UNKNOWN_RUN}/fork", {"json": {"from_step": "greet"}}, 404, None, UNKNOWN_RUN),
    ("GET", f"/runs/{UNKNOWN_RUN}/diff/x", {}, 422, ["path", "other_id"], "UUID"),
    ("GET", f"/runs/{UNKNOWN_RUN}/diff/{UNKNOWN_RUN}", {}, 404, None, UNKNOWN_RUN),
    ("GET", "/flows/Greet/versions/0", {}, 422, ["path", "version"], "greater"),
    ("GET", "/flows/bad name", {}, 422, ["path", "name"], "pattern"),
]


@pytest.mark.parametrize(
    ("method", "path", "arguments", "status", "loc", "mentions"),
    CASES,
    ids=[f"{case[0]} {case[1]} {case[3]} {index}" for index, case in enumerate(CASES)],
)
async def test_a_bad_request_is_refused_precisely_and_changes_nothing(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    arguments: dict[str, Any],
    status: int,
    loc: list[Any] | None,
    mentions: str,
) -> None:
    await register(client, GREET_YAML)
    before = await snapshot(client)

    response = await client.request(method, path, **arguments)

    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    if loc is None:
        assert isinstance(detail, str)
    else:
        assert detail[0]["loc"] == loc
    assert mentions.lower() in response.text.lower()
    assert await snapshot(client) == before


@pytest.fixture
async def small_client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(api_settings(database_url, max_body_bytes=1024)) as client:
        yield client


def chunks(size: int) -> Any:
    async def stream() -> AsyncIterator[bytes]:
        for _ in range(size // 256):
            yield b" " * 256

    return stream()


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/flows", YAML),
        ("/flows/validate", YAML),
        ("/flows/Greet/execute", JSON),
        ("/flow/run", JSON),
    ],
)
async def test_a_body_over_max_body_bytes_is_413(
    small_client: httpx.AsyncClient, path: str, headers: dict[str, str]
) -> None:
    await register(small_client, GREET_YAML)
    before = await snapshot(small_client)
    padded = b"{" + b" " * 2000 + b"}"

    declared = await small_client.post(path, content=padded, headers=headers)
    streamed = await small_client.post(path, content=chunks(4096), headers=headers)

    for response in (declared, streamed):
        assert response.status_code == 413
        assert "1024" in response.json()["detail"]
    assert await snapshot(small_client) == before


async def test_a_body_within_max_body_bytes_is_read(small_client: httpx.AsyncClient) -> None:
    response = await small_client.post("/flows", content=GREET_YAML, headers=YAML)

    assert response.status_code == 201
