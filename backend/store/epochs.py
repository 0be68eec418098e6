"""Per-epoch records and 2-D projections: each stored exactly once per (run, epoch), each
announced by an event in the run's log."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from collapse_lab import wire
from sqlalchemy import Text, cast, func, select

from backend.store.database import Database
from backend.store.eventlog import append_event, lock_run
from backend.store.models import EpochRow, Projection, Run, json_safe, now, take_verdict
from contract import EpochRecord


def record_epoch(db: Database, run_id: str, epoch_record: EpochRecord) -> bool:
    """Store one epoch record exactly once and append its ``epoch`` event. Returns whether
    it was stored: False for a repeat of a stored epoch (ignored) or an unknown run."""
    record = json_safe(epoch_record.model_dump(mode="json"))
    epoch = epoch_record.epoch
    with db.write() as session:
        run = lock_run(session, run_id)
        if run is None:
            return False
        exists = session.scalar(
            select(EpochRow.id).where(EpochRow.run_id == run_id, EpochRow.epoch == epoch)
        )
        if exists is not None:
            return False
        rank = (record.get("projector") or {}).get("effective_rank")
        session.add(
            EpochRow(
                run_id=run_id, epoch=epoch, record=record, effective_rank=rank, created_at=now()
            )
        )
        if run.last_epoch is None or epoch > run.last_epoch:
            run.last_epoch = epoch
            verdict = record.get("verdict")
            if verdict:
                take_verdict(run, verdict)
        else:  # a late epoch: the later verdicts were judged without it
            stale = run.verdicts_stale_from
            run.verdicts_stale_from = epoch if stale is None else min(stale, epoch)
        append_event(session, run, "epoch", record)
        return True


@dataclass(frozen=True)
class StaleVerdicts:
    """The run's records when some of their verdicts were judged without a late epoch."""

    since: int  # the earliest late epoch: every later verdict is to be judged again
    history: list[EpochRecord]  # every stored record, in epoch order


def stale_verdicts(db: Database, run_id: str) -> StaleVerdicts | None:
    """What :func:`revise_verdicts` needs when an epoch was stored after later ones and the
    later verdicts were not judged again since; None otherwise."""
    with db.read() as session:
        since = session.scalar(select(Run.verdicts_stale_from).where(Run.id == run_id))
    if since is None:
        return None
    return StaleVerdicts(since, typed_epoch_records(db, run_id))


def revise_verdicts(
    db: Database, run_id: str, stale: StaleVerdicts, records: list[EpochRecord]
) -> None:
    """Store the new verdicts of already stored epoch records (``records``: whole records,
    as :func:`workers.engine.probe.verdicts_revised_by` returns them for ``stale``). When the
    run's last epoch is among them its verdict becomes the run's, announced by an ``epoch``
    event carrying the revised record (the run page replaces the record it holds, the alert
    scanner reads the run's new verdict). The run stops counting as stale unless another
    epoch was stored since ``stale`` was read: the pass that stored it revises again."""
    by_epoch = {record.epoch: json_safe(record.model_dump(mode="json")) for record in records}
    with db.write() as session:
        run = lock_run(session, run_id)
        if run is None:
            return
        stored = session.scalar(
            select(func.count()).select_from(EpochRow).where(EpochRow.run_id == run_id)
        )
        if run.verdicts_stale_from == stale.since and stored == len(stale.history):
            run.verdicts_stale_from = None
        if not by_epoch:
            return
        rows = session.scalars(
            select(EpochRow).where(EpochRow.run_id == run_id, EpochRow.epoch.in_(by_epoch))
        )
        for row in rows:
            row.record = by_epoch[row.epoch]
        last = by_epoch.get(run.last_epoch) if run.last_epoch is not None else None
        if last is not None and last.get("verdict"):
            take_verdict(run, last["verdict"])
            append_event(session, run, "epoch", last)


def stored_epoch_numbers(db: Database, run_id: str) -> set[int]:
    with db.read() as session:
        return set(session.scalars(select(EpochRow.epoch).where(EpochRow.run_id == run_id)))


def epoch_records(db: Database, run_id: str) -> list[dict[str, Any]]:
    """The run's epoch records in epoch order."""
    query = select(EpochRow.record).where(EpochRow.run_id == run_id)
    with db.read() as session:
        return list(session.scalars(query.order_by(EpochRow.epoch)))


def typed_epoch_records(db: Database, run_id: str) -> list[EpochRecord]:
    """The run's epoch records as the typed model, in epoch order. Records stored by any
    earlier release validate: every field added since has a default (None where a metric
    was not measured yet), so old runs keep opening (tests/service/test_old_records.py)."""
    return [EpochRecord.model_validate(record) for record in epoch_records(db, run_id)]


def epoch_records_json(db: Database, run_id: str, since: int | None = None) -> str:
    """Like :func:`epoch_records` but as one JSON array built from the stored JSON text,
    without decoding and re-encoding every record (the records of a long run weigh MBs)."""
    query = select(cast(EpochRow.record, Text)).where(EpochRow.run_id == run_id)
    if since is not None:
        query = query.where(EpochRow.epoch > since)
    with db.read() as session:
        return "[" + ",".join(session.scalars(query.order_by(EpochRow.epoch))) + "]"


def rank_histories(db: Database, run_ids: list[str]) -> dict[str, list[float | None]]:
    """The projector's effective rank per epoch (index = epoch, None where not recorded) of
    each given run, for the run list's sparklines: one query for the whole page, answered
    from an index. A history is at most ``wire.MAX_EPOCH + 1`` long: an epoch beyond it (one
    stored before uploads were bounded) is left out, not padded up to with Nones."""
    rank = EpochRow.effective_rank
    histories: dict[str, list[float | None]] = defaultdict(list)
    if not run_ids:
        return histories
    with db.read() as session:
        rows = session.execute(
            select(EpochRow.run_id, EpochRow.epoch, rank)
            .where(EpochRow.run_id.in_(run_ids), EpochRow.epoch.between(0, wire.MAX_EPOCH))
            .order_by(EpochRow.run_id, EpochRow.epoch)
        )
        for run_id, epoch, value in rows:
            values = histories[run_id]
            values.extend([None] * (epoch + 1 - len(values)))
            values[epoch] = value
    return histories


def record_projection(
    db: Database, run_id: str, epoch: int, points: list[list[float]], labels: list[int]
) -> bool:
    """Store an epoch's 2-D projection once and append its ``projection`` event, whose data
    is a pointer: ``{"epoch", "count", "url"}``. Returns whether it was stored: False for a
    repeat of a stored epoch's projection (ignored) or an unknown run."""
    with db.write() as session:
        run = lock_run(session, run_id)
        if run is None:
            return False
        exists = session.scalar(
            select(Projection.id).where(Projection.run_id == run_id, Projection.epoch == epoch)
        )
        if exists is not None:
            return False
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
        append_event(session, run, "projection", data)
        return True


def projection_epochs(db: Database, run_id: str) -> list[int]:
    with db.read() as session:
        return list(
            session.scalars(
                select(Projection.epoch)
                .where(Projection.run_id == run_id)
                .order_by(Projection.epoch)
            )
        )


def get_projection(db: Database, run_id: str, epoch: int) -> Projection | None:
    with db.read() as session:
        return session.scalar(
            select(Projection).where(Projection.run_id == run_id, Projection.epoch == epoch)
        )


def previous_projection(db: Database, run_id: str, before_epoch: int) -> list[list[float]] | None:
    """Points of the latest stored projection before ``before_epoch`` (for alignment)."""
    with db.read() as session:
        return session.scalar(
            select(Projection.points)
            .where(Projection.run_id == run_id, Projection.epoch < before_epoch)
            .order_by(Projection.epoch.desc())
            .limit(1)
        )
