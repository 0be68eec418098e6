"""Repository functions: every read and write the API, the workers and the reaper make.

Writes that change what a viewer sees append to the run's event log in the same
transaction and return the new events as :class:`EventMessage` s; the caller publishes them
on Redis *after* the commit, so a live event always refers to committed data and a viewer
who misses it (Redis down, reconnect) finds it in the log by its sequence number.

Per-run event sequence numbers are assigned under the run's row lock (``FOR UPDATE`` on
PostgreSQL, the single writer lock on SQLite), so they are gap-free and commit in order.
"""

from __future__ import annotations

import math
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Text, cast, delete, func, select, update
from sqlalchemy.orm import Session

from backend.store.database import Database
from backend.store.models import (
    TERMINAL_STATUSES,
    EpochRecord,
    Event,
    Projection,
    Run,
    Share,
)


def now() -> float:
    return time.time()


def iso(timestamp: float | None) -> str | None:
    """UNIX seconds -> ISO 8601 UTC with milliseconds, or None."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


def json_safe(value: Any) -> Any:
    """A copy of ``value`` that strict JSON (and PostgreSQL's jsonb) accepts: NaN and
    infinities become None, numpy scalars and arrays become Python numbers and lists."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return json_safe(value.tolist())
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


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


# ---------------------------------------------------------------------------------------------
# serialisation


def run_url(run_id: str) -> str:
    return f"/runs/{run_id}"


def run_summary(run: Run) -> dict[str, Any]:
    """The run as the list shows it."""
    config = run.config
    return {
        "id": run.id,
        "url": run_url(run.id),
        "status": run.status,
        "created_at": iso(run.created_at),
        "updated_at": iso(run.updated_at),
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "method": run.method,
        "preset": run.preset,
        "dataset": run.dataset,
        "backbone": config.get("backbone"),
        "proj_dim": config.get("proj_dim"),
        "seed": config.get("seed"),
        "options": config.get("options", {}),
        "epochs": run.epochs_total,
        "last_epoch": run.last_epoch,
        "progress": run.progress,
        "verdict": run.verdict,
        "error": run.error,
        "effective_rank_history": run.rank_history or [],
    }


def run_detail(run: Run) -> dict[str, Any]:
    """The run with its full config and the worker bookkeeping."""
    return {
        **run_summary(run),
        "config": run.config,
        "request": run.request,
        "attempts": run.attempts,
        "worker_losses": run.worker_losses,
        "worker_id": run.worker_id,
        "heartbeat_at": iso(run.heartbeat_at),
        "cancel_requested": run.cancel_requested,
        "last_event_id": run.last_event_seq,
    }


def _status_data(run: Run, reason: str | None = None) -> dict[str, Any]:
    return {
        "status": run.status,
        "error": run.error,
        "reason": reason,
        "verdict": run.verdict,
        "last_epoch": run.last_epoch,
        "epochs": run.epochs_total,
        "attempts": run.attempts,
        "worker_losses": run.worker_losses,
    }


# ---------------------------------------------------------------------------------------------
# internal helpers


def _lock_run(session: Session, run_id: str) -> Run | None:
    return session.execute(
        select(Run).where(Run.id == run_id).with_for_update()
    ).scalar_one_or_none()


def _append_event(session: Session, run: Run, kind: str, data: dict[str, Any]) -> EventMessage:
    run.last_event_seq += 1
    run.updated_at = now()
    event = Event(
        run_id=run.id, seq=run.last_event_seq, type=kind, data=json_safe(data), created_at=now()
    )
    session.add(event)
    session.flush()
    return _message(event)


def _set_status(session: Session, run: Run, status: str, reason: str | None = None) -> EventMessage:
    run.status = status
    if status in TERMINAL_STATUSES:
        run.finished_at = now()
        run.lease_token = None
        run.heartbeat_at = None
    return _append_event(session, run, "status", _status_data(run, reason))


# ---------------------------------------------------------------------------------------------
# runs


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def create_run(
    db: Database, request: dict[str, Any], config: dict[str, Any]
) -> tuple[dict[str, Any], list[EventMessage]]:
    """Store a new ``queued`` run; returns its detail and its first status event."""
    stamp = now()
    run = Run(
        id=new_run_id(),
        created_at=stamp,
        updated_at=stamp,
        status="queued",
        method=config["method"],
        preset=config.get("preset"),
        dataset=config["dataset"],
        request=json_safe(request),
        config=json_safe(config),
        epochs_total=config["epochs"],
        last_epoch=None,
        rank_history=[],
        attempts=0,
        worker_losses=0,
        cancel_requested=False,
        last_event_seq=0,
    )
    with db.write() as session:
        session.add(run)
        session.flush()
        message = _append_event(session, run, "status", _status_data(run, "queued"))
        return run_detail(run), [message]


def mark_enqueued(db: Database, run_id: str, enqueued: bool) -> None:
    """Remember whether the train task went out (the reaper retries when it did not)."""
    with db.write() as session:
        session.execute(
            update(Run).where(Run.id == run_id).values(enqueued_at=now() if enqueued else None)
        )


def run_device(db: Database, run_id: str) -> str | None:
    """The device the run asked for ("auto" | "cpu" | "cuda"), None for an unknown run."""
    with db.read() as session:
        config = session.scalar(select(Run.config).where(Run.id == run_id))
        return None if config is None else str(config.get("device", "auto"))


def note_queued_reason(db: Database, run_id: str, reason: str) -> list[EventMessage]:
    """Tell the run's viewers why a queued run is still waiting (a status event, once per
    distinct reason)."""
    with db.write() as session:
        run = _lock_run(session, run_id)
        if run is None or run.status != "queued":
            return []
        last = session.scalar(
            select(Event.data)
            .where(Event.run_id == run_id, Event.type == "status")
            .order_by(Event.seq.desc())
            .limit(1)
        )
        if last and last.get("reason") == reason:
            return []
        return [_append_event(session, run, "status", _status_data(run, reason))]


def get_run(db: Database, run_id: str) -> dict[str, Any] | None:
    with db.read() as session:
        run = session.get(Run, run_id)
        return run_detail(run) if run else None


def get_runs(db: Database, run_ids: list[str]) -> list[dict[str, Any]]:
    """Details of the given runs in the given order (unknown ids are skipped)."""
    with db.read() as session:
        rows = {r.id: r for r in session.scalars(select(Run).where(Run.id.in_(run_ids)))}
        return [run_detail(rows[i]) for i in run_ids if i in rows]


@dataclass
class RunFilter:
    status: str | None = None
    method: str | None = None
    dataset: str | None = None
    preset: str | None = None
    verdict: str | None = None
    ids: list[str] | None = None


def list_runs(
    db: Database, filters: RunFilter, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """Newest first; returns (page, total number matching the filters)."""
    conditions = []
    if filters.status:
        conditions.append(Run.status == filters.status)
    if filters.method:
        conditions.append(Run.method == filters.method)
    if filters.dataset:
        conditions.append(Run.dataset == filters.dataset)
    if filters.preset:
        conditions.append(Run.preset == filters.preset)
    if filters.verdict:
        conditions.append(Run.verdict_kind == filters.verdict)
    if filters.ids is not None:
        conditions.append(Run.id.in_(filters.ids))
    with db.read() as session:
        total = session.scalar(select(func.count()).select_from(Run).where(*conditions)) or 0
        rows = session.scalars(
            select(Run)
            .where(*conditions)
            .order_by(Run.created_at.desc(), Run.id.desc())
            .limit(limit)
            .offset(offset)
        ).all()
        return [run_summary(r) for r in rows], total


def delete_run(db: Database, run_id: str) -> str:
    """'deleted', 'missing' or 'active' (a queued or running run is cancelled first)."""
    with db.write() as session:
        run = _lock_run(session, run_id)
        if run is None:
            return "missing"
        if run.status not in TERMINAL_STATUSES:
            return "active"
        for model in (Event, EpochRecord, Projection):
            session.execute(delete(model).where(model.run_id == run_id))
        session.delete(run)
        return "deleted"


def request_cancel(db: Database, run_id: str) -> tuple[dict[str, Any] | None, list[EventMessage]]:
    """Cancel a queued run at once; flag a running one (its worker stops within seconds)."""
    with db.write() as session:
        run = _lock_run(session, run_id)
        if run is None:
            return None, []
        messages: list[EventMessage] = []
        if run.status == "queued":
            messages.append(_set_status(session, run, "cancelled", "cancelled before it started"))
        elif run.status == "running":
            run.cancel_requested = True
            run.updated_at = now()
        return run_detail(run), messages


# ---------------------------------------------------------------------------------------------
# worker side: claim, heartbeat, record, finish


@dataclass(frozen=True)
class Claim:
    run_id: str
    lease_token: str
    config: dict[str, Any]
    attempt: int


def claim_run(
    db: Database, run_id: str, worker_id: str
) -> tuple[Claim | None, str, list[EventMessage]]:
    """Take the run for this worker when it is ``queued``. Returns (claim or None, why not,
    events). A run that is running elsewhere, finished or gone is left alone: the message
    that brought the task here was a duplicate."""
    with db.write() as session:
        run = _lock_run(session, run_id)
        if run is None:
            return None, "the run no longer exists", []
        if run.status != "queued":
            return None, f"the run is {run.status}", []
        if run.cancel_requested:
            return None, "cancelled", [_set_status(session, run, "cancelled", "cancelled")]
        run.status = "running"
        run.worker_id = worker_id
        run.lease_token = secrets.token_hex(16)
        run.heartbeat_at = now()
        run.started_at = run.started_at or now()
        run.attempts += 1
        run.error = None
        message = _append_event(
            session, run, "status", _status_data(run, f"started on {worker_id}")
        )
        return Claim(run.id, run.lease_token, dict(run.config), run.attempts), "", [message]


@dataclass(frozen=True)
class Beat:
    owned: bool  # False: the lease was taken away (the reaper declared this worker dead)
    cancel_requested: bool


def heartbeat(db: Database, run_id: str, lease_token: str, progress: dict[str, Any] | None) -> Beat:
    """Refresh the run's heartbeat and progress if this worker still holds the lease."""
    values: dict[str, Any] = {"heartbeat_at": now()}
    if progress is not None:
        values["progress"] = json_safe(progress)
    with db.write() as session:
        cancel = session.execute(
            update(Run)
            .where(Run.id == run_id, Run.lease_token == lease_token, Run.status == "running")
            .values(**values)
            .returning(Run.cancel_requested)
        ).scalar_one_or_none()
    return Beat(owned=cancel is not None, cancel_requested=bool(cancel))


def _rank_history(history: list[Any], epoch: int, record: dict[str, Any]) -> list[Any]:
    projector = record.get("projector") or {}
    values = list(history or [])
    while len(values) <= epoch:
        values.append(None)
    values[epoch] = projector.get("effective_rank")
    return values


def record_epoch(db: Database, run_id: str, record: dict[str, Any]) -> list[EventMessage]:
    """Store one epoch record exactly once (a repeat of a stored epoch is ignored) and
    append its ``epoch`` event. Returns the new events (none for a repeat)."""
    record = json_safe(record)
    epoch = int(record["epoch"])
    with db.write() as session:
        run = _lock_run(session, run_id)
        if run is None:
            return []
        exists = session.scalar(
            select(EpochRecord.id).where(EpochRecord.run_id == run_id, EpochRecord.epoch == epoch)
        )
        if exists is not None:
            return []
        session.add(EpochRecord(run_id=run_id, epoch=epoch, record=record, created_at=now()))
        if run.last_epoch is None or epoch > run.last_epoch:
            run.last_epoch = epoch
            verdict = record.get("verdict")
            if verdict:
                run.verdict = verdict
                run.verdict_kind = verdict.get("kind")
        run.rank_history = _rank_history(run.rank_history, epoch, record)
        return [_append_event(session, run, "epoch", record)]


def stored_epoch_numbers(db: Database, run_id: str) -> set[int]:
    with db.read() as session:
        return set(session.scalars(select(EpochRecord.epoch).where(EpochRecord.run_id == run_id)))


def finish_run(
    db: Database,
    run_id: str,
    lease_token: str,
    status: str,
    *,
    verdict: dict[str, Any] | None = None,
    error: str | None = None,
    reason: str | None = None,
) -> list[EventMessage]:
    """End the run with a terminal status, if this worker still holds it."""
    with db.write() as session:
        run = _lock_run(session, run_id)
        if run is None or run.lease_token != lease_token or run.status != "running":
            return []
        if verdict is not None:
            run.verdict = json_safe(verdict)
            run.verdict_kind = verdict.get("kind")
        run.error = error
        run.progress = None
        return [_set_status(session, run, status, reason)]


def release_run(db: Database, run_id: str, lease_token: str, reason: str) -> list[EventMessage]:
    """Give a running run back to the queue (its worker is shutting down cleanly)."""
    with db.write() as session:
        run = _lock_run(session, run_id)
        if run is None or run.lease_token != lease_token or run.status != "running":
            return []
        run.lease_token = None
        run.worker_id = None
        run.heartbeat_at = None
        run.enqueued_at = None
        run.progress = None
        return [_set_status(session, run, "queued", reason)]


# ---------------------------------------------------------------------------------------------
# the reaper


@dataclass
class ReapResult:
    messages: list[EventMessage]
    to_enqueue: list[str]


def reap(
    db: Database, *, heartbeat_timeout_s: float, max_worker_losses: int, requeue_after_s: float
) -> ReapResult:
    """Requeue runs whose worker stopped sending heartbeats; fail the ones that have lost
    ``max_worker_losses`` workers; re-send queued runs whose task never went out or got lost.
    Safe to run from any number of processes at once (each run is handled under its lock)."""
    result = ReapResult([], [])
    stamp = now()
    with db.read() as session:
        stale = list(
            session.scalars(
                select(Run.id).where(
                    Run.status == "running", Run.heartbeat_at < stamp - heartbeat_timeout_s
                )
            )
        )
        unsent = list(
            session.scalars(
                select(Run.id).where(
                    Run.status == "queued",
                    (Run.enqueued_at.is_(None)) | (Run.enqueued_at < stamp - requeue_after_s),
                )
            )
        )
    for run_id in stale:
        with db.write() as session:
            run = _lock_run(session, run_id)
            if run is None or run.status != "running" or run.heartbeat_at is None:
                continue
            silent_for = now() - run.heartbeat_at
            if silent_for < heartbeat_timeout_s:
                continue
            run.worker_losses += 1
            run.lease_token = None
            run.heartbeat_at = None
            run.progress = None
            where = (
                "before the first epoch"
                if run.last_epoch is None
                else (f"after epoch {run.last_epoch}")
            )
            if run.cancel_requested:
                result.messages.append(_set_status(session, run, "cancelled", "cancelled"))
            elif run.worker_losses >= max_worker_losses:
                run.error = (
                    f"the worker running this run stopped responding {run.worker_losses} times "
                    f"(no heartbeat for {silent_for:.0f} s, last {where}); giving up instead of "
                    "retrying in a loop: the run probably exhausts the worker's memory"
                )
                result.messages.append(_set_status(session, run, "failed", run.error))
            else:
                run.worker_id = None
                run.enqueued_at = None
                result.messages.append(
                    _set_status(
                        session,
                        run,
                        "queued",
                        f"its worker stopped responding ({silent_for:.0f} s without heartbeat, "
                        f"{where}); requeued to resume from the last checkpoint",
                    )
                )
                result.to_enqueue.append(run_id)
    result.to_enqueue.extend(r for r in unsent if r not in result.to_enqueue)
    return result


# ---------------------------------------------------------------------------------------------
# epochs, projections, events


def epoch_records(db: Database, run_id: str, since: int | None = None) -> list[dict[str, Any]]:
    """The run's epoch records in epoch order; only epochs > ``since`` when given."""
    query = select(EpochRecord.record).where(EpochRecord.run_id == run_id)
    if since is not None:
        query = query.where(EpochRecord.epoch > since)
    with db.read() as session:
        return list(session.scalars(query.order_by(EpochRecord.epoch)))


def epoch_records_json(db: Database, run_id: str, since: int | None = None) -> str:
    """Like :func:`epoch_records` but as one JSON array built from the stored JSON text,
    without decoding and re-encoding every record (the records of a long run weigh MBs)."""
    query = select(cast(EpochRecord.record, Text)).where(EpochRecord.run_id == run_id)
    if since is not None:
        query = query.where(EpochRecord.epoch > since)
    with db.read() as session:
        return "[" + ",".join(session.scalars(query.order_by(EpochRecord.epoch))) + "]"


def record_projection(
    db: Database, run_id: str, epoch: int, points: list[list[float]], labels: list[int]
) -> list[EventMessage]:
    """Store an epoch's 2-D projection once and append its ``projection`` event, whose data
    is a pointer: ``{"epoch", "count", "url"}``."""
    with db.write() as session:
        run = _lock_run(session, run_id)
        if run is None:
            return []
        exists = session.scalar(
            select(Projection.id).where(Projection.run_id == run_id, Projection.epoch == epoch)
        )
        if exists is not None:
            return []
        session.add(
            Projection(
                run_id=run_id,
                epoch=epoch,
                points=json_safe(points),
                labels=json_safe(labels),
                created_at=now(),
            )
        )
        data = {
            "epoch": epoch,
            "count": len(points),
            "url": f"/api/runs/{run_id}/projections/{epoch}",
        }
        return [_append_event(session, run, "projection", data)]


def projection_epochs(db: Database, run_id: str) -> list[int]:
    with db.read() as session:
        return list(
            session.scalars(
                select(Projection.epoch)
                .where(Projection.run_id == run_id)
                .order_by(Projection.epoch)
            )
        )


def get_projection(db: Database, run_id: str, epoch: int) -> dict[str, Any] | None:
    with db.read() as session:
        row = session.scalar(
            select(Projection).where(Projection.run_id == run_id, Projection.epoch == epoch)
        )
        if row is None:
            return None
        return {"epoch": row.epoch, "points": row.points, "labels": row.labels}


def previous_projection(db: Database, run_id: str, before_epoch: int) -> list[list[float]] | None:
    """Points of the latest stored projection before ``before_epoch`` (for alignment)."""
    with db.read() as session:
        return session.scalar(
            select(Projection.points)
            .where(Projection.run_id == run_id, Projection.epoch < before_epoch)
            .order_by(Projection.epoch.desc())
            .limit(1)
        )


def events_after(db: Database, run_id: str, after_seq: int, limit: int = 500) -> list[EventMessage]:
    """The run's stored events with ``seq`` > ``after_seq``, in order."""
    with db.read() as session:
        rows = session.scalars(
            select(Event)
            .where(Event.run_id == run_id, Event.seq > after_seq)
            .order_by(Event.seq)
            .limit(limit)
        )
        return [_message(e) for e in rows]


def global_events_after(
    db: Database, after_gid: int, kinds: tuple[str, ...], limit: int = 500
) -> list[EventMessage]:
    """Stored events of every run with global id > ``after_gid`` and a type in ``kinds``."""
    with db.read() as session:
        rows = session.scalars(
            select(Event)
            .where(Event.id > after_gid, Event.type.in_(kinds))
            .order_by(Event.id)
            .limit(limit)
        )
        return [_message(e) for e in rows]


def last_global_event_id(db: Database) -> int:
    with db.read() as session:
        return session.scalar(select(func.max(Event.id))) or 0


# ---------------------------------------------------------------------------------------------
# shares


def _share_json(share: Share) -> dict[str, Any]:
    return {
        "token": share.token,
        "kind": share.kind,
        "runs": share.run_ids,
        "url": f"/s/{share.token}",
        "created_at": iso(share.created_at),
        "revoked": share.revoked_at is not None,
    }


def create_share(db: Database, run_ids: list[str]) -> dict[str, Any]:
    share = Share(
        token=secrets.token_urlsafe(18),
        kind="run" if len(run_ids) == 1 else "compare",
        run_ids=list(run_ids),
        created_at=now(),
        revoked_at=None,
    )
    with db.write() as session:
        session.add(share)
        session.flush()
        return _share_json(share)


def get_share(db: Database, token: str) -> dict[str, Any] | None:
    """The share, or None when unknown or revoked."""
    with db.read() as session:
        share = session.get(Share, token)
        if share is None or share.revoked_at is not None:
            return None
        return _share_json(share)


def list_shares(db: Database) -> list[dict[str, Any]]:
    with db.read() as session:
        rows = session.scalars(
            select(Share).where(Share.revoked_at.is_(None)).order_by(Share.created_at.desc())
        )
        return [_share_json(s) for s in rows]


def revoke_share(db: Database, token: str) -> bool:
    with db.write() as session:
        share = session.get(Share, token)
        if share is None or share.revoked_at is not None:
            return False
        share.revoked_at = now()
        return True
