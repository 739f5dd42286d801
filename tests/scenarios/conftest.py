"""The tutorial's Redis keys, shared by the tests that run its flow."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis_asyncio

from tests.polling import until

# The keys the tutorial's flow writes (its text fixes them: it must work as written). Tests
# that run it take a lock in Redis, so that runs of this suite on one server take turns, and
# delete exactly these keys before and after: nothing else on the shared server is touched.
TUTORIAL_KEYS = ("user:1", "user:2", "user:999", "stats:user_views")
LOCK = "fm-test:tutorial-lock"
LOCK_SECONDS = 300  # longer than the longest test holding it (the whole tutorial: ~30 s)


@pytest.fixture
async def tutorial_keys(redis_url: str) -> AsyncIterator[None]:
    client = redis_asyncio.Redis.from_url(redis_url)
    token = uuid.uuid4().hex
    try:

        async def locked() -> bool:
            return bool(await client.set(LOCK, token, nx=True, ex=LOCK_SECONDS))

        await until(locked, deadline=LOCK_SECONDS)
        await client.delete(*TUTORIAL_KEYS)
        yield
        await client.delete(*TUTORIAL_KEYS)
    finally:
        if await client.get(LOCK) == token.encode():
            await client.delete(LOCK)
        await client.aclose()
