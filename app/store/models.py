"""The tables (DESIGN.md section 4). Alembic owns the schema; these models mirror it.

`tests/store/test_migrations.py` proves that the models and the migrations agree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from app.store.types import BigId, JsonDocument, LongText, UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UserRow(Base):
    """A user: owns flows, holds API keys, starts runs. Deleted users stay, marked, so their
    name is never reused and history still says who did what."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str | None] = mapped_column(String(255), unique=True, nullable=True)
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class UserSettingsRow(Base):
    """A user's own settings (the dashboard's preferences): one JSON document per user."""

    __tablename__ = "user_settings"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    settings: Mapped[Any] = mapped_column(JsonDocument)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CredentialRow(Base):
    """An API key, or a dashboard session (a short-lived key held in a cookie).

    Only the secret's SHA-256 is kept: keys are 256 random bits, so no one can search for a
    secret that matches, and a fast hash keeps the lookup of every request cheap.
    """

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # "key" | "session"
    name: Mapped[str] = mapped_column(String(100), default="")
    prefix: Mapped[str] = mapped_column(String(16))  # the secret's first characters, shown
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[Any | None] = mapped_column(JsonDocument, nullable=True)  # None: all rights
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class FlowRow(Base):
    """A flow: its name, owner and visibility. Its versions are `flow_definitions` rows."""

    __tablename__ = "flows"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    is_public: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class FlowShareRow(Base):
    """A flow shared with a user, with a permission (view < run < edit < admin)."""

    __tablename__ = "flow_shares"
    __table_args__ = (UniqueConstraint("flow_id", "user_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    flow_id: Mapped[int] = mapped_column(BigId, ForeignKey("flows.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    permission: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AuditRow(Base):
    """One change to users, keys, shares or a flow's ownership, who made it and when."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(64))  # a username, or "cli"
    action: Mapped[str] = mapped_column(String(32))  # e.g. "key.revoke"
    target: Mapped[str] = mapped_column(String(255))
    details: Mapped[Any | None] = mapped_column(JsonDocument, nullable=True)


class SecretRow(Base):
    """Random values every process of the service shares (e.g. the key that signs cursors),
    made once by the migration that creates the table."""

    __tablename__ = "service_secrets"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class FlowDefinitionRow(Base):
    """One version of a flow definition."""

    __tablename__ = "flow_definitions"
    __table_args__ = (UniqueConstraint("name", "version"), Index(None, "created_by"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # Deleting a flow deletes its versions, and with them their runs.
    name: Mapped[str] = mapped_column(ForeignKey("flows.name", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[Any] = mapped_column(JsonDocument)
    source: Mapped[str] = mapped_column(LongText)
    format: Mapped[str] = mapped_column(String(8))
    checksum: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    change_notes: Mapped[str | None] = mapped_column(Text, nullable=True)
    # What starting a run needs, as SQL reads it (`app/dsl/start_spec.py`): PostgreSQL's
    # `flow_manager.start_run` starts runs without the service. None: a version stored before
    # it, that the migration could not describe.
    start_spec: Mapped[Any | None] = mapped_column(JsonDocument, nullable=True)


class FlowRunRow(Base):
    __tablename__ = "flow_runs"
    __table_args__ = (
        Index(None, "flow_name", "created_at"),
        Index(None, "status", "created_at"),
        # Runs to take over or wake: expired leases, and parked runs that are due.
        Index(None, "status", "lease_expires_at"),
        Index(None, "parent_run_id", "created_at"),  # a run's children; ?parent=
        Index(None, "created_at", "id"),
        Index(None, "lease_owner"),  # a worker renews (and on shutdown releases) its leases
        # A key repeats a request of the same caller on the same flow, no one else's.
        UniqueConstraint("idempotency_key", "flow_name", "created_by"),
        Index(None, "created_by"),
        # A concurrency key's running runs, counted under its lock (queries/queue.py). Only
        # runs with a key, where the database can tell (PostgreSQL, SQLite): the others pay
        # nothing for it.
        Index(
            None,
            "status",
            "concurrency_key",
            postgresql_where=text("concurrency_key IS NOT NULL"),
            sqlite_where=text("concurrency_key IS NOT NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    flow_name: Mapped[str] = mapped_column(String(64))
    definition_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("flow_definitions.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16))
    inputs: Mapped[Any] = mapped_column(JsonDocument)
    outputs: Mapped[Any | None] = mapped_column(JsonDocument, nullable=True)
    error: Mapped[Any | None] = mapped_column(JsonDocument, nullable=True)
    remaining_steps: Mapped[int] = mapped_column(Integer)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    # The worker executing the run, and until when: past it, any worker may take the run over.
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The W3C trace context of the request that started the run (its spans link to it).
    traceparent: Mapped[str | None] = mapped_column(String(55), nullable=True)
    # A client asked for the run's events: its transitions write them (queries/events.py).
    watched: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The run this one was forked from (POST /runs/{id}/fork); no foreign key: it may go first.
    forked_from: Mapped[str | None] = mapped_column(String(36), nullable=True)
    # A child run (a step `- flow: Name`): its parent run and step, and how many parents are
    # above it. No foreign key: the parent may be pruned first.
    parent_run_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    parent_step_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    depth: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # Higher is claimed first (POST /flows/{name}/runs `priority`); then oldest first.
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The flow's `concurrency:` as the run was created: the key (`<flow>` or `<flow>:<key>`)
    # and how many runs of it may run at once. None: the flow declares no limit.
    concurrency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    concurrency_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)

    definition: Mapped[FlowDefinitionRow] = relationship(lazy="raise")
    tasks: Mapped[list[TaskRunRow]] = relationship(
        lazy="raise", order_by="TaskRunRow.id", passive_deletes=True
    )


# The claim's path to queued runs: highest priority first, then oldest.
Index(
    "ix_flow_runs_status_priority_created_at",
    FlowRunRow.status,
    FlowRunRow.priority.desc(),
    FlowRunRow.created_at,
)


class TaskRunRow(Base):
    """One task of a run: a step, or one element of a fanned-out step."""

    __tablename__ = "task_runs"
    __table_args__ = (
        UniqueConstraint("run_id", "step_id", "task_index"),
        # Ready tasks (the `ready_tasks` gauge). Only queued ones, where the database can
        # tell: no other lookup of a run's tasks can take it (0013_queued_tasks_index).
        Index(
            None,
            "status",
            "available_at",
            postgresql_where=text("status = 'queued'"),
            sqlite_where=text("status = 'queued'"),
        ),
        # The elements of shared fan-outs still to run (queued, or running under a lease):
        # only they have a `lease_expires_at` (queries/elements.py). Partial where the
        # database can: the other tasks pay nothing for it.
        Index(
            None,
            "run_id",
            "step_id",
            "lease_expires_at",
            postgresql_where=text("lease_expires_at IS NOT NULL"),
            sqlite_where=text("lease_expires_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("flow_runs.id", ondelete="CASCADE"))
    step_id: Mapped[str] = mapped_column(String(128))
    task_index: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    inputs: Mapped[Any | None] = mapped_column(JsonDocument, nullable=True)
    outputs: Mapped[Any | None] = mapped_column(JsonDocument, nullable=True)
    error: Mapped[Any | None] = mapped_column(JsonDocument, nullable=True)
    available_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class FanOutRow(Base):
    """A fan-out handed to the workers (a shared fan-out): what its elements' expressions
    read, how many may run at once, and how many are left (queries/elements.py). Its row lock
    orders the claims and the ends of its elements; the end that leaves none (or fails) wakes
    the parked run, which then settles the step and deletes the row."""

    __tablename__ = "fan_outs"

    run_id: Mapped[str] = mapped_column(
        ForeignKey("flow_runs.id", ondelete="CASCADE"), primary_key=True
    )
    step_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    definition_id: Mapped[int] = mapped_column(BigId)
    scope: Mapped[Any] = mapped_column(JsonDocument)
    last_error: Mapped[Any | None] = mapped_column(JsonDocument, nullable=True)
    size: Mapped[int] = mapped_column(Integer)
    remaining: Mapped[int] = mapped_column(Integer)  # elements not yet completed
    running: Mapped[int] = mapped_column(Integer)  # elements claimed and not yet ended
    max_concurrency: Mapped[int] = mapped_column(Integer)
    failed: Mapped[bool] = mapped_column(Boolean)  # an element failed: the rest is cancelled
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TaskLogRow(Base):
    """What a task logged in one attempt (`context.logger`), kept with the attempt's outcome."""

    __tablename__ = "task_logs"
    __table_args__ = (Index(None, "run_id", "step_id", "task_index"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("flow_runs.id", ondelete="CASCADE"))
    step_id: Mapped[str] = mapped_column(String(128))
    task_index: Mapped[int] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer)
    lines: Mapped[Any] = mapped_column(JsonDocument)  # [{at, level, message}]
    truncated: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RunEventRow(Base):
    """One transition of a run or of one of its tasks, written in the transaction that makes
    it (docs/architecture.md, "Run events"). The global id orders a run's events: every write
    of a run first locks its row, so a run's events get their ids in commit order."""

    __tablename__ = "run_events"
    __table_args__ = (Index(None, "run_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("flow_runs.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(8))  # "run" | "step"
    status: Mapped[str] = mapped_column(String(16))
    step_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    task_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    attempt: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # A failure's error; outputs are not copied: a reader joins the task's (or run's) row.
    error: Mapped[Any | None] = mapped_column(JsonDocument, nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class RunSignalRow(Base):
    """A signal sent to a run (POST /runs/{id}/signals/{name}), kept until a waiting step
    takes it: `taken_step`/`taken_index` name that step's task, so a signal is taken once."""

    __tablename__ = "run_signals"
    __table_args__ = (Index(None, "run_id", "name", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("flow_runs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    payload: Mapped[Any | None] = mapped_column(JsonDocument, nullable=True)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)
    taken_step: Mapped[str | None] = mapped_column(String(128), nullable=True)
    taken_index: Mapped[int | None] = mapped_column(Integer, nullable=True)


class ScheduleRow(Base):
    """A schedule of a flow (DESIGN.md section 9): a cron tick starts a run as `created_by`.

    `next_fire_at` is the tick it waits for (null while disabled): the scheduler takes the rows
    past it `FOR UPDATE SKIP LOCKED`, starts each tick's run and advances the row in one
    transaction (docs/architecture.md, "Schedules")."""

    __tablename__ = "schedules"
    __table_args__ = (
        Index(None, "next_fire_at"),  # the scheduler's path to due rows
        Index(None, "flow_name", "created_at"),
        Index(None, "created_by"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # Deleting a flow deletes its schedules.
    flow_name: Mapped[str] = mapped_column(ForeignKey("flows.name", ondelete="CASCADE"))
    cron: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    inputs: Mapped[Any] = mapped_column(JsonDocument)
    overlap: Mapped[str] = mapped_column(String(16))
    enabled: Mapped[bool] = mapped_column(Boolean)
    origin: Mapped[str] = mapped_column(String(16))  # "api" | "definition"
    created_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_fire_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The run the last tick started; no foreign key: retention may delete it first.
    last_run_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class ConcurrencyKeyRow(Base):
    """A concurrency key some run was created with: the row a claim locks to count the key's
    running runs and take more of them, one claimer at a time (queries/queue.py)."""

    __tablename__ = "concurrency_keys"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)


class WorkerRow(Base):
    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_heartbeat: Mapped[datetime] = mapped_column(UTCDateTime)
    # It claims queued runs (a standalone worker, or an API process with its embedded worker).
    claims_runs: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


# The tables themselves, for Core statements: on the hot paths the ORM's statement building
# costs more than the statements.
DEFINITIONS = cast(Table, FlowDefinitionRow.__table__)
FLOWS = cast(Table, FlowRow.__table__)
SHARES = cast(Table, FlowShareRow.__table__)
USERS = cast(Table, UserRow.__table__)
CREDENTIALS = cast(Table, CredentialRow.__table__)
RUNS = cast(Table, FlowRunRow.__table__)
TASKS = cast(Table, TaskRunRow.__table__)
TASK_LOGS = cast(Table, TaskLogRow.__table__)
FAN_OUTS = cast(Table, FanOutRow.__table__)
EVENTS = cast(Table, RunEventRow.__table__)
SIGNALS = cast(Table, RunSignalRow.__table__)
SCHEDULES = cast(Table, ScheduleRow.__table__)
CONCURRENCY_KEYS = cast(Table, ConcurrencyKeyRow.__table__)
