"""The flow service validates and registers definitions without holding up the event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import TypeVar

import pytest

from app.services.container import Services
from app.services.flows import FlowService
from app.settings import Settings
from tests.callers import admin

T = TypeVar("T")


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    settings = Settings(_env_file=None, database_url=f"sqlite+aiosqlite:///{tmp_path / 's.db'}")
    opened = await Services.open(settings)
    yield opened
    await opened.close(grace=0)


@pytest.fixture
def flows(services: Services) -> FlowService:
    return services.flows


def long_chain(count: int = 5000) -> str:
    lines = ["flow: Long", "steps:", "  - set: {id: s0, values: {v: 0}}"]
    lines += [
        f'  - set: {{id: s{index}, values: {{v: "${{s{index - 1}.v + 1}}"}}}}'
        for index in range(1, count)
    ]
    return "\n".join(lines) + "\n"


async def longest_stall(work: Awaitable[T]) -> tuple[T, float, float]:
    """`work`'s result, how long it took, and the longest the event loop went without
    running another task meanwhile."""
    stalls: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            stalls.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)  # the ticker starts before the work
    started = time.perf_counter()
    result = await work
    elapsed = time.perf_counter() - started
    done.set()
    await ticker
    return result, elapsed, max(stalls)


async def test_validating_a_large_definition_leaves_the_event_loop_free(
    flows: FlowService,
) -> None:
    report, elapsed, stall = await longest_stall(flows.validate(long_chain(), "yaml"))

    assert len(report.steps) == 5000
    assert elapsed > 0.15  # enough work that running it on the loop would show
    # On the loop, the loop would stall for all of it; in a thread, only while a garbage
    # collection holds the interpreter (a fraction of it, less in the server, whose start-up
    # objects are frozen out of collections).
    assert stall < elapsed / 2


async def test_registering_a_large_definition_leaves_the_event_loop_free(
    services: Services,
) -> None:
    caller = await admin(services)
    registering = services.flows.register(caller, long_chain(), "yaml")

    registration, elapsed, stall = await longest_stall(registering)

    assert registration.created
    assert elapsed > 0.15
    assert stall < elapsed / 2
