"""alerts: alert_deliveries (one alert for one webhook receiver, retried until delivered or
given up), alert_run_state (how far the scanner has read each run's event log) and
alert_scanner (when alerts started on this database)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_deliveries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column(
            "body",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=False),
        sa.Column("claimed_at", sa.Float(), nullable=True),
        sa.Column("delivered_at", sa.Float(), nullable=True),
        sa.Column("failed_at", sa.Float(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.UniqueConstraint("key", "url", name="uq_alert_deliveries_key_url"),
    )
    op.create_index(
        "ix_alert_deliveries_due",
        "alert_deliveries",
        ["delivered_at", "failed_at", "next_attempt_at"],
    )
    op.create_table(
        "alert_run_state",
        sa.Column(
            "run_id",
            sa.String(32),
            sa.ForeignKey("runs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("verdict_kind", sa.String(32), nullable=False),
        sa.Column("cause", sa.String(32), nullable=True),
    )
    op.create_table(
        "alert_scanner",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("started_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("alert_scanner")
    op.drop_table("alert_run_state")
    op.drop_index("ix_alert_deliveries_due", table_name="alert_deliveries")
    op.drop_table("alert_deliveries")
