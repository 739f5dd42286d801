"""Run priority and concurrency limits: the claim takes queued runs by priority, then age,
and at most a key's limit of them run at once.

Revision ID: 0010_run_priority
Revises: 0009_subflows
Create Date: 2026-12-01

`flow_runs.priority` (higher first; 0 by default), `concurrency_key` and `concurrency_limit`
(the flow's `concurrency:` as the run was created; null without one), the claim's index on
(status, priority DESC, created_at), an index counting a key's running runs (of runs with a
key only, on PostgreSQL and SQLite), and
`concurrency_keys`: one row per key, the row a claimer locks while it counts the key's running
runs and takes more (docs/architecture.md, "Concurrency and priority").
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_run_priority"
down_revision: str | Sequence[str] | None = "0009_subflows"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A constant default: no table rewrite on PostgreSQL (11+) nor MariaDB (instant ADD).
    op.add_column(
        "flow_runs", sa.Column("priority", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column("flow_runs", sa.Column("concurrency_key", sa.String(200), nullable=True))
    op.add_column("flow_runs", sa.Column("concurrency_limit", sa.Integer(), nullable=True))
    op.create_index(
        "ix_flow_runs_status_priority_created_at",
        "flow_runs",
        ["status", sa.literal_column("priority").desc(), "created_at"],
    )
    # Partial where the database can: runs without a key pay nothing for it.
    with_key = sa.text("concurrency_key IS NOT NULL")
    op.create_index(
        "ix_flow_runs_status_concurrency_key",
        "flow_runs",
        ["status", "concurrency_key"],
        postgresql_where=with_key,
        sqlite_where=with_key,
    )
    op.create_table(
        "concurrency_keys",
        sa.Column("name", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_concurrency_keys")),
    )


def downgrade() -> None:
    op.drop_table("concurrency_keys")
    op.drop_index("ix_flow_runs_status_concurrency_key", table_name="flow_runs")
    op.drop_index("ix_flow_runs_status_priority_created_at", table_name="flow_runs")
    op.drop_column("flow_runs", "concurrency_limit")
    op.drop_column("flow_runs", "concurrency_key")
    op.drop_column("flow_runs", "priority")
