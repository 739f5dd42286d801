"""Waiting for something in a test: poll with a deadline, never sleep-and-hope."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

DEADLINE_SECONDS = 10.0


async def until(
    condition: Callable[[], bool | Awaitable[bool]],
    deadline: float = DEADLINE_SECONDS,
    interval: float = 0.01,
) -> None:
    """Return once `condition()` is true; TimeoutError after `deadline` seconds."""
    async with asyncio.timeout(deadline):
        while True:
            result = condition()
            if await result if isinstance(result, Awaitable) else result:
                return
            await asyncio.sleep(interval)
