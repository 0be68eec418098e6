"""sweeps: the sweeps table, runs.sweep_id (a sweep's runs are ordinary runs, tagged) and
shares.sweep_id (a share link to a sweep's map)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


# Plain nullable columns without foreign-key constraints: SQLite cannot add a constraint to
# an existing table without copying it (which would cascade-delete every run's epochs), and
# the store keeps the tags consistent itself (a sweep is never deleted before its runs).


def upgrade() -> None:
    op.create_table(
        "sweeps",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("request", _json(), nullable=False),
        sa.Column("axes", _json(), nullable=False),
        sa.Column("seeds", _json(), nullable=False),
        sa.Column("cells", _json(), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sweeps_created_at", "sweeps", ["created_at"])
    op.add_column("runs", sa.Column("sweep_id", sa.String(length=32), nullable=True))
    op.create_index("ix_runs_sweep_id", "runs", ["sweep_id"])
    op.add_column("shares", sa.Column("sweep_id", sa.String(length=32), nullable=True))


def downgrade() -> None:
    op.drop_column("shares", "sweep_id")
    op.drop_index("ix_runs_sweep_id", table_name="runs")
    op.drop_column("runs", "sweep_id")
    op.drop_index("ix_sweeps_created_at", table_name="sweeps")
    op.drop_table("sweeps")
