"""deployment id: the table ``deployment`` with one row, this deployment's id, created here
once (for a new database and for one written by an earlier release alike). Every process
reads it from the database it is configured with and puts it in front of every name it uses
in Redis, so deployments that share a Redis server never take each other's tasks (see
``backend/deployment.py``).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

import time
import uuid

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "deployment",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(table, [{"id": uuid.uuid4().hex[:16], "created_at": time.time()}])


def downgrade() -> None:
    op.drop_table("deployment")
