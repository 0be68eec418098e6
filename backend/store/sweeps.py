"""Sweeps: create one with all its runs, read it with its runs' outcomes, hand out the next
runs to send within its concurrency limit, cancel it.

A sweep's runs are ordinary rows of ``runs`` with ``sweep_id`` set. They are all stored
``queued`` at once; a run that has not been sent to the broker yet (``enqueued_at`` is None)
is *held* by its sweep, and :func:`take_runs_to_send` releases the next ones while fewer than
``concurrency`` of the sweep's runs are in flight (sent and queued, or running); the
reaper's sending pass (:func:`backend.store.leases.claim_unsent`) leaves held runs alone.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm.attributes import flag_modified

from backend.store.database import Database
from backend.store.leases import ToSend
from backend.store.models import EpochRow, Run, Sweep, json_safe, now
from backend.store.runs import add_run, request_cancel
from contract import ACTIVE_STATUSES


@dataclass(frozen=True)
class NewSweepRun:
    cell: int
    request: dict[str, Any]
    config: dict[str, Any]


def create_sweep(
    db: Database,
    *,
    request: dict[str, Any],
    name: str | None,
    axes: list[dict[str, Any]],
    seeds: list[int],
    points: list[dict[str, Any]],
    runs: list[NewSweepRun],
    concurrency: int,
) -> tuple[Sweep, list[str]]:
    """Store the sweep and every run of it (``queued``, held) in one transaction; returns
    the sweep and the run ids in order."""
    sweep_id = uuid.uuid4().hex[:12]
    cells: list[dict[str, Any]] = [{"point": json_safe(p), "runs": []} for p in points]
    run_ids = []
    with db.write() as session:
        sweep = Sweep(
            id=sweep_id,
            created_at=now(),
            name=name,
            request=json_safe(request),
            axes=json_safe(axes),
            seeds=list(seeds),
            cells=cells,
            concurrency=concurrency,
        )
        session.add(sweep)
        session.flush()
        for new in runs:
            run = add_run(session, new.request, new.config, sweep_id=sweep_id)
            cells[new.cell]["runs"].append(run.id)
            run_ids.append(run.id)
        flag_modified(sweep, "cells")  # filled in place: tell the session it changed
        return sweep, run_ids


def get_sweep(db: Database, sweep_id: str) -> Sweep | None:
    with db.read() as session:
        return session.get(Sweep, sweep_id)


def list_sweeps(db: Database, limit: int, offset: int) -> tuple[list[Sweep], int]:
    """Newest first; returns (page, total)."""
    with db.read() as session:
        total = session.scalar(select(func.count()).select_from(Sweep)) or 0
        rows = session.scalars(
            select(Sweep).order_by(Sweep.created_at.desc(), Sweep.id).limit(limit).offset(offset)
        ).all()
        return list(rows), total


def sweep_runs(db: Database, sweep_ids: list[str]) -> dict[str, Run]:
    """Every run of these sweeps, by id."""
    with db.read() as session:
        rows = session.scalars(select(Run).where(Run.sweep_id.in_(sweep_ids)))
        return {run.id: run for run in rows}


def final_records(db: Database, sweep_id: str) -> dict[str, dict[str, Any]]:
    """The last recorded epoch of each of the sweep's runs, by run id."""
    with db.read() as session:
        rows = session.execute(
            select(EpochRow.run_id, EpochRow.record)
            .join(Run, and_(Run.id == EpochRow.run_id, Run.last_epoch == EpochRow.epoch))
            .where(Run.sweep_id == sweep_id)
        )
        return {run_id: record for run_id, record in rows}


def take_runs_to_send(db: Database, sweep_id: str) -> list[ToSend]:
    """The held runs to send now so that at most ``concurrency`` of the sweep's runs are in
    flight, oldest first; marked as sent in the same transaction (under the sweep's lock), so
    two processes advancing the same sweep never send more than the limit between them."""
    with db.write() as session:
        sweep = session.execute(
            select(Sweep).where(Sweep.id == sweep_id).with_for_update()
        ).scalar_one_or_none()
        if sweep is None:
            return []
        rows = session.execute(
            select(Run.id, Run.status, Run.enqueued_at, Run.config)
            .where(Run.sweep_id == sweep_id, Run.status.in_(ACTIVE_STATUSES))
            .order_by(Run.created_at, Run.id)
        ).all()
        in_flight = sum(1 for r in rows if r.status == "running" or r.enqueued_at is not None)
        held = [r for r in rows if r.status == "queued" and r.enqueued_at is None]
        chosen = held[: max(0, sweep.concurrency - in_flight)]
        if chosen:
            ids = [r.id for r in chosen]
            session.execute(update(Run).where(Run.id.in_(ids)).values(enqueued_at=now()))
        return [ToSend(r.id, str((r.config or {}).get("device", "auto"))) for r in chosen]


def sweeps_with_held_runs(db: Database) -> list[str]:
    """Sweeps that still hold runs back (the reaper advances them)."""
    with db.read() as session:
        return list(
            session.scalars(
                select(Run.sweep_id)
                .where(Run.sweep_id.is_not(None), Run.status == "queued", Run.enqueued_at.is_(None))
                .distinct()
            )
        )


def cancel_sweep(db: Database, sweep_id: str) -> int:
    """Cancel every unfinished run of the sweep (queued ones at once, running ones within
    seconds); returns how many it touched."""
    with db.read() as session:
        ids = list(
            session.scalars(
                select(Run.id)
                .where(Run.sweep_id == sweep_id, Run.status.in_(ACTIVE_STATUSES))
                .order_by(Run.created_at.desc())  # held ones first: none of them starts
            )
        )
    for run_id in ids:
        request_cancel(db, run_id)
    return len(ids)
