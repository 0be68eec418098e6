"""run labels: runs.name, project, tags, note (contract/labels.py) and cause (the verdict's
cause guard, for the list's filter), run_tags (one row per tag, indexed); existing runs get
their name (external runs: the registered name; others: preset, else method)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    # plain ADD COLUMN (no batch mode: on SQLite it would copy and drop ``runs``, cascading)
    op.add_column("runs", sa.Column("name", sa.String(200), nullable=True))
    op.add_column("runs", sa.Column("project", sa.String(100), nullable=True))
    op.add_column("runs", sa.Column("tags", _json(), nullable=True))
    op.add_column("runs", sa.Column("note", sa.Text(), nullable=True))
    op.add_column("runs", sa.Column("cause", sa.String(32), nullable=True))
    op.create_index("ix_runs_project", "runs", ["project"])
    op.create_index("ix_runs_cause", "runs", ["cause"])
    op.create_table(
        "run_tags",
        sa.Column(
            "run_id", sa.String(32), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("tag", sa.String(50), primary_key=True),
    )
    op.create_index("ix_run_tags_tag", "run_tags", ["tag"])
    runs = sa.table(
        "runs",
        sa.column("id", sa.String),
        sa.column("name", sa.String),
        sa.column("preset", sa.String),
        sa.column("method", sa.String),
        sa.column("source", _json()),
        sa.column("request", _json()),
    )
    connection = op.get_bind()
    connection.execute(
        runs.update()
        .where(runs.c.source.is_(None))
        .values(name=sa.func.coalesce(runs.c.preset, runs.c.method))
    )
    external = connection.execute(
        sa.select(runs.c.id, runs.c.request).where(runs.c.source.is_not(None))
    ).all()
    for run_id, request in external:
        name = str((request or {}).get("name") or "external")[:200]
        connection.execute(runs.update().where(runs.c.id == run_id).values(name=name))


def downgrade() -> None:
    op.drop_index("ix_run_tags_tag", table_name="run_tags")
    op.drop_table("run_tags")
    op.drop_index("ix_runs_cause", table_name="runs")
    op.drop_index("ix_runs_project", table_name="runs")
    for column in ("cause", "note", "tags", "project", "name"):
        op.drop_column("runs", column)
