"""external runs: runs.source (where an external run comes from; null for runs trained
here), runs.idempotency_key (the registration's key, unique), runs.external_finish (the
client's finish call) and the external_uploads table (each uploaded epoch message)

Revision ID: 0004
Revises: 0002 (to be re-chained onto "0003" once the sweeps migration is merged)
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0002"
branch_labels = None
depends_on = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


# Plain ADD COLUMN and CREATE INDEX, not batch mode: on SQLite a batch copies and drops the
# table, and dropping ``runs`` would cascade to every epoch, event and projection.


def upgrade() -> None:
    op.add_column("runs", sa.Column("source", JSON_TYPE, nullable=True))
    op.add_column("runs", sa.Column("idempotency_key", sa.String(64), nullable=True))
    op.add_column("runs", sa.Column("external_finish", JSON_TYPE, nullable=True))
    op.create_index("uq_runs_idempotency_key", "runs", ["idempotency_key"], unique=True)
    op.create_table(
        "external_uploads",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column(
            "run_id", sa.String(32), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("shapes", JSON_TYPE, nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("processed_at", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.UniqueConstraint("run_id", "epoch", name="uq_external_uploads_run_epoch"),
    )
    op.create_index("ix_external_uploads_run_id", "external_uploads", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_external_uploads_run_id", table_name="external_uploads")
    op.drop_table("external_uploads")
    op.drop_index("uq_runs_idempotency_key", table_name="runs")
    op.drop_column("runs", "external_finish")
    op.drop_column("runs", "idempotency_key")
    op.drop_column("runs", "source")
