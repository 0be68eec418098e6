"""verdicts stale from: runs.verdicts_stale_from, the earliest epoch stored after later ones
whose later verdicts have not been judged again with it (backend/store/epochs.py), so the
ingest pass after a lost one still revises them

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("verdicts_stale_from", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("runs", "verdicts_stale_from")
