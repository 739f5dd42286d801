"""`LoadingCache`: remembered values, and one read shared by the callers that miss together."""

from __future__ import annotations

import asyncio
import functools

import pytest
from cachetools import LRUCache

from app.services.loading_cache import LoadingCache


class Source:
    """A store stand-in whose reads wait for `release` and count themselves."""

    def __init__(self) -> None:
        self.reads = 0
        self.release = asyncio.Event()
        self.value = "first"

    async def read(self) -> str:
        self.reads += 1
        await self.release.wait()
        return self.value


async def test_callers_that_miss_together_share_one_read() -> None:
    cache = LoadingCache[str, str]({})
    source = Source()

    waiting = [asyncio.create_task(cache.get("key", source.read)) for _ in range(20)]
    await asyncio.sleep(0)
    source.release.set()

    assert await asyncio.gather(*waiting) == ["first"] * 20
    assert source.reads == 1


async def test_a_value_is_remembered_until_forgotten() -> None:
    cache = LoadingCache[str, str]({})
    source = Source()
    source.release.set()

    assert await cache.get("key", source.read) == "first"
    source.value = "second"
    assert await cache.get("key", source.read) == "first"
    cache.forget("key")
    assert await cache.get("key", source.read) == "second"
    assert source.reads == 2


async def test_a_failed_read_fails_every_waiter_and_is_not_remembered() -> None:
    cache = LoadingCache[str, str]({})
    reads = 0

    async def failing() -> str:
        nonlocal reads
        reads += 1
        await asyncio.sleep(0)
        raise LookupError("gone")

    waiting = [asyncio.create_task(cache.get("key", failing)) for _ in range(3)]
    results = await asyncio.gather(*waiting, return_exceptions=True)

    assert [type(result) for result in results] == [LookupError] * 3
    assert reads == 1
    with pytest.raises(LookupError):
        await cache.get("key", failing)
    assert reads == 2


async def test_a_cancelled_caller_leaves_the_read_to_the_others() -> None:
    cache = LoadingCache[str, str]({})
    source = Source()
    first = asyncio.create_task(cache.get("key", source.read))
    second = asyncio.create_task(cache.get("key", source.read))
    await asyncio.sleep(0)

    first.cancel()
    source.release.set()

    assert await second == "first"
    with pytest.raises(asyncio.CancelledError):
        await first
    assert source.reads == 1


async def test_a_read_in_flight_when_forgotten_is_neither_joined_nor_remembered() -> None:
    cache = LoadingCache[str, str]({})
    stale = Source()
    before = asyncio.create_task(cache.get("key", stale.read))
    await asyncio.sleep(0)

    cache.forget()  # access changed while the read was in flight
    fresh = Source()
    fresh.value = "second"
    fresh.release.set()
    after = await cache.get("key", fresh.read)
    stale.release.set()

    assert (await before, after) == ("first", "second")
    fresh.value = "third"
    assert await cache.get("key", fresh.read) == "second"  # the fresh read was remembered


async def test_values_it_may_not_keep_are_read_again() -> None:
    cache = LoadingCache[str, str | None]({}, keep=lambda value: value is not None)
    reads = 0

    async def missing() -> str | None:
        nonlocal reads
        reads += 1
        return None

    assert await cache.get("key", missing) is None
    assert await cache.get("key", missing) is None
    assert reads == 2


async def test_without_a_place_to_remember_only_concurrent_reads_are_shared() -> None:
    cache = LoadingCache[str, str](None)
    source = Source()
    together = [asyncio.create_task(cache.get("key", source.read)) for _ in range(5)]
    await asyncio.sleep(0)
    source.release.set()
    await asyncio.gather(*together)

    await cache.get("key", source.read)

    assert source.reads == 2


async def test_a_bounded_cache_forgets_its_least_recently_used_value() -> None:
    cache = LoadingCache[str, str](LRUCache(2))
    reads: list[str] = []

    async def read(key: str) -> str:
        reads.append(key)
        return key.upper()

    for key in ("a", "b", "a", "c", "a", "b"):
        await cache.get(key, functools.partial(read, key))

    assert reads == ["a", "b", "c", "b"]


async def test_forgetting_one_key_leaves_the_reads_of_others_remembered() -> None:
    cache = LoadingCache[str, str]({})
    other = Source()
    reading = asyncio.create_task(cache.get("other", other.read))
    await asyncio.sleep(0)

    cache.forget("key")
    other.release.set()
    await reading
    other.value = "second"

    assert await cache.get("other", other.read) == "first"
    assert other.reads == 1
