"""idempotency digest: runs.idempotency_digest, the sha256 of the registration an external
run's Idempotency-Key was first sent with, so that the key reused with another body is
refused (rows from earlier releases have none: their key answers any body, as before)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("idempotency_digest", sa.String(64), nullable=True))


def downgrade() -> None:
    op.drop_column("runs", "idempotency_digest")
