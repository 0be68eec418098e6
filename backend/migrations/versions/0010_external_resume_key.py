"""external resume key: runs.resume_key, the key with which a restarted training job (a
requeued SLURM job, a torchrun restart, a Lightning fit resumed from its checkpoint)
continues the same external run (backend/store/external.py: register_run); unique

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


# Plain ADD COLUMN and CREATE INDEX (no batch mode: on SQLite it would copy and drop ``runs``,
# cascading). The server has one API_TOKEN, so a key is unique per server; the client scopes
# the keys it derives (SLURM cluster, job, array task) itself.


def upgrade() -> None:
    op.add_column("runs", sa.Column("resume_key", sa.String(200), nullable=True))
    op.create_index("uq_runs_resume_key", "runs", ["resume_key"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_runs_resume_key", table_name="runs")
    op.drop_column("runs", "resume_key")
