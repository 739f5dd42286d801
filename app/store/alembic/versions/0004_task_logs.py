"""Seeing runs: what tasks log, per attempt, and the trace a run belongs to.

Revision ID: 0004_task_logs
Revises: 0003_trust
Create Date: 2026-12-01

`task_logs` keeps the lines a task logged (`context.logger`) in each attempt, written in the
transaction that records the attempt's outcome (a retry, or the task's finish), bounded per
attempt by MAX_TASK_LOG_BYTES. `GET /runs/{id}/steps/{step_id}/logs` reads them. A row per
attempt that logged something: an attempt that logged nothing writes nothing.

`flow_runs.traceparent` is the W3C trace context of the request that started the run, so
that whichever process executes the run links its spans to that request.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.store.types import BigId, JsonDocument, UTCDateTime

revision: str = "0004_task_logs"
down_revision: str | Sequence[str] | None = "0003_trust"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "task_logs",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("step_id", sa.String(128), nullable=False),
        sa.Column("task_index", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("lines", JsonDocument, nullable=False),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_logs")),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["flow_runs.id"],
            name=op.f("fk_task_logs_run_id_flow_runs"),
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        op.f("ix_task_logs_run_id_step_id_task_index"),
        "task_logs",
        ["run_id", "step_id", "task_index"],
    )
    with op.batch_alter_table("flow_runs") as batch:
        batch.add_column(sa.Column("traceparent", sa.String(length=55), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("flow_runs") as batch:
        batch.drop_column("traceparent")
    op.drop_table("task_logs")  # with its index (MariaDB refuses to drop one a key needs)
