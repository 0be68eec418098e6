"""the run list's sparkline comes from the epochs: drop runs.rank_history, add
epochs.effective_rank (filled from each stored record) and an index that covers the query

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

RANK_FROM_RECORD = {
    "sqlite": "json_extract(record, '$.projector.effective_rank')",
    "postgresql": "(record -> 'projector' ->> 'effective_rank')::float",
}


# Plain ALTER TABLE, not batch mode: on SQLite a batch copies and drops the table, and
# dropping ``runs`` would cascade to every epoch, event and projection (foreign keys are on).
# SQLite >= 3.35 drops a plain column in place.


def upgrade() -> None:
    op.drop_column("runs", "rank_history")
    op.add_column("epochs", sa.Column("effective_rank", sa.Float(), nullable=True))
    dialect = op.get_bind().dialect.name
    op.execute(f"UPDATE epochs SET effective_rank = {RANK_FROM_RECORD[dialect]}")
    op.create_index("ix_epochs_run_epoch_rank", "epochs", ["run_id", "epoch", "effective_rank"])


def downgrade() -> None:
    op.drop_index("ix_epochs_run_epoch_rank", table_name="epochs")
    op.drop_column("epochs", "effective_rank")
    json_type = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
    op.add_column(
        "runs",
        sa.Column("rank_history", json_type, nullable=False, server_default=sa.text("'[]'")),
    )
