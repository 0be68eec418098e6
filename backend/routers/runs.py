"""Runs: launch, list, read, cancel, delete; epochs and projections. The response and
request models are in :mod:`backend.schemas` (and ``/openapi.json``).

- ``POST /api/runs`` body = run config (``{"method": "simsiam", "options": {...}}`` or
  ``{"preset": "simsiam-no-stopgrad", "epochs": 30}``) -> 201 with the run (``id``,
  ``status: "queued"``, ``url: "/runs/<id>"``, ``events_url``...); 422
  ``{"detail": [{"loc": ["body", field...], "msg", "type"}]}`` for a bad config. Needs the API token
  when ``API_TOKEN`` is set.
- ``POST /api/zoo`` ``{"presets": [...] | null (all), "overrides": {"epochs": 5, ...}}`` ->
  201 ``{"data": [runs], "count", "compare_url"}``: launches every preset at once (at most
  ``MAX_ZOO_PRESETS`` = twice the number of presets).
- ``GET /api/runs?status=&method=&dataset=&preset=&verdict=&ids=a,b&project=&tag=&tag=&cause=
  &q=&limit=50&offset=0`` (``tag`` repeated: every one; ``q``: text in name, note, id, preset) ->
  ``{"data": [summaries], "count": total}``, newest first. A summary has ``id``, its links
  (``url``, ``api_url``, ``events_url``, ``epochs_url``), ``status, method, preset, dataset,
  num_classes, backbone, options, epochs, last_epoch, progress, verdict, error,
  effective_rank_history`` (projector effective rank per epoch, derived from the epoch
  records, for sparklines) and times.
- ``GET /api/runs/{id}``: the summary plus ``config`` (resolved), ``request`` (as sent),
  ``attempts``, ``worker_losses``, ``last_event_id`` and, for a queued run, ``waiting``:
  ``{"reason", "detail", "ahead"}``, why it has not started (``backend.dispatch.why_waiting``).
- ``GET /api/runs/{id}/epochs?since=E``: the epoch records (epochs > E when given).
- ``GET /api/runs/{id}/projections`` -> ``{"epochs": [...]}``;
  ``GET /api/runs/{id}/projections/{epoch}`` -> ``{"epoch", "points": [[x, y]...], "labels"}``.
- ``GET /api/runs/{id}/probe/{index}.png``: probe image ``index`` (the order of the projection
  points) as a PNG, upscaled by nearest neighbour to at least 96 px; 404 past the probe's end
  and for an external run (it has none), 409 while the run's worker has not written its
  probe images (``DATA_DIR/runs/<id>``).
- ``POST /api/runs/{id}/cancel`` -> 202 with the run (``cancelled`` at once when queued; a
  running run stops within a few seconds and then streams ``status: cancelled``).
- ``PATCH /api/runs/{id}/labels`` ``{"project", "clear_project", "tags", "note"}`` (the fields
  given replace the run's) -> the run. Needs the API token when ``API_TOKEN`` is set.
- ``DELETE /api/runs/{id}`` -> 204 (409 while queued or running: cancel it first).
"""

from __future__ import annotations

import io
import math
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Body, Depends, HTTPException, Query, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from PIL import Image
from pydantic import Field

from backend.auth import ReadAccess, check_readable, not_found, read_access, require_writer
from backend.broker import send_ingest
from backend.dispatch import waiting_of
from backend.read_cache import LIST
from backend.schemas import (
    CONFLICT,
    NOT_FOUND,
    UNAUTHORIZED,
    EpochRecord,
    ProjectionEpochs,
    ProjectionPoints,
    RunDetail,
    RunList,
    ZooResult,
    detail_from_row,
    projection_from_row,
    summary_from_row,
)
from backend.settings import probe_images_path
from backend.state import ServiceState, StateDep
from backend.store import epochs as epoch_store
from backend.store import runs as run_store
from backend.store.models import Run
from backend.validation import EpochBound, accepted_config, as_sent, validate_request
from contract import (
    ACTIVE_STATUSES,
    PRESETS,
    ZOO_FIELDS,
    CauseGuard,
    RunStatus,
    StrictInput,
    VerdictKind,
)
from contract.labels import MAX_PROJECT_CHARS, LabelsEdit, RunLabels
from contract.requests import RunRequest

router = APIRouter(prefix="/api", tags=["runs"], responses=UNAUTHORIZED)
Access = Annotated[ReadAccess, Depends(read_access)]


def run_detail(state: ServiceState, run: Run) -> RunDetail:
    histories = epoch_store.rank_histories(state.db, [run.id])
    detail = detail_from_row(run, histories.get(run.id, []))
    detail.waiting = waiting_of(state.db, state.settings, run)
    return detail


def _store_and_enqueue(
    state: ServiceState, payload: dict[str, Any], config: dict[str, Any]
) -> RunDetail:
    run = run_store.create_run(state.db, payload, config)
    state.cache.invalidate(run.id)  # at once: the hub hears of it a moment later
    state.enqueue_run(run.id)
    return detail_from_row(run, [])


@router.post(
    "/runs",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(require_writer)],
    response_model=RunDetail,
)
def create_run(
    request: Annotated[RunRequest, Body()], state: StateDep, response: Response
) -> RunDetail:
    """Validate the config, store the run as queued and send it to the train queue."""
    config = accepted_config(request, state.settings)
    run = _store_and_enqueue(state, as_sent(request), config.model_dump())
    response.headers["Location"] = run.api_url
    return run


# What a zoo's overrides may set: the fields no preset sets, and the labels.
ZOO_OVERRIDES = frozenset(ZOO_FIELDS) | frozenset(RunLabels.model_fields)

# One zoo request launches at most this many runs (a preset may be listed more than once).
MAX_ZOO_PRESETS = 2 * len(PRESETS)


class ZooRequest(StrictInput):
    presets: list[Annotated[str, Field(max_length=100)]] | None = Field(
        None,
        max_length=MAX_ZOO_PRESETS,
        description=f"Preset names (at most {MAX_ZOO_PRESETS}); null = every preset.",
    )
    overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="Run-config fields applied to every preset: those of contract.ZOO_FIELDS "
        "(dataset, epochs, seed...; the rest is each preset's own) and the run labels.",
    )


def _body_error(loc: list[str | int], msg: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ["body", *loc], "msg": msg, "type": "value_error"}])


@router.post(
    "/zoo",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(require_writer)],
    response_model=ZooResult,
)
def launch_zoo(body: ZooRequest, state: StateDep) -> ZooResult:
    """Launch every preset (or the listed ones) with the same overrides (dataset, epochs...).
    All configs are validated before any run is stored."""
    names = body.presets if body.presets is not None else list(PRESETS)
    if not names:
        raise _body_error(["presets"], "no presets given")
    for field in body.overrides:
        if field not in ZOO_OVERRIDES:
            raise _body_error(
                ["overrides", field],
                f"the zoo does not set {field!r}: each preset keeps its own; a zoo sets "
                f"{', '.join(ZOO_FIELDS)} and the labels",
            )
    payloads, configs = [], []
    for index, name in enumerate(names):
        if name not in PRESETS:
            raise _body_error(["presets", index], f"unknown preset {name!r}")
        payload = {**body.overrides, "preset": name}
        payload.pop("method", None)
        request, config = validate_request(payload, state.settings, where=("body", "overrides"))
        payloads.append(as_sent(request))
        configs.append(config.model_dump())
    runs = [_store_and_enqueue(state, p, c) for p, c in zip(payloads, configs, strict=True)]
    return ZooResult(
        data=runs,
        count=len(runs),
        compare_url="/compare?runs=" + ",".join(r.id for r in runs),
    )


@router.get(
    "/runs",
    response_class=JSONResponse,  # documents the model as application/json
    response_model=RunList,
)
async def list_runs(
    state: StateDep,
    access: Access,
    status_filter: Annotated[RunStatus | None, Query(alias="status")] = None,
    method: str | None = None,
    dataset: str | None = None,
    preset: str | None = None,
    verdict: VerdictKind | None = None,
    ids: Annotated[str | None, Query(description="Comma-separated run ids.")] = None,
    project: Annotated[str | None, Query(max_length=MAX_PROJECT_CHARS)] = None,
    tag: Annotated[
        list[str] | None, Query(max_length=50, description="Runs with every tag given.")
    ] = None,
    cause: Annotated[
        CauseGuard | None, Query(description="The guard the verdict names as cause.")
    ] = None,
    q: Annotated[
        str | None, Query(max_length=200, description="Text in the name, note, id or preset.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    """Runs, newest first, filtered; ``count`` is the number matching the filters. Encoded
    once and served from a cache for up to a second, dropped at the next change (a cache hit
    is answered on the event loop; the query and encoding run in a worker thread)."""
    # labels are stored without the spaces around them (contract/labels.py): so are the
    # filters read; an empty ?tag= filters nothing, as an empty ?project= does
    tags = tuple(sorted({t.strip() for t in tag or [] if t.strip()}))
    project = project.strip() if project is not None else None
    query: tuple[object, ...] = (status_filter, method, dataset, preset, verdict, ids, project)
    query += (tags, cause, q, limit, offset)
    key = ("runs", *map(str, query))
    cached = state.cache.get(key) if access.all_runs else None
    if cached is not None:
        return Response(cached, media_type="application/json")
    generation = state.cache.generation()
    id_list = [i for i in ids.split(",") if i] if ids is not None else None
    if not access.all_runs:
        allowed = sorted(access.run_ids)
        id_list = [i for i in id_list if i in access.run_ids] if id_list is not None else allowed
    filters = run_store.RunFilter(
        status_filter,
        method,
        dataset,
        preset,
        verdict,
        id_list,
        project=project,
        tags=tags,
        cause=cause,
        search=q.strip() if q else None,
    )
    body = await run_in_threadpool(_run_list_json, state, filters, limit, offset)
    if access.all_runs:
        state.cache.put(key, LIST, body, generation)
    return Response(body, media_type="application/json")


def _run_list_json(
    state: ServiceState, filters: run_store.RunFilter, limit: int, offset: int
) -> bytes:
    page, total = run_store.list_runs(state.db, filters, limit, offset)
    histories = epoch_store.rank_histories(state.db, [r.id for r in page])
    listing = RunList(
        data=[summary_from_row(r, histories.get(r.id, [])) for r in page], count=total
    )
    return listing.model_dump_json().encode()


def readable_run_row(state: ServiceState, access: ReadAccess, run_id: str) -> Run:
    """The stored run, when this caller may read it; 404 (or 401 from auth) otherwise."""
    check_readable(access, run_id)
    run = run_store.get_run(state.db, run_id)
    if run is None:
        raise not_found("run", run_id)
    return run


def readable_run(state: ServiceState, access: ReadAccess, run_id: str) -> RunDetail:
    """The run as GET /api/runs/{id} shows it, when this caller may read it."""
    return run_detail(state, readable_run_row(state, access, run_id))


@router.get("/runs/{run_id}", response_model=RunDetail, responses=NOT_FOUND)
def get_run(run_id: str, state: StateDep, access: Access) -> RunDetail:
    """The run: config, status, progress, verdict, error."""
    return readable_run(state, access, run_id)


@router.get(
    "/runs/{run_id}/epochs",
    response_class=JSONResponse,  # documents the model as application/json
    response_model=list[EpochRecord],
    responses={
        200: {"description": "The epoch records, in epoch order."},
        **NOT_FOUND,
    },
)
async def get_epochs(
    run_id: str,
    state: StateDep,
    access: Access,
    since: Annotated[
        int | None, Query(ge=-1, description="Only epochs after this one."), EpochBound
    ] = None,
) -> Response:
    """Per-epoch records in epoch order (the same JSON the ``epoch`` events carry). Served
    as stored, without decoding and re-encoding (a long run's records weigh MBs); a cache
    hit on the event loop, the query in a worker thread."""
    check_readable(access, run_id)
    key = ("epochs", run_id, str(since))
    body = state.cache.get(key)
    if body is None:
        generation = state.cache.generation()
        body = await run_in_threadpool(_epochs_json, state, access, run_id, since)
        state.cache.put(key, run_id, body, generation)
    return Response(body, media_type="application/json")


def _epochs_json(state: ServiceState, access: ReadAccess, run_id: str, since: int | None) -> bytes:
    readable_run_row(state, access, run_id)  # 404 for a run that does not exist
    return epoch_store.epoch_records_json(state.db, run_id, since).encode()


@router.get("/runs/{run_id}/projections", response_model=ProjectionEpochs, responses=NOT_FOUND)
def list_projections(run_id: str, state: StateDep, access: Access) -> ProjectionEpochs:
    """Epochs that have a 2-D projection."""
    readable_run_row(state, access, run_id)
    return ProjectionEpochs(epochs=epoch_store.projection_epochs(state.db, run_id))


@router.get(
    "/runs/{run_id}/projections/{epoch}", response_model=ProjectionPoints, responses=NOT_FOUND
)
def get_projection(
    run_id: str, epoch: Annotated[int, EpochBound], state: StateDep, access: Access
) -> ProjectionPoints:
    """2-D points (aligned with the previous epoch's) with their labels."""
    readable_run_row(state, access, run_id)
    projection = epoch_store.get_projection(state.db, run_id, epoch)
    if projection is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no projection for epoch {epoch}")
    return projection_from_row(projection)


PROBE_THUMBNAIL_MIN_PX = 96
PNG_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"description": "The probe image.", "content": {"image/png": {}}},
    **NOT_FOUND,
    **CONFLICT,
}


@lru_cache(maxsize=8)
def _probe_images(path: Path, modified_ns: int) -> np.ndarray:
    """The run's probe images, uint8 (N, C, S, S), memory-mapped (cached per file version, so
    clicking points does not re-read it)."""
    images: np.ndarray = np.load(path, mmap_mode="r")
    return images


def probe_thumbnail_png(image: np.ndarray) -> bytes:
    """PNG of one probe image (uint8 (C, S, S)), each pixel repeated ``ceil(96 / S)`` times
    per axis (nearest neighbour, so small images stay crisp)."""
    factor = max(1, math.ceil(PROBE_THUMBNAIL_MIN_PX / image.shape[-1]))
    pixels = np.ascontiguousarray(np.transpose(image, (1, 2, 0)))  # (S, S, C)
    if pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    picture = Image.fromarray(pixels)
    picture = picture.resize(
        (picture.width * factor, picture.height * factor), Image.Resampling.NEAREST
    )
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


@router.get("/runs/{run_id}/probe/{index}.png", response_class=Response, responses=PNG_RESPONSE)
def get_probe_image(run_id: str, index: int, state: StateDep, access: Access) -> Response:
    """Probe image ``index`` (the index of a UMAP point) as an upscaled PNG."""
    run = readable_run_row(state, access, run_id)
    if run.source is not None:  # its training loop sends embeddings, never images
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            "an external run has no probe images: its training loop sends the probe's "
            "embeddings only",
        )
    path = probe_images_path(state.settings.run_dir(run_id))
    try:
        images = _probe_images(path, path.stat().st_mtime_ns)
    except (OSError, ValueError):  # the reason names a path of this server: not shown
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "the run's probe images are not on this server yet (its worker writes them when "
            "training starts)",
        ) from None
    if not 0 <= index < images.shape[0]:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"no probe image {index}: the probe has {images.shape[0]}"
        )
    return Response(
        probe_thumbnail_png(images[index]),
        media_type="image/png",
        headers={"Cache-Control": "private, max-age=86400"},
    )


@router.post(
    "/runs/{run_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Depends(require_writer)],
    response_model=RunDetail,
    responses={**NOT_FOUND, **CONFLICT},
)
def cancel_run(run_id: str, state: StateDep) -> RunDetail:
    """Cooperative cancel: a queued run ends at once, a running one within seconds (an
    external run once the uploads that arrived are measured: its ingest pass ends it)."""
    cancel = run_store.request_cancel(state.db, run_id)
    run = cancel.run
    if run is None:
        raise not_found("run", run_id)
    state.cache.invalidate(run_id)
    if run.status not in ACTIVE_STATUSES and not cancel.cancelled_now:
        raise HTTPException(status.HTTP_409_CONFLICT, f"the run is already {run.status}")
    if run.source is not None and run.status == "running":
        send_ingest(state.celery, run_id)  # when Redis is down the reaper sends it later
    return run_detail(state, run)


@router.patch(
    "/runs/{run_id}/labels",
    dependencies=[Depends(require_writer)],
    response_model=RunDetail,
    responses=NOT_FOUND,
)
def edit_labels(run_id: str, edit: LabelsEdit, state: StateDep) -> RunDetail:
    """Change a run's project, tags or note (the fields given; the others stay)."""
    run = run_store.edit_labels(state.db, run_id, edit)
    if run is None:
        raise not_found("run", run_id)
    state.cache.invalidate(run_id)
    return run_detail(state, run)


@router.delete(
    "/runs/{run_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(require_writer)],
    responses={**NOT_FOUND, **CONFLICT},
)
def delete_run(run_id: str, state: StateDep) -> Response:
    """Delete a finished run with its records and checkpoint."""
    outcome = run_store.delete_run(state.db, run_id)
    if outcome == "missing":
        raise not_found("run", run_id)
    if outcome == "active":
        raise HTTPException(status.HTTP_409_CONFLICT, "the run is queued or running: cancel it")
    if outcome == "in_sweep":
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "the run is one of a sweep's (its map, counts and shared links hold it): it is "
            "kept with its sweep",
        )
    state.cache.invalidate(run_id)
    shutil.rmtree(state.settings.run_dir(run_id), ignore_errors=True)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
