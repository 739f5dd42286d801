"""Shared fan-outs: the elements of a large `for_each` are claimable by any worker.

Revision ID: 0012_shared_fan_outs
Revises: 0011_sql_start_run
Create Date: 2026-12-02

`fan_outs`: one row per fan-out handed to the workers (what its elements' expressions read,
its concurrency, how many elements are left), and an index on `task_runs` (run_id, step_id,
lease_expires_at) over the elements still to run: only they have a `lease_expires_at`
(partial on PostgreSQL and SQLite; docs/architecture.md, "Fan-out across workers").
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.store.types import BigId, JsonDocument, UTCDateTime

revision: str = "0012_shared_fan_outs"
down_revision: str | Sequence[str] | None = "0011_sql_start_run"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    leased = sa.text("lease_expires_at IS NOT NULL")
    op.create_index(
        "ix_task_runs_run_id_step_id_lease_expires_at",
        "task_runs",
        ["run_id", "step_id", "lease_expires_at"],
        postgresql_where=leased,
        sqlite_where=leased,
    )
    op.create_table(
        "fan_outs",
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("step_id", sa.String(128), nullable=False),
        sa.Column("definition_id", BigId, nullable=False),
        sa.Column("scope", JsonDocument, nullable=False),
        sa.Column("last_error", JsonDocument, nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("remaining", sa.Integer(), nullable=False),
        sa.Column("running", sa.Integer(), nullable=False),
        sa.Column("max_concurrency", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["flow_runs.id"],
            name=op.f("fk_fan_outs_run_id_flow_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "step_id", name=op.f("pk_fan_outs")),
    )


def downgrade() -> None:
    op.drop_table("fan_outs")
    op.drop_index("ix_task_runs_run_id_step_id_lease_expires_at", table_name="task_runs")
