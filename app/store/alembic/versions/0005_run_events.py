"""Run events: the transitions of watched runs and of their tasks, for GET /runs/{id}/events.

Revision ID: 0005_run_events
Revises: 0004_task_logs
Create Date: 2026-12-01

`flow_runs.watched` is set when a client first asks for a run's events; from then on, each
transition the store writes of that run (a run running or ended; a task queued, running,
retried or finished) adds a row in the same transaction, so an event exists if and only if
its transition committed (docs/architecture.md, "Run events"). A run nobody watches writes
no event: its state is in its rows, which a stream's first snapshot reads. The global id is
the event's id; the (run_id, id) index serves a run's events in order and the foreign key.
Outputs are not copied: readers join the task's or the run's row.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.store.types import BigId, JsonDocument, UTCDateTime

revision: str = "0005_run_events"
down_revision: str | Sequence[str] | None = "0004_task_logs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A constant default: no table rewrite on PostgreSQL (11+) nor MariaDB (10.3+).
    op.add_column(
        "flow_runs",
        sa.Column("watched", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "run_events",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("type", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("step_id", sa.String(128), nullable=True),
        sa.Column("task_index", sa.Integer(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=True),
        sa.Column("error", JsonDocument, nullable=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_events")),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["flow_runs.id"],
            name=op.f("fk_run_events_run_id_flow_runs"),
            ondelete="CASCADE",
        ),
    )
    op.create_index(op.f("ix_run_events_run_id_id"), "run_events", ["run_id", "id"])


def downgrade() -> None:
    # The table takes its index along (MariaDB refuses to drop an index a foreign key needs).
    op.drop_table("run_events")
    with op.batch_alter_table("flow_runs") as batch:  # SQLite drops a column by a copy
        batch.drop_column("watched")
