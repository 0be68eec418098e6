"""Alembic environment: uses the caller's connection when given one (the service does),
else the ``DATABASE_URL`` / default SQLite URL from the settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from backend.settings import get_settings
from backend.store.models import Base

config = context.config


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(
            connection=connection, target_metadata=Base.metadata, render_as_batch=True
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    url = config.get_main_option("sqlalchemy.url") or get_settings().resolved_database_url
    engine = create_engine(url)
    with engine.begin() as own_connection:
        context.configure(
            connection=own_connection, target_metadata=Base.metadata, render_as_batch=True
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations()
