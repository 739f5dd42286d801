"""Run forks: the run a fork was made from, shown in GET /runs/{id}.

Revision ID: 0006_run_forks
Revises: 0005_run_events
Create Date: 2026-12-01

`flow_runs.forked_from` is the id of the run `POST /runs/{id}/fork` copied the kept steps
from. No foreign key: the source may be deleted (retention, a flow deleted) while its fork
stays, and the id then tells where the fork came from all the same.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_run_forks"
down_revision: str | Sequence[str] | None = "0005_run_events"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: no table rewrite on any of the three databases.
    op.add_column("flow_runs", sa.Column("forked_from", sa.String(36), nullable=True))


def downgrade() -> None:
    op.drop_column("flow_runs", "forked_from")
