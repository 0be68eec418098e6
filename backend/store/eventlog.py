"""The event log: every change a viewer sees is appended to its run's log in the same
transaction as the change, as an :class:`EventMessage`, which the session publishes on Redis
once the transaction has committed (:mod:`backend.store.database`), so a live event always
refers to committed data and a viewer who misses it (Redis down, reconnect) finds it in the
log by its sequence number.

Per-run event sequence numbers are assigned under the run's row lock (``FOR UPDATE`` on
PostgreSQL, the single writer lock on SQLite), so they are gap-free and commit in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.store.database import Database, queue_event
from backend.store.models import Event, Run, json_safe, now
from contract import TERMINAL_STATUSES, RunStatus

# The most stored events one read returns (an event stream's catch-up, the alert scanner's
# look at a run): a reader that gets a full batch reads on from its last event.
EVENT_BATCH = 500


@dataclass(frozen=True)
class EventMessage:
    """One event as stored and as published: ``seq`` is the SSE id (None for the live-only
    ``progress`` events), ``gid`` the global id used by the run-list stream."""

    run_id: str
    type: str
    data: dict[str, Any]
    seq: int | None = None
    gid: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "type": self.type,
            "data": self.data,
            "seq": self.seq,
            "gid": self.gid,
        }

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> EventMessage:
        return cls(
            run_id=payload["run_id"],
            type=payload["type"],
            data=payload["data"],
            seq=payload.get("seq"),
            gid=payload.get("gid"),
        )


def _message(event: Event) -> EventMessage:
    return EventMessage(event.run_id, event.type, event.data, event.seq, event.id)


def lock_run(session: Session, run_id: str) -> Run | None:
    """The run, locked for this transaction (every append to its log happens under it)."""
    return session.execute(
        select(Run).where(Run.id == run_id).with_for_update()
    ).scalar_one_or_none()


def append_event(session: Session, run: Run, kind: str, data: dict[str, Any]) -> EventMessage:
    """Append one event to the (locked) run's log; it is published once the session
    commits."""
    run.last_event_seq += 1
    run.updated_at = now()
    event = Event(
        run_id=run.id, seq=run.last_event_seq, type=kind, data=json_safe(data), created_at=now()
    )
    session.add(event)
    session.flush()
    message = _message(event)
    queue_event(session, message)
    return message


# The reasons of a run's end when nothing more is to be said: a run trained here that ran
# every epoch, an external run its client finished (backend/store/external.py adds notes)
FINISHED = "finished"
FINISHED_BY_CLIENT = "finished by the client"


def status_data(run: Run, reason: str | None = None) -> dict[str, Any]:
    """The data of a ``status`` event."""
    return {
        "status": run.status,
        "error": run.error,
        "reason": reason,
        "verdict": run.verdict,
        "last_epoch": run.last_epoch,
        "epochs": run.epochs_shown,
        "attempts": run.attempts,
        "worker_losses": run.worker_losses,
    }


def set_status(session: Session, run: Run, status: RunStatus, reason: str | None = None) -> None:
    """Move the (locked) run to ``status`` and log it; a terminal status drops the lease."""
    run.status = status
    if status in TERMINAL_STATUSES:
        run.finished_at = now()
        run.lease_token = None
        run.heartbeat_at = None
    append_event(session, run, "status", status_data(run, reason))


def events_after(db: Database, run_id: str, after_seq: int) -> list[EventMessage]:
    """The run's stored events with ``seq`` > ``after_seq``, in order (EVENT_BATCH at most)."""
    with db.read() as session:
        rows = session.scalars(
            select(Event)
            .where(Event.run_id == run_id, Event.seq > after_seq)
            .order_by(Event.seq)
            .limit(EVENT_BATCH)
        )
        return [_message(e) for e in rows]


def global_events_after(db: Database, after_gid: int, kinds: tuple[str, ...]) -> list[EventMessage]:
    """Stored events of every run with global id > ``after_gid`` and a type in ``kinds``
    (EVENT_BATCH at most)."""
    with db.read() as session:
        rows = session.scalars(
            select(Event)
            .where(Event.id > after_gid, Event.type.in_(kinds))
            .order_by(Event.id)
            .limit(EVENT_BATCH)
        )
        return [_message(e) for e in rows]


def last_global_event_id(db: Database) -> int:
    with db.read() as session:
        return session.scalar(select(func.max(Event.id))) or 0
