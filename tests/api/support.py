"""Helpers of the API tests: building the app, registering flows, polling runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from app.main import create_app
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
TASK_MODULES = [
    str(EXAMPLES / "flow_manager" / "tasks.py"),
    str(Path(__file__).with_name("tasks.py")),
]
YAML = {"content-type": "application/yaml"}
JSON = {"content-type": "application/json"}
BASE_URL = "http://localhost"
DEADLINE_SECONDS = 20.0
POLL_SECONDS = 0.02
FINISHED = ("completed", "failed", "cancelled")


def api_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "migrate_on_start": True,
        "task_modules": TASK_MODULES,
        "poll_interval": 0.05,
        "flow_env_allowlist": [],
    }
    return Settings(_env_file=None, **(values | overrides))


@asynccontextmanager
async def serve(
    settings: Settings, *, raise_app_exceptions: bool = True
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app, with its lifespan (store, embedded worker) running.

    With `raise_app_exceptions=False` an unexpected error is a 500 answer, not an exception.
    """
    app: FastAPI = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
        # A name the service answers to by default (it listens on loopback): the Host check
        # runs as it does for users.
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            yield client


async def register(
    client: httpx.AsyncClient, source: str | bytes, headers: dict[str, str] = YAML
) -> dict[str, Any]:
    response = await client.post("/flows", content=source, headers=headers)
    assert response.status_code in (200, 201), response.text
    answer: dict[str, Any] = response.json()
    return answer


async def poll_run(
    client: httpx.AsyncClient,
    run_id: str,
    until: tuple[str, ...] = FINISHED,
    step: str | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The run once its status is in `until` (and step `step` is under way, when given:
    running, or waiting as a `sleep` does)."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        response = await client.get(f"/runs/{run_id}", headers=headers)
        assert response.status_code == 200, response.text
        run: dict[str, Any] = response.json()
        under_way = step is None or step_status(run, step) in ("running", "waiting")
        if run["status"] in until and under_way:
            return run
        assert time.monotonic() < deadline, f"run {run_id} stayed {run['status']}: {run}"
        await asyncio.sleep(POLL_SECONDS)


def step_status(run: dict[str, Any], step_id: str) -> str:
    return str(next(step["status"] for step in run["steps"] if step["step_id"] == step_id))


async def snapshot(client: httpx.AsyncClient) -> tuple[Any, Any]:
    """Every flow and every run, to prove a refused request wrote nothing."""
    flows = (await client.get("/flows")).json()
    runs = (await client.get("/runs", params={"limit": 200})).json()
    return flows, runs


# Authentication on: an admin (ADMIN_API_KEY) who makes users with keys of their own.

ADMIN_KEY = "fm_test-admin-key-0123456789abcdefghijklmnop"


def auth_settings(database_url: str, **overrides: Any) -> Settings:
    return api_settings(database_url, auth="on", admin_api_key=ADMIN_KEY, **overrides)


@dataclass(frozen=True)
class As:
    """A client that acts as one caller: each request carries its key (none: anonymous)."""

    client: httpx.AsyncClient
    key: str | None = None
    name: str = "anonymous"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key is not None else {}

    async def request(self, method: str, url: str, **options: Any) -> httpx.Response:
        headers = {**(options.pop("headers", None) or {}), **self.auth}
        return await self.client.request(method, url, headers=headers, **options)

    async def get(self, url: str, **options: Any) -> httpx.Response:
        return await self.request("GET", url, **options)

    async def post(self, url: str, **options: Any) -> httpx.Response:
        return await self.request("POST", url, **options)

    async def put(self, url: str, **options: Any) -> httpx.Response:
        return await self.request("PUT", url, **options)

    async def patch(self, url: str, **options: Any) -> httpx.Response:
        return await self.request("PATCH", url, **options)

    async def delete(self, url: str, **options: Any) -> httpx.Response:
        return await self.request("DELETE", url, **options)

    async def register(self, source: str) -> dict[str, Any]:
        response = await self.post("/flows", content=source, headers=YAML)
        assert response.status_code in (200, 201), response.text
        answer: dict[str, Any] = response.json()
        return answer


async def admin_of(client: httpx.AsyncClient) -> As:
    """The ADMIN_API_KEY's caller, once the key is installed (in the background, at start)."""
    admin = As(client, ADMIN_KEY, "admin")
    deadline = time.monotonic() + DEADLINE_SECONDS
    while (await admin.get("/me")).status_code != 200:
        assert time.monotonic() < deadline, "ADMIN_API_KEY was never installed"
        await asyncio.sleep(POLL_SECONDS)
    return admin


async def add_user(by: As, name: str, **fields: Any) -> As:
    """A new user (made by the admin `by`) acting through a new key of its own."""
    created = await by.post("/users", json={"username": name, **fields})
    assert created.status_code == 201, created.text
    key = await by.post("/keys", json={"user": name, "name": "tests"})
    assert key.status_code == 201, key.text
    return As(by.client, key.json()["key"], name)
