"""External runs: runs logged from a researcher's own training loop by
``collapse_lab.Monitor`` (``client/PROTOCOL.md``). Register (idempotent by key), keep each
uploaded epoch message as sent (idempotent by digest), hand the pending ones to the ingest
worker one at a time (:func:`claim_next_upload`), and close the run once the client finished
and every upload is processed.

An external run is a ``runs`` row like any other (so lists, compare, shares and the event
stream treat it alike) with ``source`` set, ``method``/``dataset`` "external", an empty
``config`` and the registration (name, the researcher's free-form config, source) as
``request``. It is ``running`` from registration to finish; no lease, no heartbeat.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.store.database import Database
from backend.store.eventlog import (
    FINISHED_BY_CLIENT,
    append_event,
    lock_run,
    set_status,
    status_data,
)
from backend.store.models import ExternalUpload, Run, json_safe, now, take_verdict
from backend.store.runs import labels_from_request, new_run_row
from contract import RunStatus

EXTERNAL = "external"  # the method and dataset column of an external run

UploadOutcome = Literal["accepted", "duplicate", "conflict", "closed", "missing"]


def _find_by_key(db: Database, key: str) -> Run | None:
    with db.read() as session:
        return session.scalar(select(Run).where(Run.idempotency_key == key))


@dataclass(frozen=True)
class Registration:
    """What a registration found or made. ``refused``: why the run cannot be continued
    (then ``run`` is the run it found)."""

    run: Run
    created: bool
    resumed: bool  # found by resume key, registered by another registration than this one
    last_epoch: int | None  # the highest uploaded epoch
    refused: str | None = None
    key_reused: bool = False  # ``refused``: the key was registered with another body
    reopened_finish: dict[str, Any] | None = None  # the finish call this registration undid


def _last_upload(session: Session, run_id: str) -> int | None:
    return session.scalar(
        select(func.max(ExternalUpload.epoch)).where(ExternalUpload.run_id == run_id)
    )


def _continue_run(
    db: Database, resume_key: str, key: str | None, where: str
) -> Registration | None:
    """The run registered with ``resume_key``, reopened if the client had finished it (a
    job that exited through ``finish()`` before its requeue); None when there is none."""
    with db.write() as session:
        run = session.scalar(select(Run).where(Run.resume_key == resume_key).with_for_update())
        if run is None:
            return None
        last_epoch = _last_upload(session, run.id)
        resumed = not key or key != run.idempotency_key
        if run.cancel_requested or run.status == "cancelled":
            refused = (
                f"the run {run.id} of resume key {resume_key!r} was cancelled: pass another "
                "resume key (or resume=False) to start a new run"
            )
            return Registration(run, False, resumed, last_epoch, refused)
        reopened_finish = None
        if run.external_finish is not None or run.status != "running":
            reopened_finish = run.external_finish
            run.external_finish = None
            run.error = None
            run.finished_at = None
            run.updated_at = now()
            reason = f"reopened: continued{where} with its resume key"
            set_status(session, run, "running", reason)
        elif resumed:
            run.updated_at = now()
            reason = f"continued{where} with its resume key"
            append_event(session, run, "status", status_data(run, reason))
        return Registration(run, False, resumed, last_epoch, reopened_finish=reopened_finish)


def registration_digest(registration: dict[str, Any]) -> str:
    """The sha256 of a registration, whatever the order of its keys."""
    text = json.dumps(registration, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _by_key(db: Database, run: Run, key: str, digest: str) -> Registration:
    """The run registered with ``key`` before: refused when that registration's body
    differs (a run registered by an earlier release has no digest: any body is that run)."""
    last_epoch = upload_last_epoch(db, run.id)
    if run.idempotency_digest is not None and run.idempotency_digest != digest:
        refused = (
            f"the Idempotency-Key {key!r} was sent before with another body (run {run.id}): "
            "a retried registration sends the same body, another registration another key"
        )
        return Registration(run, False, False, last_epoch, refused, key_reused=True)
    return Registration(run, False, False, last_epoch)


def register_run(db: Database, key: str | None, registration: dict[str, Any]) -> Registration:
    """Store a new ``running`` external run, or find the one registered with ``key`` (the
    Idempotency-Key of a retried registration) or with ``registration["resume_key"]`` (a
    restarted job continuing its run, reopened if it was finished)."""
    key = key or None  # an empty header is no key
    resume_key = registration.get("resume_key") or None
    source = json_safe(dict(registration.get("source") or {}))
    where = " on ".join(str(source[k]) for k in ("script", "host") if source.get(k))
    where = f" from {where}" if where else ""
    if resume_key and (known := _continue_run(db, resume_key, key, where)) is not None:
        return known
    digest = registration_digest(registration)
    if key and (run := _find_by_key(db, key)) is not None:
        return _by_key(db, run, key, digest)
    run = new_run_row(
        "running",
        method=EXTERNAL,
        preset=None,
        dataset=EXTERNAL,
        request=json_safe(registration),
        config={},
        attempts=1,
        source=source,
        idempotency_key=key,
        idempotency_digest=digest if key else None,
        resume_key=resume_key,
    )
    run.started_at = run.created_at  # running from its registration
    try:
        with db.write() as session:
            session.add(run)
            labels_from_request(session, run, registration)
            reason = f"external run registered{where}"
            append_event(session, run, "status", status_data(run, reason))
    except IntegrityError:  # the same key registered concurrently: that run wins
        if resume_key and (known := _continue_run(db, resume_key, key, where)) is not None:
            return known
        found = _find_by_key(db, key) if key else None
        if found is None or key is None:
            raise
        return _by_key(db, found, key, digest)
    return Registration(run, True, False, None)


def upload_last_epoch(db: Database, run_id: str) -> int | None:
    """The highest epoch uploaded to the run; None before the first."""
    with db.read() as session:
        return _last_upload(session, run_id)


def is_closed(run: Run) -> bool:
    """Whether the run takes no more uploads (finished by the client, cancelled, or ended)."""
    return run.external_finish is not None or run.cancel_requested or run.status != "running"


def closed_reason(run: Run) -> str:
    """Why a closed run refuses an upload, for the client's error."""
    if run.cancel_requested or run.status == "cancelled":
        return (
            "the run was cancelled on its page and takes no more epochs: create a new Monitor "
            "(with another resume key) for a new run"
        )
    return "the run is finished and takes no more epochs: create a new Monitor for a new run"


def upload_digest(db: Database, run_id: str, epoch: int) -> str | None:
    with db.read() as session:
        return session.scalar(
            select(ExternalUpload.digest).where(
                ExternalUpload.run_id == run_id, ExternalUpload.epoch == epoch
            )
        )


def baseline_shapes(db: Database, run_id: str) -> dict[str, list[int]] | None:
    """The array shapes of the run's lowest uploaded epoch (the probe set is fixed)."""
    with db.read() as session:
        return session.scalar(
            select(ExternalUpload.shapes)
            .where(ExternalUpload.run_id == run_id)
            .order_by(ExternalUpload.epoch)
            .limit(1)
        )


def store_upload(
    db: Database, run_id: str, epoch: int, digest: str, body: bytes, shapes: dict[str, list[int]]
) -> UploadOutcome:
    """Keep one epoch message, once: a repeat with the same digest is a duplicate, with
    another digest a conflict; nothing is stored for a closed or missing run."""
    with db.write() as session:
        run = lock_run(session, run_id)
        if run is None or run.source is None:
            return "missing"
        stored = session.scalar(
            select(ExternalUpload.digest).where(
                ExternalUpload.run_id == run_id, ExternalUpload.epoch == epoch
            )
        )
        if stored is not None:
            return "duplicate" if stored == digest else "conflict"
        if is_closed(run):
            return "closed"
        session.add(
            ExternalUpload(
                run_id=run_id,
                epoch=epoch,
                digest=digest,
                body=body,
                shapes=shapes,
                created_at=now(),
            )
        )
        run.updated_at = now()
        return "accepted"


# An upload claimed this long ago and still not processed: the pass measuring it died.
CLAIM_STALE_S = 300.0


def claim_next_upload(
    db: Database, run_id: str, stale_after_s: float = CLAIM_STALE_S
) -> int | None:
    """The run's lowest unprocessed epoch, claimed for this ingest pass; None when there is
    none, or when another pass holds it (claimed less than ``stale_after_s`` ago). Only the
    lowest is ever claimed, under the run's lock, so two passes of one run (duplicate tasks
    on two workers) never measure the same epoch at once, and an epoch is measured only
    after every earlier one was recorded (its diagnostics read that history): the pass that
    finds the next epoch taken stops and leaves the run to the pass that took it."""
    with db.write() as session:
        if lock_run(session, run_id) is None:
            return None
        upload = session.execute(
            select(ExternalUpload.id, ExternalUpload.epoch, ExternalUpload.claimed_at)
            .where(ExternalUpload.run_id == run_id, ExternalUpload.processed_at.is_(None))
            .order_by(ExternalUpload.epoch)
            .limit(1)
        ).first()
        if upload is None:
            return None
        if upload.claimed_at is not None and upload.claimed_at > now() - stale_after_s:
            return None
        session.execute(
            update(ExternalUpload).where(ExternalUpload.id == upload.id).values(claimed_at=now())
        )
        return int(upload.epoch)


def upload_body(db: Database, run_id: str, epoch: int) -> bytes | None:
    with db.read() as session:
        return session.scalar(
            select(ExternalUpload.body).where(
                ExternalUpload.run_id == run_id, ExternalUpload.epoch == epoch
            )
        )


def mark_processed(db: Database, run_id: str, epoch: int, error: str | None = None) -> None:
    """The worker is done with this upload (``error``: why it could not be measured)."""
    with db.write() as session:
        session.execute(
            update(ExternalUpload)
            .where(ExternalUpload.run_id == run_id, ExternalUpload.epoch == epoch)
            .values(processed_at=now(), error=error)
        )


def upload_errors(db: Database, run_id: str) -> dict[int, str]:
    """Uploads the worker could not measure, with why."""
    with db.read() as session:
        rows = session.execute(
            select(ExternalUpload.epoch, ExternalUpload.error).where(
                ExternalUpload.run_id == run_id, ExternalUpload.error.is_not(None)
            )
        )
        return {int(epoch): str(error) for epoch, error in rows}


@dataclass(frozen=True)
class FinishOutcome:
    run: Run | None
    finish: dict[str, Any] | None  # what the run was closed with (the first finish call)


def request_finish(db: Database, run_id: str, finish: dict[str, Any]) -> FinishOutcome:
    """Close the run to uploads with the client's final status (the first call wins). A run
    that ended without one (cancelled while its loop was silent) keeps its status and takes
    none: ``finish`` is then None."""
    with db.write() as session:
        run = lock_run(session, run_id)
        if run is None or run.source is None:
            return FinishOutcome(None, None)
        if run.external_finish is None and run.status == "running":
            run.external_finish = json_safe(finish)
            run.updated_at = now()
        kept = run.external_finish
        return FinishOutcome(run, dict(kept) if kept is not None else None)


def _closing_reason(finish: dict[str, Any], errors: dict[int, str]) -> str:
    notes = []
    if finish.get("epochs_dropped"):
        notes.append(f"epochs not delivered by the client: {finish['epochs_dropped']}")
    if finish.get("epochs_skipped"):
        notes.append(f"epochs not sent because they held NaN/inf: {finish['epochs_skipped']}")
    if errors:
        notes.append(f"epochs the server could not measure: {sorted(errors)}")
    if finish.get("stopped_at_epoch") is not None:
        why = f": {finish['stop_reason']}" if finish.get("stop_reason") else ""
        epoch = finish["stopped_at_epoch"]
        notes.insert(0, f"the client stopped training after epoch {epoch}{why}")
    return FINISHED_BY_CLIENT + (f" ({'; '.join(notes)})" if notes else "")


def close_run(db: Database, run_id: str, verdict: dict[str, Any] | None) -> bool:
    """Give a finished or cancelled external run whose uploads are all processed its final
    status (the client's, or ``cancelled``) and verdict; returns whether it did. Does nothing
    while uploads are pending, while later verdicts wait to be judged again with a late epoch
    (the pass that revises them closes it: backend/store/epochs.py ``stale_verdicts``), or
    before the client's finish or a cancel."""
    errors = upload_errors(db, run_id)
    with db.write() as session:
        run = lock_run(session, run_id)
        if run is None or run.status != "running":
            return False
        if run.external_finish is None and not run.cancel_requested:
            return False
        pending = session.scalar(
            select(func.count())
            .select_from(ExternalUpload)
            .where(ExternalUpload.run_id == run_id, ExternalUpload.processed_at.is_(None))
        )
        if pending or run.verdicts_stale_from is not None:
            return False
        if verdict is not None:
            take_verdict(run, verdict)
        finish = run.external_finish
        if finish is None:  # cancelled, the client silent (gone, or not told yet)
            status: RunStatus = "cancelled"
            reason = "cancelled on request: its training loop's later uploads are refused"
        else:
            run.error = finish.get("error")
            status = "failed" if finish.get("status") == "failed" else "succeeded"
            reason = _closing_reason(finish, errors)
            if run.cancel_requested:
                status, reason = "cancelled", f"cancelled on request; {reason}"
        set_status(session, run, status, reason)
        return True


def runs_needing_ingest(db: Database, before: float) -> list[str]:
    """Runs with an upload that arrived before ``before`` and is still unprocessed, or that
    the client finished (or a cancel flagged) before ``before`` and are still ``running``
    (the pass that closes them may have been lost): the broker check re-sends their ingest
    task when it is not in Redis (:func:`backend.dispatch.resend_lost`)."""
    with db.read() as session:
        waiting = session.scalars(
            select(ExternalUpload.run_id)
            .where(ExternalUpload.processed_at.is_(None), ExternalUpload.created_at < before)
            .distinct()
        )
        finished = session.scalars(
            select(Run.id).where(
                Run.status == "running",
                Run.source.is_not(None),
                Run.external_finish.is_not(None) | Run.cancel_requested.is_(True),
                Run.updated_at < before,
            )
        )
        return list(dict.fromkeys([*waiting, *finished]))


def claim_ingest_resend(db: Database, run_ids: list[str], sent_before: float) -> list[str]:
    """Of ``run_ids``, the runs whose ingest task was not re-sent since ``sent_before``,
    marked re-sent now in the same transaction: the caller is the one process that sends
    them (as :func:`backend.store.leases.claim_unsent` does for train tasks)."""
    if not run_ids:
        return []
    with db.write() as session:
        claimed = list(
            session.scalars(
                select(Run.id)
                .where(
                    Run.id.in_(run_ids),
                    Run.ingest_sent_at.is_(None) | (Run.ingest_sent_at < sent_before),
                )
                .with_for_update(skip_locked=True)
            )
        )
        if claimed:
            session.execute(update(Run).where(Run.id.in_(claimed)).values(ingest_sent_at=now()))
        return claimed
