"""alert last epoch: alert_run_state.last_epoch, the highest epoch whose verdict the alert
scanner has read for the run (backend/alerts.py): an epoch uploaded after later ones (a
sync of an offline part) carries the verdict of the past, not the run's

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("alert_run_state", sa.Column("last_epoch", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("alert_run_state", "last_epoch")
