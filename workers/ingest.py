"""External runs on a worker (queue ``ingest``): turn each uploaded epoch message into an
epoch record with the engine's own diagnostics and verdict, publish it like a built-in
run's epoch, queue its projection, and close the run once the client finished.

One pass handles every pending upload of the run in epoch order, claiming one at a time
(:func:`backend.store.external.claim_next_upload`), so a lost or duplicated task costs
nothing: a second pass running at the same time stops at the epoch the first one holds, the
next pass (the next upload's, the finish call's, or the broker check's) picks up what is
left, and the store records each epoch once.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

import numpy as np
from collapse_lab import wire  # the client package's decoder: one implementation of the format
from sqlalchemy.exc import OperationalError

from backend.store import epochs as epoch_store
from backend.store import external as external_store
from backend.store import runs as run_store
from workers.engine.cause import configuration_of
from workers.engine.probe import ProbeError, probe_epoch_record, verdicts_revised_by
from workers.engine.verdict import run_verdict
from workers.lifecycle import WorkerContext, queue_projection, with_db_retry

log = logging.getLogger(__name__)


def _configuration(context: WorkerContext, run_id: str) -> dict[str, Any]:
    """The researcher's config as registered, read by the cause diagnosis only for the
    guards no probe can see (``stop_gradient: false``), as a built-in run's is."""
    run = run_store.get_run(context.db, run_id)
    config = (run.request or {}).get("config") if run is not None else None
    return configuration_of(config) if isinstance(config, dict) else {}


def _ingest_epoch(context: WorkerContext, run_id: str, epoch: int) -> str | None:
    """Measure one upload and record it; returns why it could not be measured, or None."""
    db = context.db
    body = external_store.upload_body(db, run_id, epoch)
    if body is None:
        return "the upload is gone"
    try:
        message = wire.decode_epoch(body)
        history = epoch_store.typed_epoch_records(db, run_id)
        record = probe_epoch_record(
            epoch,
            message.z,
            history=history,
            h=message.h,
            views=message.views,
            labels=message.labels,
            loss=message.loss,
            scalars=message.scalars,
            internals=message.internals,
            configuration=_configuration(context, run_id),
        )
    except (wire.MessageError, ProbeError) as exc:
        return str(exc)
    except OperationalError:
        raise  # the database is away: the upload stays pending for the next pass
    except Exception as exc:  # anything else would fail the task, and the next pass, forever
        log.exception("external run %s, epoch %d could not be measured", run_id, epoch)
        return f"{exc.__class__.__name__}: {exc}"[:1000]
    with_db_retry(lambda: epoch_store.record_epoch(db, run_id, record))
    labels = message.labels if message.labels is not None else np.zeros(len(message.z))
    queue_projection(context, run_id, epoch, message.z, labels)
    return None


def execute_ingest(context: WorkerContext, run_id: str) -> str:
    """Process the run's pending uploads, then close it if the client finished."""
    db = context.db
    done = 0
    while (
        epoch := with_db_retry(partial(external_store.claim_next_upload, db, run_id))
    ) is not None:
        error = _ingest_epoch(context, run_id, epoch)
        if error:
            log.warning("external run %s, epoch %d not measured: %s", run_id, epoch, error)
        with_db_retry(partial(external_store.mark_processed, db, run_id, epoch, error))
        done += 1
    configuration = _configuration(context, run_id)
    stale = with_db_retry(partial(epoch_store.stale_verdicts, db, run_id))
    if stale is not None:
        # once per pass, from the earliest late epoch stored (by this pass, or by one whose
        # worker was lost before it revised): a sync of an offline part uploads faster than
        # its epochs are measured, so a pass holds many, and each revision judges every
        # later epoch again (verdicts_revised_by)
        revised = verdicts_revised_by(stale.history, stale.since, configuration)
        with_db_retry(lambda: epoch_store.revise_verdicts(db, run_id, stale, revised))
    history = stale.history if stale is not None else epoch_store.typed_epoch_records(db, run_id)
    verdict = (
        run_verdict(history, configuration=configuration).model_dump(mode="json")
        if history
        else None
    )
    closed = with_db_retry(lambda: external_store.close_run(db, run_id, verdict))
    return f"{done} epochs" + (", closed" if closed else "")
