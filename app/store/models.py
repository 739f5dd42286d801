"""The tables (DESIGN.md section 4). Alembic owns the schema; these models mirror it.

`tests/store/test_migrations.py` proves that the models and the migrations agree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import ForeignKey, Index, Integer, MetaData, String, Table, Text, UniqueConstraint
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


class FlowDefinitionRow(Base):
    """One version of a flow definition."""

    __tablename__ = "flow_definitions"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[Any] = mapped_column(JsonDocument)
    source: Mapped[str] = mapped_column(LongText)
    format: Mapped[str] = mapped_column(String(8))
    checksum: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class FlowRunRow(Base):
    __tablename__ = "flow_runs"
    __table_args__ = (
        Index(None, "flow_name", "created_at"),
        Index(None, "status", "created_at"),
        Index(None, "created_at", "id"),
        Index(None, "lease_owner"),  # a worker renews (and on shutdown releases) its leases
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
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True, nullable=True)
    # The worker executing the run, and until when: past it, any worker may take the run over.
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    definition: Mapped[FlowDefinitionRow] = relationship(lazy="raise")
    tasks: Mapped[list[TaskRunRow]] = relationship(
        lazy="raise", order_by="TaskRunRow.id", passive_deletes=True
    )


class TaskRunRow(Base):
    """One task of a run: a step, or one element of a fanned-out step."""

    __tablename__ = "task_runs"
    __table_args__ = (
        UniqueConstraint("run_id", "step_id", "task_index"),
        Index(None, "status", "available_at"),  # the claim query's path to ready work
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


class WorkerRow(Base):
    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_heartbeat: Mapped[datetime] = mapped_column(UTCDateTime)


# The tables themselves, for Core statements: on the hot paths the ORM's statement building
# costs more than the statements.
DEFINITIONS = cast(Table, FlowDefinitionRow.__table__)
RUNS = cast(Table, FlowRunRow.__table__)
TASKS = cast(Table, TaskRunRow.__table__)
