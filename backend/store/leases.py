"""Leases: how a worker takes a run (claim), keeps it (heartbeat), ends it (finish) or gives
it back (release), and how the reaper takes it away from a worker that went silent.

A claim sets a lease token that every heartbeat and the final status must present; the
reaper clears it, so a worker declared dead finds out at its next heartbeat and stops.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from backend.store.database import Database
from backend.store.eventlog import append_event, lock_run, set_status, status_data
from backend.store.models import Run, json_safe, now, take_verdict
from contract import RunStatus


@dataclass(frozen=True)
class Claim:
    run_id: str
    lease_token: str
    config: dict[str, Any]
    attempt: int


def claim_run(db: Database, run_id: str, worker_id: str) -> tuple[Claim | None, str]:
    """Take the run for this worker when it is ``queued``. Returns (claim or None, why not).
    A run that is running elsewhere, finished or gone is left alone: the message that
    brought the task here was a duplicate."""
    with db.write() as session:
        run = lock_run(session, run_id)
        if run is None:
            return None, "the run no longer exists"
        if run.status != "queued":
            return None, f"the run is {run.status}"
        if run.cancel_requested:
            set_status(session, run, "cancelled", "cancelled")
            return None, "cancelled"
        run.status = "running"
        run.worker_id = worker_id
        run.lease_token = secrets.token_hex(16)
        run.heartbeat_at = now()
        run.started_at = run.started_at or now()
        run.attempts += 1
        run.error = None
        append_event(session, run, "status", status_data(run, f"started on {worker_id}"))
        return Claim(run.id, run.lease_token, dict(run.config), run.attempts), ""


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


def finish_run(
    db: Database,
    run_id: str,
    lease_token: str,
    status: RunStatus,
    *,
    verdict: dict[str, Any] | None = None,
    error: str | None = None,
    reason: str | None = None,
) -> bool:
    """End the run with a terminal status, if this worker still holds it; returns whether
    it did."""
    with db.write() as session:
        run = lock_run(session, run_id)
        if run is None or run.lease_token != lease_token or run.status != "running":
            return False
        if verdict is not None:
            take_verdict(run, verdict)
        run.error = error
        run.progress = None
        set_status(session, run, status, reason)
        return True


def release_run(db: Database, run_id: str, lease_token: str, reason: str) -> None:
    """Give a running run back to the queue (its worker is shutting down cleanly), if this
    worker still holds it."""
    with db.write() as session:
        run = lock_run(session, run_id)
        if run is None or run.lease_token != lease_token or run.status != "running":
            return
        run.lease_token = None
        run.worker_id = None
        run.heartbeat_at = None
        run.enqueued_at = None
        run.progress = None
        set_status(session, run, "queued", reason)


@dataclass
class ReapResult:
    requeued: list[str]  # runs given back to the queue (their task is sent by send_unsent)


def _where(run: Run) -> str:
    return "before the first epoch" if run.last_epoch is None else f"after epoch {run.last_epoch}"


def reap(
    db: Database,
    *,
    heartbeat_timeout_s: float,
    max_worker_losses: int,
    cancel_timeout_s: float | None = None,
) -> ReapResult:
    """Requeue runs whose worker stopped sending heartbeats; fail the ones that have lost
    ``max_worker_losses`` workers. A run cancelled while running ends ``cancelled`` once its
    worker has been silent for ``cancel_timeout_s`` (a few heartbeat intervals: a live worker
    sees the flag at its next beat and stops by itself), without waiting for the timeout.
    Safe to run from any number of processes at once (each run is handled under its lock)."""
    result = ReapResult([])
    stamp = now()
    cancel_timeout_s = min(cancel_timeout_s or heartbeat_timeout_s, heartbeat_timeout_s)
    with db.read() as session:
        stale = list(
            session.scalars(
                select(Run.id).where(
                    Run.status == "running",
                    (Run.heartbeat_at < stamp - heartbeat_timeout_s)
                    | (Run.cancel_requested & (Run.heartbeat_at < stamp - cancel_timeout_s)),
                )
            )
        )
    for run_id in stale:
        with db.write() as session:
            run = lock_run(session, run_id)
            if run is None or run.status != "running" or run.heartbeat_at is None:
                continue
            silent_for = now() - run.heartbeat_at
            timeout = cancel_timeout_s if run.cancel_requested else heartbeat_timeout_s
            if silent_for < timeout:
                continue
            run.worker_losses += 1
            run.lease_token = None
            run.heartbeat_at = None
            run.progress = None
            if run.cancel_requested:
                set_status(session, run, "cancelled", "cancelled")
            elif run.worker_losses >= max_worker_losses:
                run.error = (
                    f"the worker running this run stopped responding {run.worker_losses} times "
                    f"(no heartbeat for {silent_for:.0f} s, last {_where(run)}); giving up "
                    "instead of retrying in a loop: the run probably exhausts the worker's memory"
                )
                set_status(session, run, "failed", run.error)
            else:
                run.worker_id = None
                run.enqueued_at = None
                set_status(
                    session,
                    run,
                    "queued",
                    f"its worker stopped responding ({silent_for:.0f} s without heartbeat, "
                    f"{_where(run)}); requeued to resume from the last checkpoint",
                )
                result.requeued.append(run_id)
    return result


@dataclass(frozen=True)
class ToSend:
    run_id: str
    device: str  # "auto" | "cpu" | "cuda": picks the train queue


def claim_unsent(
    db: Database, *, sent_before: float, only: list[str] | None = None, limit: int = 1000
) -> list[ToSend]:
    """Queued runs whose train task never went out, or went out before ``sent_before``
    (``only``: among these ids), marked sent now in the same transaction, so the caller is
    the one process that sends them. The rows are locked with ``FOR UPDATE SKIP LOCKED`` on
    PostgreSQL (concurrent reapers split the backlog instead of queueing behind each other);
    SQLite's ``BEGIN IMMEDIATE`` serialises the transactions. At most ``limit`` per call."""
    query = select(Run.id, Run.config).where(
        Run.status == "queued",
        # a sweep's unsent runs are held by it: backend.store.sweeps releases them
        (Run.enqueued_at.is_(None) & Run.sweep_id.is_(None)) | (Run.enqueued_at < sent_before),
    )
    if only is not None:
        query = query.where(Run.id.in_(only))
    with db.write() as session:
        rows = session.execute(
            query.order_by(Run.created_at).limit(limit).with_for_update(skip_locked=True)
        ).all()
        if rows:
            session.execute(
                update(Run).where(Run.id.in_([r.id for r in rows])).values(enqueued_at=now())
            )
    return [ToSend(r.id, str((r.config or {}).get("device", "auto"))) for r in rows]


def mark_unsent(db: Database, run_ids: list[str]) -> None:
    """The claimed runs' tasks did not go out (Redis down): the next pass sends them."""
    with db.write() as session:
        session.execute(update(Run).where(Run.id.in_(run_ids)).values(enqueued_at=None))
