"""Two API processes on one PostgreSQL store: what one changes of access, the other applies at
once, though each caches credentials and permissions; concurrent registrations each get a
version of their own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.api.flows import GREET_YAML
from tests.api.support import YAML, As, add_user, admin_of, auth_settings, serve
from tests.databases import postgres_database, postgres_database_url
from tests.polling import until


@pytest.fixture
async def two_processes() -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    async with postgres_database("fm_access") as name:
        settings = auth_settings(postgres_database_url(name, "postgresql+asyncpg"))
        async with serve(settings) as one, serve(settings) as two:
            for client in (one, two):
                listener = client._transport.app.state.services.listener  # type: ignore[attr-defined]
                await asyncio.wait_for(listener.listening.wait(), 10)
            yield one, two


async def test_a_key_revoked_in_one_process_is_refused_by_the_other(
    two_processes: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    one, two = two_processes
    ada_in_one = await add_user(await admin_of(one), "ada")
    ada_in_two = As(two, ada_in_one.key, "ada")
    assert (await ada_in_two.get("/me")).status_code == 200  # cached by the second process
    key_id = (await ada_in_one.get("/keys")).json()[0]["id"]

    assert (await ada_in_one.delete(f"/keys/{key_id}")).status_code == 204

    async def refused() -> bool:
        return (await ada_in_two.get("/me")).status_code == 401

    await until(refused, deadline=2)  # a notification's flight, not a cache's lifetime (60 s)


async def test_a_share_removed_in_one_process_is_applied_by_the_other(
    two_processes: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    one, two = two_processes
    admin = await admin_of(one)
    ada = await add_user(admin, "ada")
    bob_in_one = await add_user(admin, "bob")
    bob_in_two = As(two, bob_in_one.key, "bob")
    await ada.register(GREET_YAML)
    await ada.put("/flows/Greet/shares/bob", json={"permission": "view"})
    assert (await bob_in_two.get("/flows/Greet")).status_code == 200  # cached there

    await ada.delete("/flows/Greet/shares/bob")

    async def hidden() -> bool:
        return (await bob_in_two.get("/flows/Greet")).status_code == 404

    await until(hidden, deadline=2)


async def test_concurrent_registrations_of_one_flow_each_get_their_own_version(
    two_processes: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    one, two = two_processes
    admin_one = await admin_of(one)
    admin_two = As(two, admin_one.key, "admin")
    bodies = [GREET_YAML + f"# version {n}\n" for n in range(40)]

    async def put(n: int) -> httpx.Response:
        caller = admin_one if n % 2 else admin_two
        return await caller.put("/flows/Greet", content=bodies[n], headers=YAML)

    answers = []
    for start in range(0, len(bodies), 20):  # 20 at a time, as the attack was
        answers += await asyncio.gather(*(put(n) for n in range(start, start + 20)))

    assert [answer.status_code for answer in answers] == [201] * len(bodies)
    versions = sorted(answer.json()["version"] for answer in answers)
    assert versions == list(range(1, len(bodies) + 1))
