"""What the services need of the store, as ports they own; the store implements them
structurally (`app/store/run_store.py`, and `app/store/memory.py` in memory).

Every method is one transaction. A store that fails for a passing reason raises
`StoreUnavailableError`; no driver error reaches the services.
"""

from __future__ import annotations

from collections.abc import Awaitable, Collection, Sequence
from datetime import datetime
from typing import Any, Protocol

from app.domain.elements import ElementFinish, ElementWork
from app.domain.formats import Format
from app.domain.records import (
    AttemptLog,
    Claim,
    Creation,
    Lineage,
    NewRunRow,
    RunEvent,
    RunRecord,
    Sending,
    StepRecord,
)
from app.domain.runs import RunError, RunStatus


class RunRepository(Protocol):
    """The runs of the store, as this process (worker `owner` of its leases) sees them."""

    async def locate(self, name: str, number: int | None) -> tuple[int, int]:
        """(id, version) of the flow's latest version, or of version `number`;
        UnknownFlowError / UnknownVersionError."""

    async def source_of(self, definition_id: int) -> tuple[str, Format]:
        """(source, format) of a stored version."""

    async def create(self, run: NewRunRow) -> Creation:
        """Create the run (a queued one notifies the workers), unless its idempotency key is
        taken or its version is no longer current."""

    def create_later(self, run: NewRunRow) -> Awaitable[Creation] | None:
        """For a run this process executes at once (it holds its lease; no idempotency key):
        create it in the commit of its execution's first progress, not one of its own (a
        flow of pure steps commits once in all). Its `Creation` once committed; if the run
        was not created, its execution's writes raise `LeaseLostError` meanwhile. None where
        the store cannot: `create` it then."""

    async def create_all(self, batch: Sequence[NewRunRow]) -> Creation:
        """Create queued runs of one version in one transaction: all of them, or none when
        their version is stale (no idempotency keys)."""

    async def id_for_key(
        self, idempotency_key: str, flow_name: str, created_by: str | None
    ) -> str | None:
        """The run an earlier request of the same caller on the same flow made with the key."""

    async def get(self, run_id: str, *, with_steps: bool = True) -> RunRecord | None: ...

    async def task(self, run_id: str, step_id: str, task_index: int) -> StepRecord | None: ...

    async def task_logs(
        self, run_id: str, step_id: str, task_index: int, attempt: int | None
    ) -> list[AttemptLog]:
        """What the task logged, attempt by attempt (only `attempt`'s, when given)."""

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
        """Runs newest first, of the flows the user `viewer` may see (every flow with None);
        `after`: the (created_at, id) of the last seen; inputs and outputs past
        `value_limit` come back as `OmittedValue`; `parent`: only that run's children."""

    async def lineage(self, run_id: str) -> Lineage | None:
        """Who started the run, and how deep it is below its first parent (child runs)."""

    async def cursor_secret(self) -> bytes | None:
        """The key that signs run-list cursors, as the migrations keep it."""

    async def claim(self, now: datetime, lease_seconds: float, limit: int) -> list[Claim]:
        """Claim up to `limit` runs (those whose lease expired first, then queued ones),
        never one another claimer holds."""

    async def renew(
        self, run_ids: Collection[str], now: datetime, lease_seconds: float
    ) -> set[str]:
        """Extend the leases on `run_ids`; the ids of those no longer held."""

    async def release(self, run_ids: Sequence[str], now: datetime) -> None:
        """Give up the leases on `run_ids`: any worker may take those runs over at once."""

    async def expire_all(self, now: datetime) -> int:
        """Expire every running run's lease; how many."""

    async def end(
        self, run_id: str, status: RunStatus, at: datetime, error: RunError | None = None
    ) -> bool:
        """End a queued or running run (cancelled: its worker is notified); False when it
        was not active."""

    async def send_signal(
        self, run_id: str, name: str, payload: Any, at: datetime, max_signals: int
    ) -> Sending:
        """Keep a signal for an active run (at most `max_signals` per run), waking it when it
        is parked."""

    async def restart(
        self, run_id: str, now: datetime, lease_seconds: float, remaining_steps: int
    ) -> Claim | None:
        """A failed or cancelled run running again under this worker's lease, with
        `remaining_steps` to run (those it runs again); None when it was neither."""

    async def claim_elements(
        self, now: datetime, lease_seconds: float, limit: int
    ) -> list[ElementWork]:
        """Claim up to `limit` elements of shared fan-outs, each under a lease of its own:
        queued ones within their fan-out's `max_concurrency`, and those whose lease expired."""

    async def renew_elements(
        self, task_ids: Collection[int], now: datetime, lease_seconds: float
    ) -> set[int]:
        """Extend the leases on the elements; the ids of those no longer held."""

    async def release_elements(self, task_ids: Collection[int], now: datetime) -> None:
        """Give up the leases on the elements still held: any worker takes them over at
        once (this one stops them)."""

    async def finish_elements(self, finishes: Sequence[ElementFinish]) -> set[int]:
        """Record the ends of the elements still held (the others write nothing), waking a
        run whose fan-out they end; the ids of those recorded."""


class RunEvents(Protocol):
    """The events of runs, as the store recorded them with their transitions. Only a watched
    run's transitions are recorded: the store records nothing for the others."""

    async def watch(self, run_id: str) -> tuple[RunRecord, int] | None:
        """The run with every task, and the id of its latest event the record includes; from
        now on the run's transitions are recorded as events."""

    async def events_after(
        self, run_id: str, after: int, limit: int, value_limit: int
    ) -> list[RunEvent]:
        """The run's events after the id `after`, oldest first, at most `limit`; outputs
        whose JSON text is longer than `value_limit` come back as `OmittedValue`."""
