"""Run-list cursors over HTTP: signed, so a caller can only follow the ones it was given."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx

from app.settings import Settings
from tests.api.flows import GREET_YAML
from tests.api.support import api_settings, register, serve

SECRET = "s" * 32


def sqlite_settings(directory: Path, **overrides: Any) -> Settings:
    directory.mkdir(exist_ok=True)
    return api_settings(f"sqlite+aiosqlite:///{directory / 'store.db'}", **overrides)


async def runs_of_greet(client: httpx.AsyncClient, count: int) -> list[str]:
    await register(client, GREET_YAML)
    answers = [
        await client.post("/flows/Greet/execute", json={"inputs": {"name": f"n{n}"}})
        for n in range(count)
    ]
    return [answer.json()["run_id"] for answer in answers]


def assert_invalid_cursor(response: httpx.Response) -> None:
    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert (problem["type"], problem["loc"]) == ("invalid_cursor", ["query", "cursor"])


async def test_a_cursor_made_by_the_caller_is_refused(client: httpx.AsyncClient) -> None:
    """The position a cursor carries is the service's word: a caller who writes one (here,
    the format cursors had before they were signed) gets 422, not a page of its choosing."""
    run_ids = await runs_of_greet(client, 3)
    newest = (await client.get("/runs", params={"limit": 1})).json()["items"][0]
    made_up = json.dumps([newest["created_at"], run_ids[-1]]).encode()
    forged = base64.urlsafe_b64encode(made_up).decode().rstrip("=")

    assert_invalid_cursor(await client.get("/runs", params={"cursor": forged}))


async def test_a_tampered_cursor_is_refused(client: httpx.AsyncClient) -> None:
    await runs_of_greet(client, 3)
    cursor = (await client.get("/runs", params={"limit": 1})).json()["next_cursor"]
    payload, tag = cursor.split(".")
    flipped = payload[:-1] + ("A" if payload[-1] != "A" else "B")

    assert (await client.get("/runs", params={"cursor": cursor})).status_code == 200
    assert_invalid_cursor(await client.get("/runs", params={"cursor": f"{flipped}.{tag}"}))
    assert_invalid_cursor(await client.get("/runs", params={"cursor": payload}))


async def test_a_cursor_of_another_service_is_refused(tmp_path: Path) -> None:
    """Without SECRET_KEY each store's migrations made a key of its own."""
    async with serve(sqlite_settings(tmp_path / "a")) as first:
        await runs_of_greet(first, 2)
        cursor = (await first.get("/runs", params={"limit": 1})).json()["next_cursor"]
    async with serve(sqlite_settings(tmp_path / "b")) as second:
        assert_invalid_cursor(await second.get("/runs", params={"cursor": cursor}))


async def test_processes_of_one_store_accept_each_others_cursors_without_secret_key(
    tmp_path: Path,
) -> None:
    settings = sqlite_settings(tmp_path / "store")
    async with serve(settings) as first:
        run_ids = await runs_of_greet(first, 2)
        cursor = (await first.get("/runs", params={"limit": 1})).json()["next_cursor"]
    async with serve(settings) as second:  # a restart, or another process of the service
        page = (await second.get("/runs", params={"cursor": cursor})).json()

    assert [run["run_id"] for run in page["items"]] == [run_ids[0]]


async def test_processes_sharing_secret_key_accept_each_others_cursors(tmp_path: Path) -> None:
    settings = sqlite_settings(tmp_path / "store", secret_key=SECRET)
    async with serve(settings) as first:
        run_ids = await runs_of_greet(first, 2)
        cursor = (await first.get("/runs", params={"limit": 1})).json()["next_cursor"]
    async with serve(settings) as second:
        page = (await second.get("/runs", params={"cursor": cursor})).json()

    assert [run["run_id"] for run in page["items"]] == [run_ids[0]]
