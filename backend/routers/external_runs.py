"""External runs: the server side of ``client/PROTOCOL.md``, for training loops that log
their probe embeddings with ``collapse_lab.Monitor``. Every call needs the API token when
``API_TOKEN`` is set.

- ``POST /api/external-runs`` (``Idempotency-Key`` header) ``{"name", "config", "source",
  "resume_key"}`` -> 201 ``{"id", "url", "status": "running", "limits", "resumed",
  "last_epoch"}`` (200 with the same run for a known key, or a known ``resume_key``: the run
  continues, reopened if it was finished; 409 ``run_cancelled`` if it was cancelled); 413
  over ``MAX_BODY_BYTES`` (1 MiB).
- ``PUT /api/external-runs/{id}/epochs/{epoch}`` body one binary epoch message
  (``application/x-collapse-lab-epoch``) -> 202 ``{"epoch", "status": "accepted"}`` (200
  ``duplicate`` for the same data again, even logged at another time or after finish; 409
  ``epoch_conflict`` for other data, the stored epoch kept; 409 ``run_closed`` for
  anything else after finish; 413 over ``MAX_EPOCH_BYTES``; 415; 422 for an epoch over
  ``wire.MAX_EPOCH``, a malformed message, a probe whose shape changed, or arrays the
  diagnostics could not measure: :func:`_content_problem`). The request only stores: a worker on the
  ``ingest`` queue computes the diagnostics, the verdict and the projection.
- ``POST /api/external-runs/{id}/finish`` ``{"status", "error", "epochs_dropped",
  "epochs_skipped"}`` -> 202; the run takes that status once its uploads are processed.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

import numpy as np
from anyio import to_thread
from collapse_lab import wire  # the client package's decoder: one implementation of the format
from fastapi import APIRouter, Depends, Header, HTTPException, Path, Request, Response, status
from fastapi.responses import JSONResponse

from backend.auth import require_writer
from backend.broker import send_ingest
from backend.schemas import (
    NOT_FOUND,
    UNAUTHORIZED,
    ExternalEpochReply,
    ExternalFinishReply,
    ExternalLimits,
    ExternalRunCreate,
    ExternalRunCreated,
    ExternalRunFinish,
)
from backend.state import ServiceState, StateDep
from backend.store import external as external_store
from backend.store import runs as run_store
from backend.store.models import Run
from backend.validation import EpochBound, check_receivers

router = APIRouter(
    prefix="/api/external-runs",
    tags=["external runs"],
    dependencies=[Depends(require_writer)],
    responses=UNAUTHORIZED,
)

EPOCH_MEDIA_TYPE = wire.CONTENT_TYPE  # BodyLimits lets these bodies through to the route
# The upload's path (searched in the request path, which may carry a prefix): BodyLimits
# names EPOCH_MEDIA_TYPE in the 415 of a body of another type sent there.
EPOCH_PATH_PATTERN = r"/api/external-runs/[^/]+/epochs/[^/]+/?$"


def _problem(code: int, detail: str, error_code: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"detail": detail}
    if error_code:
        body["code"] = error_code
    return JSONResponse(body, status_code=code)


def _limits(state: ServiceState) -> ExternalLimits:
    return ExternalLimits(
        max_probe_size=state.settings.max_probe_size,
        max_epoch_bytes=state.settings.max_epoch_bytes,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ExternalRunCreated,
    responses={
        200: {
            "description": "Known Idempotency-Key (the run registered before) or resume_key "
            "(the run continues: resumed, last_epoch)."
        },
        409: {
            "description": "run_cancelled: the resume key's run was cancelled; "
            "idempotency_key_reused: the Idempotency-Key was sent before with another body."
        },
    },
)
def register_external_run(
    body: ExternalRunCreate,
    state: StateDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=64)] = None,
) -> Any:
    """Register a run logged from an external training loop; it is ``running`` at once. With
    a ``resume_key`` already known, continue that run instead (reopened if finished)."""
    check_receivers(body.alerts, state.settings, ["body", "alerts"])
    registration = body.model_dump(mode="json")
    if registration["resume_key"] is None:  # stored as the request: as before resume keys
        del registration["resume_key"]
    found = external_store.register_run(state.db, idempotency_key, registration)
    if found.refused:
        code = "idempotency_key_reused" if found.key_reused else "run_cancelled"
        return _problem(409, found.refused, code)
    if not found.created:
        response.status_code = status.HTTP_200_OK
    run = found.run
    return ExternalRunCreated(
        id=run.id,
        url=f"/runs/{run.id}",
        status=run.status,
        limits=_limits(state),
        resumed=found.resumed,
        last_epoch=found.last_epoch,
        reopened_finish=found.reopened_finish,
        accepts=list(wire.ARRAY_NAMES),
    )


def _external_run(state: ServiceState, run_id: str) -> Run:
    run = run_store.get_run(state.db, run_id)
    if run is None or run.source is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no external run {run_id!r}")
    return run


def _shape_problem(
    message: wire.EpochMessage, baseline: dict[str, list[int]] | None, max_probe: int
) -> str | None:
    rows = message.z.shape[0]
    views = 0 if message.views is None else message.views[0].shape[0]
    if rows > max_probe or views > max_probe:
        return (
            f"the probe has {max(rows, views)} rows, over this server's MAX_PROBE_SIZE {max_probe}"
        )
    if rows < 2:
        return "z needs at least 2 rows (probe samples)"
    problem = _content_problem(message)
    if problem is not None or baseline is None:
        return problem
    for name, array in (("z", message.z), ("h", message.h)):
        expected = baseline.get(name)
        shape = None if array is None else list(array.shape)
        if expected is not None and shape is not None and shape != expected:
            return (
                f"{name} has shape {shape}, the run's first epoch had {expected}: the probe set "
                "is fixed for a run"
            )
    return None


def _content_problem(message: wire.EpochMessage) -> str | None:
    """What the decoder lets through but the diagnostics cannot measure: an empty array,
    values too large to square, probabilities that are not, a predictor of the wrong shape.
    Refused here, since an epoch taken (202) and then not measured is lost without a word."""
    z, internals = message.z, message.internals
    arrays: dict[str, np.ndarray | None] = {"z": z, "h": message.h, **internals}
    if message.views is not None:
        arrays |= {"views_a": message.views[0], "views_b": message.views[1]}
    for name, array in arrays.items():
        if array is not None and (empty := wire.empty_problem(name, array.shape)):
            return empty
    for name, array in arrays.items():
        if array is not None and (peak := wire.peak(array)) > wire.MAX_MAGNITUDE:
            return (
                f"{name} has values up to {peak:.3g} in magnitude, beyond the "
                f"{wire.MAX_MAGNITUDE:.0e} the diagnostics can square in float32: scale it down"
            )
    if predictor := wire.predictor_weight_problem(internals, z.shape[1]):
        return predictor
    for name in wire.PROBABILITY_ARRAYS:
        probabilities = internals.get(name)
        if probabilities is None:
            continue
        sums = probabilities.sum(axis=1, dtype=np.float64)
        if not np.allclose(sums, 1, rtol=0, atol=wire.PROBABILITY_SUM_ATOL):
            worst = float(sums[np.argmax(np.abs(sums - 1))])
            return (
                f"{name} must hold probabilities, each row summing to 1 (one sums to "
                f"{worst:.4g}): {wire.APPLY_SOFTMAX}"
            )
    return None


@router.put(
    "/{run_id}/epochs/{epoch}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ExternalEpochReply,
    responses={
        200: {"description": "The same epoch again, byte for byte: nothing changes."},
        **NOT_FOUND,
        409: {
            "description": "run_closed (after finish, unless the same data again) or "
            "epoch_conflict (other data)."
        },
        413: {"description": "Over MAX_EPOCH_BYTES."},
        415: {"description": "Not application/x-collapse-lab-epoch."},
        422: {"description": "A malformed epoch message, or the probe's shape changed."},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {wire.CONTENT_TYPE: {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def upload_epoch(
    run_id: str,
    epoch: Annotated[int, Path(ge=0), EpochBound],
    request: Request,
    state: StateDep,
    response: Response,
) -> Any:
    """Store one epoch message and queue its diagnostics (the request never measures)."""
    run = await to_thread.run_sync(_external_run, state, run_id)
    media_type = request.headers.get("content-type", "").split(";")[0].strip()
    if media_type != wire.CONTENT_TYPE:
        return _problem(415, f"Content-Type must be {wire.CONTENT_TYPE}, not {media_type!r}")
    body = await request.body()  # bounded by MAX_EPOCH_BYTES in BodyLimits (backend/app.py)
    closed = external_store.closed_reason(run) if external_store.is_closed(run) else None
    return await to_thread.run_sync(_store_epoch, state, run_id, epoch, body, response, closed)


def _store_epoch(
    state: ServiceState,
    run_id: str,
    epoch: int,
    body: bytes,
    response: Response,
    closed: str | None,
) -> Any:
    """A stored epoch sent again with the same data is a duplicate even once the run is
    closed (a sync started again without its sync.json sends every epoch again), with other
    data a conflict, open or closed (an epoch file edited after its sync); a new epoch a
    closed run refuses (``closed``: why it is closed; None while it is open)."""
    digest = hashlib.sha256(body).hexdigest()
    known = external_store.upload_digest(state.db, run_id, epoch)
    if known is not None and (known == digest or _same_data(state, run_id, epoch, body)):
        response.status_code = status.HTTP_200_OK
        return ExternalEpochReply(epoch=epoch, status="duplicate")
    conflict = (
        f"epoch {epoch} is already stored with other data (a job restarted from an older "
        "checkpoint logs it again?): the stored epoch is kept and this one refused; epochs "
        "after the last stored one are taken"
    )
    if known is not None:  # before the closed check: what the sender must hear is the clash
        return _problem(409, conflict, "epoch_conflict")
    if closed is not None:
        return _problem(409, closed, "run_closed")
    try:
        message = wire.decode_epoch(body)
    except wire.MessageError as exc:
        return _problem(422, f"malformed epoch message: {exc}")
    if message.epoch != epoch:
        return _problem(422, f"the message is epoch {message.epoch}, the path says {epoch}")
    baseline = external_store.baseline_shapes(state.db, run_id)
    problem = _shape_problem(message, baseline, state.settings.max_probe_size)
    if problem:
        return _problem(422, problem)
    shapes = {"z": list(message.z.shape)}
    if message.h is not None:
        shapes["h"] = list(message.h.shape)
    outcome = external_store.store_upload(state.db, run_id, epoch, digest, body, shapes)
    if outcome == "closed":
        closing = run_store.get_run(state.db, run_id)
        reason = external_store.closed_reason(closing) if closing else "the run is closed"
        return _problem(409, reason, "run_closed")
    if outcome == "conflict" and not _same_data(state, run_id, epoch, body):
        return _problem(409, conflict, "epoch_conflict")
    if outcome == "missing":
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no external run {run_id!r}")
    if outcome in ("duplicate", "conflict"):
        response.status_code = status.HTTP_200_OK
        return ExternalEpochReply(epoch=epoch, status="duplicate")
    send_ingest(state.celery, run_id)  # when Redis is down the reaper sends it later
    return ExternalEpochReply(epoch=epoch, status="accepted")


def _same_data(state: ServiceState, run_id: str, epoch: int, body: bytes) -> bool:
    """Whether ``body`` holds the stored epoch's data (other bytes: another ``logged_at``,
    as when a restarted job logs an epoch again from the same checkpoint)."""
    stored = external_store.upload_body(state.db, run_id, epoch)
    return stored is not None and wire.same_data(stored, body)


@router.post(
    "/{run_id}/finish",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ExternalFinishReply,
    responses={
        **NOT_FOUND,
        409: {"description": "run_closed: the run was cancelled before the client finished it."},
    },
)
def finish_external_run(run_id: str, body: ExternalRunFinish, state: StateDep) -> Any:
    """Close the run to uploads; it takes ``status`` once its uploads are processed."""
    outcome = external_store.request_finish(state.db, run_id, body.model_dump(mode="json"))
    if outcome.run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no external run {run_id!r}")
    if outcome.finish is None:
        return _problem(409, external_store.closed_reason(outcome.run), "run_closed")
    send_ingest(state.celery, run_id)
    return ExternalFinishReply(id=run_id, status=outcome.finish["status"])
