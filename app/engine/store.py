"""The engine's view of storage: the transitions of a run, reported as they happen.

The engine never imports a database library. It reports each transition to a `RunStore`; the
in-memory store (`memory_store.py`) serves library use and unit tests, the service's store
(`app/store/run_store.py`) persists the same calls. A `TaskFinish` carries the steps a finish
releases so a durable store can commit the result and the release in one transaction. `load`
reads back what an earlier execution of a run kept, so the engine can resume it
(`FlowExecutor.resume`).

A store may commit some transitions later than it answers: the start of a new run, and the
finish of a task without effect outside the run (a `pure` one: `set`, a skipped step) that
does not end it. A crash then loses them, and the run's next owner runs those steps again,
which nobody outside the run can tell. Before anything with an effect outside the run starts,
the engine waits for `committed`, so an effect never comes before the steps it follows are
recorded (Temporal records its local activities the same way, with the next workflow task).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from app.domain.elements import FanOutResult, SharedFanOut
from app.domain.records import AttemptLog, StepRecord
from app.domain.runs import RunError, RunStatus, TaskKey, TaskStatus


@dataclass(frozen=True)
class NewRun:
    run_id: str
    flow: str
    inputs: Mapping[str, Any]
    steps: Sequence[str]  # the steps to run, in definition order
    ready: Sequence[str]  # the steps that wait for nothing
    started_at: datetime
    resumed: bool = False  # the run ran before: the steps to run may have tasks from then
    # Steps of a resumed run still waiting (a sleep, a signal): their task rows, and the time
    # they wait until, are kept as they are.
    waiting: Sequence[str] = ()
    # Steps of a resumed run whose task is pending, never run: its row is as a new one would be.
    untouched: Sequence[str] = ()

    @property
    def replaced(self) -> list[str]:
        """The steps to run whose task rows a resumed run replaces (in definition order)."""
        kept = {*self.waiting, *self.untouched}
        return [step_id for step_id in self.steps if step_id not in kept]


@dataclass(frozen=True)
class RunEnd:
    """How a run ended."""

    status: RunStatus
    outputs: Mapping[str, Any] | None
    error: RunError | None
    at: datetime


@dataclass(frozen=True)
class TaskFinish:
    """A task completed, failed or was skipped.

    `released`: the steps it makes ready. `step_finished` is False for the elements of a
    fan-out that finish before its last. `ended`: the task's step ended the run, in the same
    transaction. `pure`: the task had no effect outside the run, so the store may commit the
    finish later than it answers (module docstring). `recorded`: the task's row holds its end
    already (the elements of a shared fan-out, recorded by the workers that ran them): only the
    step's settling is written.
    """

    key: TaskKey
    status: TaskStatus
    outputs: Mapping[str, Any] | None
    error: RunError | None
    at: datetime
    released: Sequence[str] = ()
    step_finished: bool = True
    ended: RunEnd | None = None
    log: AttemptLog | None = None
    pure: bool = False
    recorded: bool = False


@dataclass(frozen=True)
class Signal:
    """A signal sent to a run (`POST /runs/{id}/signals/{name}`), as a waiting step takes it."""

    name: str
    payload: Any


@dataclass(frozen=True)
class StoredRun:
    """What a store kept of a run: its checked inputs and the records of its tasks."""

    run_id: str
    inputs: Mapping[str, Any]
    steps: Sequence[StepRecord]
    # Steps whose fan-out is in the workers' hands, or ended there and not yet settled.
    shared: frozenset[str] = frozenset()


class RunStore(Protocol):
    async def run_started(self, run: NewRun) -> None:
        """The run starts: one pending task per step to run, the ready ones queued. A new
        run's start may be committed later than this answers (module docstring)."""

    async def committed(self, run_id: str) -> None:
        """Every transition of the run reported so far is committed; raises what refused one
        (`LeaseLostError`...)."""

    async def tasks_expanded(self, run_id: str, step_id: str, count: int) -> None:
        """A `for_each` step fans out into `count` tasks (indexes 0..count-1)."""

    async def task_started(self, run_id: str, key: TaskKey, attempt: int, at: datetime) -> None:
        """An attempt of a task starts."""

    async def attempt_failed(
        self,
        run_id: str,
        key: TaskKey,
        attempt: int,
        error: RunError,
        retry_at: datetime,
        log: AttemptLog | None = None,
    ) -> None:
        """An attempt failed and will be retried at `retry_at`; `log`: what it logged."""

    async def task_finished(self, run_id: str, finish: TaskFinish) -> None:
        """A task finished; its `released` steps are now ready.

        A failed task also cancels the unfinished tasks of its step (a fan-out stops at its
        first failed element). With `ended`, the same transaction ends the run as
        `run_finished` would.
        """

    async def run_finished(self, run_id: str, ended: RunEnd) -> None:
        """The run ends; its unfinished tasks are cancelled."""

    async def load(self, run_id: str) -> StoredRun:
        """The run's inputs and task records, to resume it (`UnknownRunError` if none)."""

    async def task_waiting(self, run_id: str, key: TaskKey, until: datetime | None) -> None:
        """A task waits (a sleep, a signal) until `until` at the latest (None: no limit)."""

    async def signal_taken(self, run_id: str, key: TaskKey, name: str) -> Signal | None:
        """The oldest signal `name` of the run no other task took, now taken by `key` (the one
        it took already, when it asks again); None when there is none."""

    async def run_parked(
        self,
        run_id: str,
        until: datetime | None,
        signals: Sequence[str],
        children: Sequence[str] = (),
        fan_outs: Sequence[str] = (),
    ) -> bool:
        """Only waits are left: the run gives up its lease until `until` (None: until a signal
        or a child wakes it), and any process resumes it then. False, parking nothing, when
        one of `signals` is already there to take, one of the child runs `children` has
        ended, or one of the shared fan-outs of the steps `fan_outs` has (the engine looks
        again at once). A store that cannot park (library use) waits in memory instead and
        answers False."""

    async def fan_out_shared(self, run_id: str, fan_out: SharedFanOut) -> bool:
        """Hand a fan-out's elements to the workers (any process may claim them); the run
        waits for them as for a child run. False when the store cannot: the engine runs the
        elements itself."""

    async def fan_out_result(self, run_id: str, step_id: str) -> FanOutResult | None:
        """A shared fan-out's end (its elements' outputs in order, or its first failure);
        None while elements are left."""
