"""What the store and the services hand back: frozen values, separate from the store's rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from app.domain.concurrency import RunConcurrency
from app.domain.formats import Format
from app.domain.runs import FINISHED_RUN_STATUSES, RunError, RunStatus, TaskStatus


@dataclass(frozen=True)
class FlowVersion:
    name: str
    version: int
    description: str
    definition: Any  # the loaded document (YAML or JSON, as data)
    source: str  # the text as registered
    format: Format
    checksum: str  # sha256 of the source text
    created_at: datetime
    created_by: str | None = None  # the username of whoever registered the version
    change_notes: str | None = None
    owner: str | None = None  # the flow's owner (a username) and visibility, for reads
    public: bool = False


@dataclass(frozen=True)
class Registration:
    flow: FlowVersion
    created: bool  # False: the body was identical to the current version


@dataclass(frozen=True)
class FlowSummary:
    name: str
    version: int  # the latest
    description: str
    checksum: str
    created_at: datetime  # of the latest version
    owner: str | None = None
    public: bool = False


@dataclass(frozen=True)
class FlowRef:
    """A flow's row as a change of it needs it: which row, and whose."""

    id: int
    name: str
    owner_id: str


@dataclass(frozen=True)
class StepRef:
    id: str
    task: str
    depends_on: tuple[str, ...]
    handler_of: str | None


@dataclass(frozen=True)
class ValidationReport:
    name: str
    steps: tuple[StepRef, ...]
    edges: tuple[tuple[str, str], ...]  # (from, to): `to` waits for `from`


@dataclass(frozen=True)
class OmittedValue:
    """A value a listing left in the store, too large to answer: its size as the store keeps
    its JSON text."""

    bytes: int


@dataclass(frozen=True)
class StepRecord:
    step_id: str
    task_index: int
    status: TaskStatus
    attempts: int
    outputs: Any | None
    error: RunError | None
    started_at: datetime | None
    finished_at: datetime | None
    available_at: datetime | None = None  # when a queued task may run (a retry's due time)

    @property
    def duration_ms(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds() * 1000


@dataclass(frozen=True)
class LogLine:
    """A line a task logged (`context.logger`)."""

    at: datetime
    level: str  # debug, info, warning, error, critical
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"at": self.at.isoformat(), "level": self.level, "message": self.message}

    @classmethod
    def of(cls, data: dict[str, str]) -> LogLine:
        return cls(datetime.fromisoformat(data["at"]), data["level"], data["message"])


@dataclass(frozen=True)
class AttemptLog:
    """The lines a task logged in one attempt, kept with the attempt's outcome;
    `truncated` when MAX_TASK_LOG_BYTES cut them short."""

    attempt: int
    lines: tuple[LogLine, ...]
    truncated: bool = False


@dataclass(frozen=True)
class RunEvent:
    """One transition of a run or of one of its tasks, as the store recorded it with the
    transition (DESIGN.md section 8). `id` increases per run; `outputs` is a completed step's
    (or run's) outputs, read from its row (`OmittedValue` when too large to read)."""

    id: int
    run_id: str
    type: str  # RUN_EVENT | STEP_EVENT
    status: str  # a RunStatus (run) or TaskStatus (step) value
    at: datetime
    step_id: str | None = None
    task_index: int | None = None
    attempt: int | None = None
    outputs: Any | None = None
    error: RunError | None = None

    @property
    def ends_run(self) -> bool:
        """Whether this is the run's terminal event: nothing follows it."""
        return self.type == RUN_EVENT and self.status in FINISHED_RUN_STATUS_VALUES


RUN_EVENT, STEP_EVENT = "run", "step"
FINISHED_RUN_STATUS_VALUES = frozenset(status.value for status in FINISHED_RUN_STATUSES)


@dataclass(frozen=True)
class ChildRun:
    """A run a step of another run started (`- flow: Name`)."""

    run_id: str
    step_id: str
    status: RunStatus


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    flow: str
    version: int
    status: RunStatus
    inputs: Any
    outputs: Any | None
    error: RunError | None
    remaining_steps: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    steps: tuple[StepRecord, ...] = ()  # empty in listings
    created_by: str | None = None  # the username of whoever started it
    forked_from: str | None = None  # the run it was forked from
    parent_run_id: str | None = None  # a child run's parent (a step `- flow: Name`)
    parent_step_id: str | None = None
    children: tuple[ChildRun, ...] = ()  # the runs its steps started; empty in listings
    priority: int = 0  # higher is claimed first
    # The flow's `concurrency:` for this run: its key (the rendered `key`, or the flow's name)
    # and limit; None when the flow declares none.
    concurrency_key: str | None = None
    concurrency_limit: int | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_RUN_STATUSES

    @property
    def duration_ms(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds() * 1000

    @property
    def executed_steps(self) -> tuple[str, ...]:
        """Steps that ran (not skipped, not cancelled), in the order they finished."""
        ran = [
            step
            for step in self.steps
            if step.status in (TaskStatus.COMPLETED, TaskStatus.FAILED) and step.task_index == 0
        ]
        ran.sort(key=lambda step: (step.finished_at is None, step.finished_at))
        return tuple(step.step_id for step in ran)


class Creation(StrEnum):
    """What an attempt to create a run came to."""

    CREATED = "created"
    KEY_TAKEN = "key taken"  # an earlier request with the same idempotency key made its run
    STALE = "stale"  # its version is no longer the flow's latest, or no longer exists


# The wake-up time of a parked run that only a signal (or a child run) wakes: past any clock,
# within the range of every database's timestamp type.
SIGNAL_ONLY = datetime(9999, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Lineage:
    """Who started a run, and how many parents are above it (a child run's)."""

    user_id: str | None
    username: str
    is_admin: bool
    depth: int


@dataclass(frozen=True)
class SentSignal:
    run_id: str
    name: str
    sent_at: datetime


class Sending(StrEnum):
    """What sending a signal to a run came to."""

    KEPT = "kept"  # kept for the run, which takes it when a step waits for it
    WOKE = "woke"  # kept, and the run, parked, woke to take it
    UNKNOWN_RUN = "unknown run"
    RUN_ENDED = "run ended"
    TOO_MANY = "too many"  # the run has MAX_SIGNALS_PER_RUN signals already


@dataclass(frozen=True)
class NewRunRow:
    """A run to create, with one pending task per step."""

    run_id: str
    flow_name: str
    definition_id: int
    status: RunStatus  # queued, or running (with its lease) for /execute
    inputs: Any
    step_ids: Sequence[str]
    idempotency_key: str | None
    created_at: datetime
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    latest_only: bool = False  # created only while its version is the flow's latest
    created_by: str | None = None  # the id of the user who starts it
    traceparent: str | None = None  # the W3C trace context of the request that starts it
    # A fork: the run it comes from, and the tasks it keeps from it (finished, not run
    # again); `step_ids` are then only the steps it runs.
    forked_from: str | None = None
    kept_tasks: Sequence[StepRecord] = ()
    # A child run: the parent run and step that started it, and its depth (parents above it).
    parent_run_id: str | None = None
    parent_step_id: str | None = None
    depth: int = 0
    priority: int = 0  # higher is claimed first
    concurrency: RunConcurrency | None = None  # the flow's limit, when it declares one


@dataclass(frozen=True)
class Claim:
    """A run a worker claimed: a queued run, or one `taken_over` from a worker whose lease
    expired (it started before: its kept steps are read back)."""

    run_id: str
    definition_id: int
    inputs: Any
    taken_over: bool
    traceparent: str | None = None  # of the request that started the run
    # Taken over from no one: a parked run whose time or signal came, or a run released by a
    # worker that stopped; not a worker's death.
    woken: bool = False
    limited: bool = False  # it has a concurrency key: its end frees a slot of the key


@dataclass(frozen=True)
class StartedRun:
    run: RunRecord  # without its steps
    created: bool  # False: an earlier request with the same Idempotency-Key made it


@dataclass(frozen=True)
class RunPage:
    items: tuple[RunRecord, ...]
    next_cursor: str | None


@dataclass(frozen=True)
class WorkerRecord:
    id: str
    hostname: str
    pid: int
    started_at: datetime
    last_heartbeat: datetime
    claims_runs: bool


@dataclass(frozen=True)
class UserRecord:
    id: str
    username: str
    email: str | None
    is_admin: bool
    created_at: datetime
    password_hash: str | None = None


@dataclass(frozen=True)
class CredentialRecord:
    """An API key or a dashboard session, without its secret (kept only as a hash)."""

    id: str
    user_id: str
    username: str
    kind: str  # "key" | "session"
    name: str
    prefix: str
    scopes: tuple[str, ...] | None  # None: all of its user's rights
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class CredentialHolder:
    """A credential found by its secret, with what authenticating it needs of its user."""

    credential: CredentialRecord
    is_admin: bool
    user_deleted: bool


@dataclass(frozen=True)
class ShareRecord:
    username: str
    permission: str
    created_at: datetime


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    details: Any | None


@dataclass(frozen=True)
class AuditPage:
    items: tuple[AuditEntry, ...]
    next_cursor: str | None
