"""GET /workers: every API process registers, beats and leaves (it runs `/execute` runs, and
its embedded worker's)."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

import httpx

from app.settings import Settings
from tests.api.support import api_settings, serve
from tests.polling import until


async def test_the_embedded_worker_is_listed_with_a_fresh_heartbeat(
    database_url: str,
) -> None:
    settings = api_settings(database_url, lease_seconds=0.15)  # a heartbeat every 0.05 s

    async with serve(settings) as client:
        (worker,) = (await client.get("/workers")).json()
        assert worker["pid"] == os.getpid()
        assert worker["claims_runs"] is True  # its embedded worker claims queued runs
        assert worker["id"].startswith(f"{worker['hostname']}:{os.getpid()}:")
        first = datetime.fromisoformat(worker["last_heartbeat"])

        async def beaten() -> bool:
            (now,) = (await client.get("/workers")).json()
            return datetime.fromisoformat(now["last_heartbeat"]) > first

        await until(beaten)

    async with serve(api_settings(database_url)) as client:
        (second,) = (await client.get("/workers")).json()  # the first app left on shutdown
        assert second["id"] != worker["id"]


async def test_an_api_without_the_embedded_worker_is_listed_for_its_execute_runs(
    settings: Settings,
) -> None:
    without: Settings = settings.model_copy(update={"embedded_worker": False})

    async with serve(without) as client:
        answer: httpx.Response = await client.get("/workers")

    workers: list[Any] = answer.json()
    assert answer.status_code == 200
    assert [worker["pid"] for worker in workers] == [os.getpid()]
    assert workers[0]["claims_runs"] is False  # it claims no queued run
