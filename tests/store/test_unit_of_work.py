"""The unit of work: a block is one transaction, and the driver's errors end at its edge."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from app.errors import DuplicateError, StoreUnavailableError
from app.settings import Settings
from app.store.database import create_engine, is_passing_failure
from app.store.unit_of_work import Store

AT = datetime(2026, 1, 1, tzinfo=UTC)


def store_on(url: str) -> Store:
    return Store(create_engine(Settings(_env_file=None, database_url=url)))


async def add_user(store: Store, username: str) -> None:
    async with store.write() as tx:
        await tx.users.add(username=username, email=None, password_hash=None, is_admin=False, at=AT)


async def test_a_write_commits_when_its_block_ends(store: Store) -> None:
    await add_user(store, "ada")

    async with store.read() as tx:
        assert [user.username for user in await tx.users.active()] == ["ada"]


async def add_user_then_fail(store: Store) -> None:
    async with store.write() as tx:
        await tx.users.add(username="ada", email=None, password_hash=None, is_admin=False, at=AT)
        await tx.audit.record(actor="test", action="user.create", target="ada", at=AT)
        raise LookupError("changed my mind")


async def test_a_write_whose_block_raises_leaves_nothing(store: Store) -> None:
    with pytest.raises(LookupError):
        await add_user_then_fail(store)

    async with store.read() as tx:
        assert await tx.users.active() == []
        assert await tx.audit.page(limit=10, before_id=None) == []


async def test_an_integrity_violation_is_a_duplicate_error(store: Store) -> None:
    await add_user(store, "ada")

    with pytest.raises(DuplicateError) as raised:
        await add_user(store, "ada")

    assert "ada" not in raised.value.message  # the driver's words (constraint names) stay in
    async with store.read() as tx:  # the store is usable after it, and holds one `ada`
        assert [user.username for user in await tx.users.active()] == ["ada"]


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port that is bound but not listening: every connection to it is refused."""
    with socket.socket() as reserved:
        reserved.bind(("127.0.0.1", 0))
        yield reserved.getsockname()[1]


async def test_an_unreachable_store_is_unavailable_for_now(refused_port: int) -> None:
    store = store_on(f"postgresql+asyncpg://postgres@127.0.0.1:{refused_port}/nowhere")
    try:
        with pytest.raises(StoreUnavailableError) as raised:
            async with store.read() as tx:
                await tx.users.find("ada")
        assert not await store.reachable()
    finally:
        await store.close()

    assert is_passing_failure(raised.value)  # a run that meets it is handed over, not failed


async def test_a_store_that_answers_is_reachable(store: Store) -> None:
    assert await store.reachable()
