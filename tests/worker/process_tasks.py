"""Tasks the worker processes of tests/worker load through TASK_MODULES.

Every execution is recorded in the `side_effects` table of the test's database (the DSN in
SIDE_EFFECTS_DSN) with the pid of the process that ran it, so the test process sees what each
worker did, even a worker killed or stalled since. A gate is a file of GATE_DIR that the test
creates when a blocked step may finish, in any process or in one.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import asyncpg

from app.tasks import TaskContext, TaskRegistry

GATE_POLL_SECONDS = 0.05
POOL_SIZE = 3  # per worker process: four workers share the server's 100 connections

registry = TaskRegistry()
_pool: asyncpg.Pool | None = None
_pool_lock = asyncio.Lock()


@registry.register("Record")
async def record(context: TaskContext, value: Any = None) -> dict[str, Any]:
    """Record that it ran; its pid, and `value` back (fan-outs sum it)."""
    await _record(context, "finished")
    return {"pid": os.getpid(), "value": value}


@registry.register("Gate")
async def gate(gate: str, context: TaskContext) -> dict[str, Any]:
    """Wait until the gate is open; stopped (cancelled) while it waits, it records no finish."""
    return await _gate_attempt(gate, context)


@registry.register("StubbornGate")
async def stubborn_gate(gate: str, context: TaskContext) -> dict[str, Any]:
    """As Gate, but its attempt finishes even if the run is stopped meanwhile (it swallows the
    cancellation), so a worker that lost the run still tries to record the result."""
    attempt = asyncio.ensure_future(_gate_attempt(gate, context))
    while True:
        try:
            return await asyncio.shield(attempt)
        except asyncio.CancelledError:
            continue


async def _gate_attempt(gate: str, context: TaskContext) -> dict[str, Any]:
    await _record(context, "started")
    await _wait_for(gate)
    await _record(context, "finished")
    return {"pid": os.getpid()}


async def _wait_for(gate: str) -> None:
    """Until the gate is open for every process, or for this one (`<gate>.<pid>`)."""
    directory = Path(os.environ["GATE_DIR"])
    paths = (directory / gate, directory / f"{gate}.{os.getpid()}")
    # Another process opens it: there is no event to wait on, so the file is polled.
    while not any(path.exists() for path in paths):  # noqa: ASYNC110
        await asyncio.sleep(GATE_POLL_SECONDS)


async def _record(context: TaskContext, event: str) -> None:
    pool = await _side_effects()
    await pool.execute(
        "INSERT INTO side_effects (run_id, step, idx, pid, event) VALUES ($1, $2, $3, $4, $5)",
        context.run_id,
        context.step_id,
        context.task_index,
        os.getpid(),
        event,
    )


async def _side_effects() -> asyncpg.Pool:
    """The process's pool on the side-effects table, made on first use (in the worker's loop)."""
    global _pool  # noqa: PLW0603 - one pool per worker process
    async with _pool_lock:
        if _pool is None:
            _pool = await asyncpg.create_pool(
                os.environ["SIDE_EFFECTS_DSN"], min_size=1, max_size=POOL_SIZE
            )
    return _pool
