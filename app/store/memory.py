"""`MemoryRunStore`: both run ports in memory, with leases: the contract suite's fourth store.

It holds no SQL. Several stores (one per worker `owner`) share one `MemoryRuns`, as the
processes of a deployment share a database; each call runs without an `await` between its
reads and its writes, which is what a transaction gives the SQL store. The engine's own
transitions are `InMemoryRunStore`'s, made only while the writer holds the run's lease.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from app.domain.clock import utcnow
from app.domain.concurrency import RunConcurrency, shown_key
from app.domain.elements import ElementFinish, ElementWork, FanOutResult, SharedFanOut
from app.domain.formats import Format
from app.domain.records import (
    SIGNAL_ONLY,
    AttemptLog,
    ChildRun,
    Claim,
    Creation,
    Lineage,
    NewRunRow,
    OmittedValue,
    RunRecord,
    Sending,
    StepRecord,
)
from app.domain.runs import (
    ACTIVE_RUN_STATUSES,
    RETRYABLE_RUN_STATUSES,
    RunError,
    RunStatus,
    TaskKey,
    TaskStatus,
)
from app.engine.memory_store import InMemoryRunStore, MemoryRun, MemoryTask, SentSignal
from app.engine.store import NewRun, RunEnd, Signal, StoredRun, TaskFinish
from app.errors import LeaseLostError, UnknownFlowError, UnknownRunError, UnknownVersionError


@dataclass(frozen=True)
class MemoryVersion:
    id: int
    name: str
    version: int
    source: str
    format: Format


@dataclass
class _Entry:
    """What the store keeps of a run besides what the engine's store keeps."""

    definition_id: int
    idempotency_key: str | None
    created_at: datetime
    created_by: str | None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    traceparent: str | None = None
    # A restarted run's count of steps to run, until its resumed execution starts and its
    # tasks tell it (the failed and cancelled ones it runs again count as finished until then).
    restarted_remaining: int | None = None
    forked_from: str | None = None
    parent_run_id: str | None = None
    parent_step_id: str | None = None
    depth: int = 0
    priority: int = 0
    concurrency: RunConcurrency | None = None


@dataclass
class MemoryRuns:
    """The shared state: flow versions, who may see which flow, runs."""

    versions: dict[int, MemoryVersion] = field(default_factory=dict)
    visible: dict[str, set[str]] = field(default_factory=dict)  # flow -> user ids; "*": all
    usernames: dict[str, str] = field(default_factory=dict)
    entries: dict[str, _Entry] = field(default_factory=dict)
    engine: InMemoryRunStore = field(default_factory=lambda: InMemoryRunStore(max_runs=10**9))
    cursor_secret: bytes | None = b"memory"

    def add_version(self, name: str, source: str = "", format: Format = "yaml") -> MemoryVersion:
        number = 1 + max((v.version for v in self.versions.values() if v.name == name), default=0)
        version = MemoryVersion(len(self.versions) + 1, name, number, source, format)
        self.versions[version.id] = version
        return version


class MemoryRunStore:
    def __init__(self, runs: MemoryRuns, owner: str) -> None:
        self.state = runs
        self.owner = owner

    # Starting runs.

    async def locate(self, name: str, number: int | None) -> tuple[int, int]:
        of_flow = [v for v in self.state.versions.values() if v.name == name]
        found = [v for v in of_flow if number is None or v.version == number]
        if found:
            latest = max(found, key=lambda v: v.version)
            return latest.id, latest.version
        if number is not None and of_flow:
            raise UnknownVersionError(f"flow {name!r} has no version {number}")
        raise UnknownFlowError(f"no flow is registered under the name {name!r}")

    async def source_of(self, definition_id: int) -> tuple[str, Format]:
        version = self.state.versions[definition_id]
        return version.source, version.format

    def create_later(self, run: NewRunRow) -> Awaitable[Creation] | None:
        return None  # nothing to save: `create` writes a dictionary

    async def create(self, run: NewRunRow) -> Creation:
        version = self.state.versions.get(run.definition_id)
        if version is None or (run.latest_only and self._newer_than(version)):
            return Creation.STALE
        key = run.idempotency_key
        if key is not None and self._id_for_key(key, run.flow_name, run.created_by):
            return Creation.KEY_TAKEN
        self.state.entries[run.run_id] = _Entry(
            run.definition_id,
            run.idempotency_key,
            run.created_at,
            run.created_by,
            run.lease_owner,
            run.lease_expires_at,
            run.traceparent,
            # A fork has only its steps to run left, until its resumed execution starts.
            restarted_remaining=len(run.step_ids) if run.forked_from else None,
            forked_from=run.forked_from,
            parent_run_id=run.parent_run_id,
            parent_step_id=run.parent_step_id,
            depth=run.depth,
            priority=run.priority,
            concurrency=run.concurrency,
        )
        record = MemoryRun(run.run_id, run.flow_name, run.inputs, run.status, None)
        for kept in run.kept_tasks:
            task_key = TaskKey(kept.step_id, kept.task_index)
            record.tasks[task_key] = MemoryTask(
                task_key,
                kept.status,
                kept.attempts,
                kept.outputs,
                kept.error,
                started_at=kept.started_at,
                finished_at=kept.finished_at,
            )
        for step_id in run.step_ids:
            record.tasks[TaskKey(step_id)] = MemoryTask(TaskKey(step_id), TaskStatus.PENDING)
        self.state.engine.runs[run.run_id] = record
        return Creation.CREATED

    async def create_all(self, batch: Sequence[NewRunRow]) -> Creation:
        version = self.state.versions.get(batch[0].definition_id)
        if version is None or (batch[0].latest_only and self._newer_than(version)):
            return Creation.STALE
        for run in batch:
            await self.create(run)
        return Creation.CREATED

    async def id_for_key(
        self, idempotency_key: str, flow_name: str, created_by: str | None
    ) -> str | None:
        return self._id_for_key(idempotency_key, flow_name, created_by)

    # Reading runs.

    async def get(self, run_id: str, *, with_steps: bool = True) -> RunRecord | None:
        if run_id not in self.state.entries:
            return None
        return self._record(run_id, with_steps=with_steps)

    async def task(self, run_id: str, step_id: str, task_index: int) -> StepRecord | None:
        run = self.state.engine.runs.get(run_id)
        task = None if run is None else run.tasks.get(TaskKey(step_id, task_index))
        return None if task is None else task.record()

    async def task_logs(
        self, run_id: str, step_id: str, task_index: int, attempt: int | None
    ) -> list[AttemptLog]:
        if run_id not in self.state.entries:
            return []
        task = self._run(run_id).tasks.get(TaskKey(step_id, task_index))
        logs = [] if task is None else task.logs
        return [log for log in logs if attempt is None or log.attempt == attempt]

    async def page(
        self,
        *,
        flow: str | None,
        status: RunStatus | None,
        limit: int,
        after: tuple[datetime, str] | None,
        viewer: str | None,
        value_limit: int | None = None,
        parent: str | None = None,
    ) -> list[RunRecord]:
        found = []
        for run_id, entry in self.state.entries.items():
            run = self.state.engine.runs[run_id]
            if (flow is not None and run.flow != flow) or (status not in (None, run.status)):
                continue
            if parent is not None and entry.parent_run_id != parent:
                continue
            if after is not None and (entry.created_at, run_id) >= after:
                continue
            if viewer is not None and not self._visible(run.flow, viewer):
                continue
            found.append((entry.created_at, run_id))
        found.sort(reverse=True)
        records = [self._record(run_id, with_steps=False) for _, run_id in found[:limit]]
        if value_limit is None:
            return records
        return [_bounded(record, value_limit) for record in records]

    async def lineage(self, run_id: str) -> Lineage | None:
        entry = self.state.entries.get(run_id)
        if entry is None:
            return None
        username = self.state.usernames.get(entry.created_by or "", "")
        return Lineage(entry.created_by, username, False, entry.depth)

    async def cursor_secret(self) -> bytes | None:
        return self.state.cursor_secret

    # The queue and leases.

    async def claim(self, now: datetime, lease_seconds: float, limit: int) -> list[Claim]:
        def oldest(status: RunStatus, expired: bool) -> list[str]:
            ids = [
                run_id
                for run_id, entry in self.state.entries.items()
                if self._run(run_id).status is status
                and (not expired or entry.lease_expires_at is None or entry.lease_expires_at <= now)
            ]
            return sorted(ids, key=lambda run_id: self.state.entries[run_id].created_at)

        due = oldest(RunStatus.RUNNING, expired=True)
        due.sort(key=lambda run_id: self.state.entries[run_id].lease_expires_at or now)
        chosen = due[:limit]
        chosen += self._queued_within_limits(limit - len(chosen))
        claims = []
        for run_id in chosen:
            run = self._run(run_id)
            entry = self.state.entries[run_id]
            claims.append(
                Claim(
                    run_id,
                    entry.definition_id,
                    run.inputs,
                    taken_over=run.status is RunStatus.RUNNING,
                    traceparent=entry.traceparent,
                    woken=run.status is RunStatus.RUNNING and entry.lease_owner is None,
                    limited=entry.concurrency is not None,
                )
            )
            run.status = RunStatus.RUNNING
            self._lease(run_id, now, lease_seconds)
        return claims

    def _queued_within_limits(self, limit: int) -> list[str]:
        """Up to `limit` queued runs, highest priority first, then oldest, past those whose
        concurrency key has its limit of runs running (those chosen here counted)."""
        entries = self.state.entries
        running = Counter(
            entry.concurrency.stored_key
            for run_id, entry in entries.items()
            if entry.concurrency is not None and self._run(run_id).status is RunStatus.RUNNING
        )
        queued = [run_id for run_id in entries if self._run(run_id).status is RunStatus.QUEUED]
        queued.sort(key=lambda run_id: (-entries[run_id].priority, entries[run_id].created_at))
        chosen: list[str] = []
        closed: set[str] = set()  # full: their later runs wait too
        for run_id in queued:
            if len(chosen) >= limit:
                break
            concurrency = entries[run_id].concurrency
            if concurrency is None:
                chosen.append(run_id)
                continue
            key = concurrency.stored_key
            if key not in closed and running[key] < concurrency.limit:
                running[key] += 1
                chosen.append(run_id)
            else:
                closed.add(key)
        return chosen

    async def renew(
        self, run_ids: Collection[str], now: datetime, lease_seconds: float
    ) -> set[str]:
        lost = set()
        for run_id in run_ids:
            entry = self.state.entries.get(run_id)
            held = entry is not None and entry.lease_owner == self.owner
            if held and self._run(run_id).status is RunStatus.RUNNING:
                self._lease(run_id, now, lease_seconds)
            else:
                lost.add(run_id)
        return lost

    async def release(self, run_ids: Sequence[str], now: datetime) -> None:
        for run_id in run_ids:
            entry = self.state.entries.get(run_id)
            if entry is not None and entry.lease_owner == self.owner:
                entry.lease_owner, entry.lease_expires_at = None, now

    async def expire_all(self, now: datetime) -> int:
        running = [
            entry
            for run_id, entry in self.state.entries.items()
            if self._run(run_id).status is RunStatus.RUNNING and entry.lease_owner is not None
        ]
        for entry in running:
            entry.lease_owner, entry.lease_expires_at = None, now
        return len(running)

    # Changing runs.

    async def end(
        self, run_id: str, status: RunStatus, at: datetime, error: RunError | None = None
    ) -> bool:
        run = self.state.engine.runs.get(run_id)
        if run is None or run.status not in ACTIVE_RUN_STATUSES:
            return False
        await self.state.engine.run_finished(run_id, RunEnd(status, None, error, at))
        self._let_go(run_id)
        return True

    async def send_signal(
        self, run_id: str, name: str, payload: Any, at: datetime, max_signals: int
    ) -> Sending:
        run = self.state.engine.runs.get(run_id)
        if run is None or run_id not in self.state.entries:
            return Sending.UNKNOWN_RUN
        if run.status not in ACTIVE_RUN_STATUSES:
            return Sending.RUN_ENDED
        if len(run.signals) >= max_signals:
            return Sending.TOO_MANY
        run.signals.append(SentSignal(Signal(name, payload)))
        entry = self.state.entries[run_id]
        parked = entry.lease_owner is None and run.status is RunStatus.RUNNING
        if parked and entry.lease_expires_at is not None and entry.lease_expires_at > at:
            entry.lease_expires_at = at
            return Sending.WOKE
        return Sending.KEPT

    async def restart(
        self, run_id: str, now: datetime, lease_seconds: float, remaining_steps: int
    ) -> Claim | None:
        run = self.state.engine.runs.get(run_id)
        if run is None or run.status not in RETRYABLE_RUN_STATUSES:
            return None
        run.status = RunStatus.RUNNING
        run.finished_at = run.error = None
        self._lease(run_id, now, lease_seconds)
        entry = self.state.entries[run_id]
        entry.restarted_remaining = remaining_steps
        return Claim(
            run_id, entry.definition_id, None, taken_over=True, traceparent=entry.traceparent
        )

    # The engine's transitions, under the run's lease.

    async def load(self, run_id: str) -> StoredRun:
        if run_id not in self.state.entries:
            raise UnknownRunError(f"no run has the id {run_id!r}")
        return await self.state.engine.load(run_id)

    async def committed(self, run_id: str) -> None:
        """Nothing waits: every transition is applied as it is reported."""

    async def run_started(self, run: NewRun) -> None:
        self._hold(run.run_id)
        self.state.entries[run.run_id].restarted_remaining = None
        entry_run = self._run(run.run_id)
        steps = set(run.steps)
        kept = {key: task for key, task in entry_run.tasks.items() if key.step_id not in steps}
        await self.state.engine.run_started(run)
        started = self._run(run.run_id)
        if not run.resumed:  # the tasks `create` made stay in definition order
            started.tasks = {**kept, **started.tasks}

    async def tasks_expanded(self, run_id: str, step_id: str, count: int) -> None:
        if count <= 1:  # nothing to write
            return
        self._hold(run_id)
        await self.state.engine.tasks_expanded(run_id, step_id, count)

    async def task_started(self, run_id: str, key: TaskKey, attempt: int, at: datetime) -> None:
        self._hold(run_id)
        await self.state.engine.task_started(run_id, key, attempt, at)

    async def attempt_failed(
        self,
        run_id: str,
        key: TaskKey,
        attempt: int,
        error: RunError,
        retry_at: datetime,
        log: AttemptLog | None = None,
    ) -> None:
        self._hold(run_id)
        await self.state.engine.attempt_failed(run_id, key, attempt, error, retry_at, log)

    async def task_finished(self, run_id: str, finish: TaskFinish) -> None:
        self._hold(run_id)
        await self.state.engine.task_finished(run_id, finish)
        if finish.ended is not None:
            self._let_go(run_id)

    async def run_finished(self, run_id: str, ended: RunEnd) -> None:
        self._hold(run_id)
        await self.state.engine.run_finished(run_id, ended)
        self._let_go(run_id)

    async def task_waiting(self, run_id: str, key: TaskKey, until: datetime | None) -> None:
        self._hold(run_id)
        await self.state.engine.task_waiting(run_id, key, until)

    async def signal_taken(self, run_id: str, key: TaskKey, name: str) -> Signal | None:
        self._hold(run_id)
        return await self.state.engine.signal_taken(run_id, key, name)

    async def run_parked(
        self,
        run_id: str,
        until: datetime | None,
        signals: Sequence[str],
        children: Sequence[str] = (),
        fan_outs: Sequence[str] = (),
    ) -> bool:
        self._hold(run_id)
        run = self._run(run_id)
        if any(sent.taken_by is None and sent.signal.name in signals for sent in run.signals):
            return False
        runs = self.state.engine.runs
        if any(child not in runs or runs[child].finished_at is not None for child in children):
            return False
        entry = self.state.entries[run_id]
        entry.lease_owner, entry.lease_expires_at = None, until or SIGNAL_ONLY
        return True

    async def fan_out_shared(self, run_id: str, fan_out: SharedFanOut) -> bool:
        """Not shared in memory: the run's own worker runs every element (unit tests)."""
        return False

    async def fan_out_result(self, run_id: str, step_id: str) -> FanOutResult | None:
        return None

    # Shared fan-outs' elements: none in memory (`fan_out_shared` declines).

    async def claim_elements(
        self, now: datetime, lease_seconds: float, limit: int
    ) -> list[ElementWork]:
        return []

    async def renew_elements(
        self, task_ids: Collection[int], now: datetime, lease_seconds: float
    ) -> set[int]:
        return set(task_ids)

    async def release_elements(self, task_ids: Collection[int], now: datetime) -> None:
        return None

    async def finish_elements(self, finishes: Sequence[ElementFinish]) -> set[int]:
        return set()

    async def aclose(self) -> None:
        return None

    # Helpers.

    def _hold(self, run_id: str) -> None:
        entry = self.state.entries.get(run_id)
        held = (
            entry is not None
            and entry.lease_owner == self.owner
            and self._run(run_id).status is RunStatus.RUNNING
            and entry.lease_expires_at is not None
            and entry.lease_expires_at > utcnow()
        )
        if not held:
            raise LeaseLostError(f"run {run_id}: this worker no longer holds its lease")

    def _run(self, run_id: str) -> MemoryRun:
        return self.state.engine.runs[run_id]

    def _lease(self, run_id: str, now: datetime, lease_seconds: float) -> None:
        entry = self.state.entries[run_id]
        entry.lease_owner = self.owner
        entry.lease_expires_at = now + timedelta(seconds=lease_seconds)

    def _let_go(self, run_id: str) -> None:
        """The run ended: no lease; its parent, if parked, wakes."""
        entry = self.state.entries[run_id]
        entry.lease_owner = entry.lease_expires_at = None
        parent = self.state.entries.get(entry.parent_run_id or "")
        if parent is not None and parent.lease_owner is None and parent.lease_expires_at:
            parent.lease_expires_at = min(parent.lease_expires_at, utcnow())

    def _newer_than(self, version: MemoryVersion) -> bool:
        return any(
            v.name == version.name and v.version > version.version
            for v in self.state.versions.values()
        )

    def _id_for_key(self, key: str, flow_name: str, created_by: str | None) -> str | None:
        for run_id, entry in self.state.entries.items():
            same = (entry.idempotency_key, entry.created_by) == (key, created_by)
            if same and self._run(run_id).flow == flow_name:
                return run_id
        return None

    def _visible(self, flow: str, viewer: str) -> bool:
        allowed = self.state.visible.get(flow, set())
        return "*" in allowed or viewer in allowed

    def _record(self, run_id: str, *, with_steps: bool) -> RunRecord:
        entry = self.state.entries[run_id]
        run = self._run(run_id)
        steps = tuple(task.record() for task in run.tasks.values()) if with_steps else ()
        ended = run.finished_at is not None and run.status not in ACTIVE_RUN_STATUSES
        if ended:
            remaining = 0
        elif entry.restarted_remaining is not None:
            remaining = entry.restarted_remaining
        else:
            remaining = run.remaining_steps
        return RunRecord(
            run_id=run_id,
            flow=run.flow,
            version=self.state.versions[entry.definition_id].version,
            status=run.status,
            inputs=run.inputs,
            outputs=run.outputs,
            error=run.error,
            remaining_steps=remaining,
            created_at=entry.created_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
            steps=steps,
            created_by=self.state.usernames.get(entry.created_by or ""),
            forked_from=entry.forked_from,
            parent_run_id=entry.parent_run_id,
            parent_step_id=entry.parent_step_id,
            children=self._children(run_id) if with_steps else (),
            priority=entry.priority,
            concurrency_key=(
                None
                if entry.concurrency is None
                else shown_key(run.flow, entry.concurrency.stored_key)
            ),
            concurrency_limit=None if entry.concurrency is None else entry.concurrency.limit,
        )

    def _children(self, run_id: str) -> tuple[ChildRun, ...]:
        children = [
            (entry.created_at, child_id, entry.parent_step_id or "")
            for child_id, entry in self.state.entries.items()
            if entry.parent_run_id == run_id
        ]
        return tuple(
            ChildRun(child_id, step_id, self._run(child_id).status)
            for _, child_id, step_id in sorted(children)
        )


def _bounded(record: RunRecord, limit: int) -> RunRecord:
    """The record with its inputs and outputs past `limit` bytes of JSON left out."""

    def bounded(value: Any) -> Any:
        size = len(json.dumps(value)) if value is not None else 0
        return OmittedValue(size) if size > limit else value

    return replace(record, inputs=bounded(record.inputs), outputs=bounded(record.outputs))
