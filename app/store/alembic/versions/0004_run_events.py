"""Run events: every transition of a run and of its tasks, for GET /runs/{id}/events.

Revision ID: 0004_run_events
Revises: 0003_trust
Create Date: 2026-12-01

Each transition the store writes (a run queued, running or ended; a task queued, running,
retried or finished) adds a row in the same transaction, so an event exists if and only if
its transition committed (docs/architecture.md, "Run events"). The global id is the event's
id; the (run_id, id) index serves a run's events in order and the foreign key. Outputs are
not copied: readers join the task's or the run's row. Runs from before keep no events: their
stream is their snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.store.types import BigId, JsonDocument, UTCDateTime

revision: str = "0004_run_events"
down_revision: str | Sequence[str] | None = "0003_trust"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
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
