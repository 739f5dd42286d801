"""Watching the event loop while a test's work runs: how long it went without running another
task (wall time), and how much of that its own thread was busy (CPU time, which neither a
descheduled process nor a thread holding the interpreter adds to)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
TICK = 0.001  # seconds


@dataclass(frozen=True)
class LoopWatch(Generic[T]):
    result: T
    elapsed: float  # seconds the work took
    longest_stall: float  # the longest wall time between two ticks of the loop
    longest_busy: float  # the most CPU time the loop's thread used between two ticks


async def watch_loop(work: Awaitable[T]) -> LoopWatch[T]:
    """`work`'s result, with what the event loop went through meanwhile."""
    stalls: list[float] = []
    busy: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        last, last_cpu = time.perf_counter(), time.thread_time()
        while not done.is_set():
            await asyncio.sleep(TICK)
            now, cpu = time.perf_counter(), time.thread_time()
            stalls.append(now - last)
            busy.append(cpu - last_cpu)
            last, last_cpu = now, cpu

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)  # the ticker starts before the work
    started = time.perf_counter()
    result = await work
    elapsed = time.perf_counter() - started
    done.set()
    await ticker
    return LoopWatch(result, elapsed, max(stalls), max(busy))
