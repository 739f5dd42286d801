"""Sub-flows: a child run's parent, the step of the parent that started it, and its depth.

Revision ID: 0009_subflows
Revises: 0008_schedules
Create Date: 2026-12-01

A step `- flow: Name` starts a child run (DESIGN.md section 9). `parent_run_id` and
`parent_step_id` link it to the parent run and step; no foreign key, as for `forked_from`: a
parent pruned first leaves its child's link as a record of where it came from. `depth` counts
the parents above a run (0 for a run started otherwise), checked against MAX_SUBFLOW_DEPTH when
a child is started. The index serves `GET /runs/{id}`'s children and `GET /runs?parent=`.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_subflows"
down_revision: str | Sequence[str] | None = "0008_schedules"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, or a constant default: no table rewrite on any of the three databases.
    op.add_column("flow_runs", sa.Column("parent_run_id", sa.String(36), nullable=True))
    op.add_column("flow_runs", sa.Column("parent_step_id", sa.String(128), nullable=True))
    op.add_column("flow_runs", sa.Column("depth", sa.Integer(), nullable=False, server_default="0"))
    op.create_index(
        op.f("ix_flow_runs_parent_run_id_created_at"), "flow_runs", ["parent_run_id", "created_at"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_flow_runs_parent_run_id_created_at"), table_name="flow_runs")
    with op.batch_alter_table("flow_runs") as batch:  # SQLite drops a column by a copy
        batch.drop_column("depth")
        batch.drop_column("parent_step_id")
        batch.drop_column("parent_run_id")
