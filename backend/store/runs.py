"""Runs: create, find, list, cancel, delete. Functions return ORM rows (detached, fully
loaded); the routers shape them into the response models of :mod:`backend.schemas`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from backend.store.database import Database
from backend.store.eventlog import append_event, lock_run, set_status, status_data
from backend.store.models import EpochRow, Event, Projection, Run, RunTag, Sweep, json_safe, now
from contract import TERMINAL_STATUSES, RunStatus
from contract.labels import MAX_NAME_CHARS, LabelsEdit, unique_tags


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def new_run_row(status: RunStatus, **fields: Any) -> Run:
    """A fresh ``runs`` row in ``status``: a new id, created and updated now, no attempts,
    losses or events yet; ``fields`` sets the rest (method, dataset, request, config...)."""
    stamp = now()
    defaults: dict[str, Any] = {
        "epochs_total": 0,
        "last_epoch": None,
        "attempts": 0,
        "worker_losses": 0,
        "cancel_requested": False,
        "last_event_seq": 0,
    }
    return Run(
        id=new_run_id(), created_at=stamp, updated_at=stamp, status=status, **(defaults | fields)
    )


def apply_labels(
    session: Session,
    run: Run,
    project: str | None,
    tags: list[str],
    note: str,
) -> None:
    """Set the run's labels (contract/labels.py), its tag rows included."""
    run.project = project
    run.tags = unique_tags(tags)
    run.note = note
    session.execute(delete(RunTag).where(RunTag.run_id == run.id))
    session.add_all(RunTag(run_id=run.id, tag=tag) for tag in run.tags)


def labels_from_request(session: Session, run: Run, request: dict[str, Any]) -> None:
    """A new run's name and labels, as its request gave them."""
    run.name = str(request.get("name") or run.preset or run.method)[:MAX_NAME_CHARS]
    session.flush()  # the run row exists before its tag rows
    apply_labels(
        session,
        run,
        request.get("project"),
        list(request.get("tags") or []),
        str(request.get("note") or ""),
    )


def create_run(db: Database, request: dict[str, Any], config: dict[str, Any]) -> Run:
    """Store a new ``queued`` run (and log its first status event); returns it."""
    with db.write() as session:
        return add_run(session, request, config)


def add_run(
    session: Session, request: dict[str, Any], config: dict[str, Any], sweep_id: str | None = None
) -> Run:
    """A new ``queued`` run in this transaction, with its first status event logged."""
    run = new_run_row(
        "queued",
        method=config["method"],
        preset=config.get("preset"),
        dataset=config["dataset"],
        request=json_safe(request),
        config=json_safe(config),
        epochs_total=config["epochs"],
        sweep_id=sweep_id,
    )
    session.add(run)
    labels_from_request(session, run, request)
    append_event(session, run, "status", status_data(run, "queued"))
    return run


def queued_sent_before(db: Database, stamp: float) -> list[str]:
    """Queued runs whose train task was sent before ``stamp``."""
    with db.read() as session:
        return list(
            session.scalars(select(Run.id).where(Run.status == "queued", Run.enqueued_at < stamp))
        )


@dataclass(frozen=True)
class QueuePosition:
    """Where a queued run stands: the runs sent to the workers before it and still queued,
    and, for a run of a sweep, how many of the sweep's runs are out (queued sent, or running)
    against its concurrency."""

    ahead: int
    sweep_out: int | None = None
    sweep_concurrency: int | None = None


def queue_position(db: Database, run: Run) -> QueuePosition:
    with db.read() as session:
        ahead = session.scalar(
            select(func.count())
            .select_from(Run)
            .where(
                Run.status == "queued",
                Run.enqueued_at.is_not(None),
                Run.id != run.id,
                Run.enqueued_at <= (run.enqueued_at if run.enqueued_at is not None else now()),
            )
        )
        if run.sweep_id is None:
            return QueuePosition(int(ahead or 0))
        sweep = session.get(Sweep, run.sweep_id)
        out = session.scalar(
            select(func.count())
            .select_from(Run)
            .where(
                Run.sweep_id == run.sweep_id,
                (Run.status == "running")
                | ((Run.status == "queued") & Run.enqueued_at.is_not(None)),
            )
        )
        concurrency = sweep.concurrency if sweep is not None else None
        return QueuePosition(int(ahead or 0), int(out or 0), concurrency)


def recently_trained(db: Database, since: float) -> list[str]:
    """Runs training now, or that were trained and ended since ``since`` (UNIX seconds)."""
    with db.read() as session:
        return list(
            session.scalars(
                select(Run.id).where(
                    (Run.status == "running")
                    | ((Run.finished_at >= since) & Run.started_at.is_not(None))
                )
            )
        )


def note_queued_reason(db: Database, run_id: str, reason: str) -> None:
    """Tell the run's viewers why a queued run is still waiting (a status event, once per
    distinct reason)."""
    with db.write() as session:
        run = lock_run(session, run_id)
        if run is None or run.status != "queued":
            return
        last = session.scalar(
            select(Event.data)
            .where(Event.run_id == run_id, Event.type == "status")
            .order_by(Event.seq.desc())
            .limit(1)
        )
        if last and last.get("reason") == reason:
            return
        append_event(session, run, "status", status_data(run, reason))


def get_run(db: Database, run_id: str) -> Run | None:
    with db.read() as session:
        return session.get(Run, run_id)


def get_runs(db: Database, run_ids: list[str]) -> list[Run]:
    """The given runs in the given order (unknown ids are skipped)."""
    with db.read() as session:
        rows = {r.id: r for r in session.scalars(select(Run).where(Run.id.in_(run_ids)))}
        return [rows[i] for i in run_ids if i in rows]


@dataclass
class RunFilter:
    status: str | None = None
    method: str | None = None
    dataset: str | None = None
    preset: str | None = None
    verdict: str | None = None
    ids: list[str] | None = None
    project: str | None = None
    tags: tuple[str, ...] = ()  # every one of them
    cause: str | None = None
    search: str | None = None  # in the name, note, id and preset


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def list_runs(db: Database, filters: RunFilter, limit: int, offset: int) -> tuple[list[Run], int]:
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
    if filters.project:
        conditions.append(Run.project == filters.project)
    for tag in filters.tags:
        conditions.append(Run.id.in_(select(RunTag.run_id).where(RunTag.tag == tag)))
    if filters.cause:
        conditions.append(Run.cause == filters.cause)
    if filters.search:
        pattern = _like(filters.search)
        conditions.append(
            or_(
                *(
                    column.ilike(pattern, escape="\\")
                    for column in (Run.name, Run.note, Run.id, Run.preset)
                )
            )
        )
    with db.read() as session:
        total = session.scalar(select(func.count()).select_from(Run).where(*conditions)) or 0
        rows = session.scalars(
            select(Run)
            .where(*conditions)
            .order_by(Run.created_at.desc(), Run.id.desc())
            .limit(limit)
            .offset(offset)
        ).all()
        return list(rows), total


def delete_run(db: Database, run_id: str) -> Literal["deleted", "missing", "active", "in_sweep"]:
    """'deleted', 'missing', 'active' (a queued or running run must be cancelled first) or
    'in_sweep' (a sweep's run is a cell of its map, its counts and its shared links)."""
    with db.write() as session:
        run = lock_run(session, run_id)
        if run is None:
            return "missing"
        if run.status not in TERMINAL_STATUSES:
            return "active"
        if run.sweep_id is not None:
            return "in_sweep"
        for model in (Event, EpochRow, Projection):
            session.execute(delete(model).where(model.run_id == run_id))
        session.delete(run)
        return "deleted"


@dataclass(frozen=True)
class CancelOutcome:
    """What a cancel request found: the run (None when there is none) and whether the
    request ended it now (a queued run; a running one is only flagged)."""

    run: Run | None
    cancelled_now: bool = False


def request_cancel(db: Database, run_id: str) -> CancelOutcome:
    """Cancel a queued run at once; flag a running one: its worker stops within seconds, or,
    for an external run, its uploads are refused from now on and the ingest pass ends it
    once what arrived is measured (its loop may be gone: a killed job never finishes;
    backend/store/external.py ``close_run``)."""
    with db.write() as session:
        run = lock_run(session, run_id)
        if run is None:
            return CancelOutcome(None)
        if run.status == "queued":
            set_status(session, run, "cancelled", "cancelled before it started")
            return CancelOutcome(run, cancelled_now=True)
        if run.status == "running":
            run.cancel_requested = True
            run.updated_at = now()
        return CancelOutcome(run)


def edit_labels(db: Database, run_id: str, edit: LabelsEdit) -> Run | None:
    """Apply a labels edit (the fields it gives); None when the run does not exist."""
    with db.write() as session:
        run = lock_run(session, run_id)
        if run is None:
            return None
        project = None if edit.clear_project else (edit.project or run.project)
        tags = edit.tags if edit.tags is not None else list(run.tags or [])
        note = edit.note if edit.note is not None else (run.note or "")
        apply_labels(session, run, project, tags, note)
        run.updated_at = now()
        return run
