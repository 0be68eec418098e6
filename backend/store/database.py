"""Engines, sessions and schema migrations for SQLite (default) and PostgreSQL.

SQLite runs in WAL mode, so readers never block the writer. Write transactions start with
``BEGIN IMMEDIATE``: they take the write lock up front and wait for it (``busy_timeout``)
instead of failing with "database is locked" when a reader upgrades, which makes the API and
several worker processes safe on one file. On PostgreSQL, writers that append to a run's
event log lock the run row (``SELECT ... FOR UPDATE``), which serialises the per-run
sequence numbers.

Events are published on commit: a write that logs an event queues it on its session
(:func:`queue_event`, called by :func:`backend.store.eventlog.append_event`) and the write
sessions hand the queue to ``on_commit`` (the Redis publisher) once the transaction has
committed, never before; a rollback drops it. So a live event always refers to committed
data, and no caller has to remember to publish.

Migrations (Alembic, ``backend/migrations``) run programmatically from every process at
start-up; concurrent starters are serialised by the SQLite write lock or by a PostgreSQL
advisory lock, so the second one finds the schema at head and does nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

BACKEND_DIR = Path(__file__).resolve().parent.parent
MIGRATION_LOCK_KEY = 7_351_204_117  # arbitrary constant for pg_advisory_xact_lock
PENDING_EVENTS = "collapse_lab.pending_events"  # the session.info key of uncommitted events


def queue_event(session: Session, message: Any) -> None:
    """Publish ``message`` once ``session``'s transaction commits (dropped if it rolls back)."""
    session.info.setdefault(PENDING_EVENTS, []).append(message)


def _sqlite_engine(url: str, immediate: bool) -> Engine:
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 60},
        pool_size=8,
        max_overflow=16,
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # transactions are begun explicitly below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Database:
    """A read engine and a write engine on the same database (they are one engine except
    on SQLite), with session helpers. ``on_commit`` receives the events each committed write
    transaction logged, in order (none without it: a process that only reads, or a test)."""

    def __init__(self, url: str, on_commit: Callable[[list[Any]], None] | None = None) -> None:
        self.url = url
        self.on_commit = on_commit
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite:
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            self.read_engine = _sqlite_engine(url, immediate=False)
            self.write_engine = _sqlite_engine(url, immediate=True)
        else:
            self.read_engine = create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
            self.write_engine = self.read_engine
        self._read_sessions = sessionmaker(self.read_engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(self.write_engine, expire_on_commit=False)
        event.listen(self._write_sessions, "after_commit", self._publish_committed)
        event.listen(self._write_sessions, "after_soft_rollback", self._drop_uncommitted)
        self._deployment_id: str | None = None

    def _publish_committed(self, session: Session) -> None:
        messages = session.info.pop(PENDING_EVENTS, None)
        if messages and self.on_commit is not None:
            self.on_commit(messages)

    @staticmethod
    def _drop_uncommitted(session: Session, _previous_transaction: Any) -> None:
        session.info.pop(PENDING_EVENTS, None)

    @property
    def deployment_id(self) -> str:
        """The id of the deployment this database belongs to (created by migration 0009;
        see backend/deployment.py), read once."""
        if self._deployment_id is None:
            with self.read_engine.connect() as connection:
                found = connection.execute(text("SELECT id FROM deployment")).scalar()
            if found is None:
                raise RuntimeError("the database has no deployment id: migrate it first")
            self._deployment_id = str(found)
        return self._deployment_id

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for queries; nothing it does is committed. Closing it (not rolling
        back) ends the transaction without expiring the rows it loaded, so callers may
        read them after the session is gone."""
        with self._read_sessions() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on error."""
        with self._write_sessions() as session, session.begin():
            yield session

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (safe to call concurrently)."""
        config = Config(str(BACKEND_DIR / "alembic.ini"))
        config.set_main_option("script_location", str(BACKEND_DIR / "migrations"))
        config.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        with self.write_engine.begin() as connection:
            if not self.is_sqlite:
                connection.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"))
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def ping(self) -> None:
        """Raises when the database cannot be reached."""
        with self.read_engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.read_engine.dispose()
        if self.write_engine is not self.read_engine:
            self.write_engine.dispose()
