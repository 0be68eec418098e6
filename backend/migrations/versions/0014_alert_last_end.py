"""alert last end: alert_run_state.last_end, the sha256 of the last end (status, verdict,
last epoch, error) the alert scanner announced for the run (backend/alerts.py): a run
reopened by a late sync and closed again as it was is not announced as finished twice

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("alert_run_state", sa.Column("last_end", sa.String(64), nullable=True))


def downgrade() -> None:
    op.drop_column("alert_run_state", "last_end")
