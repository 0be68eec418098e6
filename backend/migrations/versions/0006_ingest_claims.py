"""ingest claims: runs.ingest_sent_at (when an external run's ingest task was last re-sent,
claimed by the one process that sends it) and external_uploads.claimed_at (the ingest pass
that is measuring the upload now, so two passes never measure the same epochs at once)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


# Plain ADD COLUMN (no batch mode: on SQLite it would copy and drop ``runs``, cascading).


def upgrade() -> None:
    op.add_column("runs", sa.Column("ingest_sent_at", sa.Float(), nullable=True))
    op.add_column("external_uploads", sa.Column("claimed_at", sa.Float(), nullable=True))


def downgrade() -> None:
    op.drop_column("external_uploads", "claimed_at")
    op.drop_column("runs", "ingest_sent_at")
