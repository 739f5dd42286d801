"""What the engine lets the store commit later: the finishes of pure tasks (no effect outside
the run), which a task with effects waits for (`RunStore.committed`) before it starts."""

from __future__ import annotations

from typing import Any

from app.engine import FlowExecutor
from app.engine.memory_store import InMemoryRunStore
from app.engine.store import TaskFinish
from app.tasks import TaskRegistry

CHAIN = """
flow: PureThenEffect
steps:
  - set: {id: a, values: {x: 1}}
  - set: {id: b, if: "${a.x > 5}", values: {y: 2}}
  - set: {id: each, for_each: "${[1, 2]}", values: {v: "${item}"}}
  - task: Act
    id: act
  - set: {id: after, values: {z: 3}}
"""


class RecordingStore(InMemoryRunStore):
    """Records, in order, each finish (and whether it may be committed later) and each wait
    for the run's writes to be committed."""

    def __init__(self, log: list[Any]) -> None:
        super().__init__()
        self.log = log

    async def task_finished(self, run_id: str, finish: TaskFinish) -> None:
        self.log.append((finish.key.step_id, finish.key.task_index, finish.pure))
        await super().task_finished(run_id, finish)

    async def committed(self, run_id: str) -> None:
        self.log.append("committed")


async def test_pure_finishes_may_be_committed_later_but_not_after_an_effect_starts() -> None:
    log: list[Any] = []
    registry = TaskRegistry()

    @registry.register("Act")
    async def act() -> dict[str, Any]:
        log.append("act")
        return {}

    await FlowExecutor(registry, store=RecordingStore(log)).execute_flow(CHAIN)

    assert log == [
        ("a", 0, True),  # `set`
        ("b", 0, True),  # skipped
        ("each", 0, True),  # an element of a fan-out of `set`
        ("each", 1, True),  # the last element, with the step
        "committed",  # everything before the effect is on record first
        "act",
        ("act", 0, False),  # a task with effects: its finish is committed before it answers
        ("after", 0, True),
    ]
