"""Fixtures of the engine tests: an executor with a few observable custom tasks."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

from app.engine import FlowExecutor
from app.engine.memory_store import InMemoryRunStore
from app.tasks import NonRetryableError, TaskRegistry


@dataclass
class Probe:
    """Records what the test tasks saw."""

    calls: Counter[str] = field(default_factory=Counter)
    seen: list[Any] = field(default_factory=list)
    running: int = 0
    peak: int = 0
    failures_left: dict[str, int] = field(default_factory=dict)


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
def registry(probe: Probe) -> TaskRegistry:
    registry = TaskRegistry()

    @registry.register("Echo")
    async def echo(value: Any = None) -> dict[str, Any]:
        probe.calls["Echo"] += 1
        probe.seen.append(value)
        return {"value": value}

    @registry.register("Flaky")
    async def flaky(name: str, error: str = "RuntimeError") -> dict[str, Any]:
        """Fails while failures_left[name] > 0, then returns the attempt count."""
        probe.calls[name] += 1
        left = probe.failures_left.get(name, 0)
        if left > 0:
            probe.failures_left[name] = left - 1
            if error == "NonRetryableError":
                raise NonRetryableError(f"{name} refuses")
            raise {"RuntimeError": RuntimeError, "ValueError": ValueError}[error](f"{name} broke")
        return {"calls": probe.calls[name]}

    @registry.register("Track")
    async def track(value: Any = None, pause: float = 0.0) -> dict[str, Any]:
        """Counts concurrent executions, waiting for a yield point in between."""
        probe.running += 1
        probe.peak = max(probe.peak, probe.running)
        try:
            await asyncio.sleep(pause)
        finally:
            probe.running -= 1
        probe.seen.append(value)
        return {"value": value}

    @registry.register("Blocking")
    def blocking(value: Any = None) -> dict[str, Any]:
        return {"value": value}

    return registry


@pytest.fixture
def store() -> InMemoryRunStore:
    return InMemoryRunStore()


@pytest.fixture
def executor(registry: TaskRegistry, store: InMemoryRunStore) -> FlowExecutor:
    return FlowExecutor(registry, store=store, env={"ALLOWED": "yes"})
