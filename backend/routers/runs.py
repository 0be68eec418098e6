"""Runs: launch, list, read, cancel, delete; epochs and projections.

- ``POST /api/runs`` body = run config (``{"method": "simsiam", "options": {...}}`` or
  ``{"preset": "simsiam-no-stopgrad", "epochs": 30}``) -> 201 with the run (``id``,
  ``status: "queued"``, ``url: "/runs/<id>"``, ``events_url``...); 422
  ``{"detail": [{"loc": ["body", field...], "msg"}]}`` for a bad config. Needs the API token
  when ``API_TOKEN`` is set.
- ``POST /api/zoo`` ``{"presets": [...] | null (all), "overrides": {"epochs": 5, ...}}`` ->
  201 ``{"data": [runs], "count", "compare_url"}``: launches every preset at once.
- ``GET /api/runs?status=&method=&dataset=&preset=&verdict=&ids=a,b&limit=50&offset=0`` ->
  ``{"data": [summaries], "count": total}``, newest first. A summary has ``id, url, status,
  method, preset, dataset, backbone, options, epochs, last_epoch, progress, verdict, error,
  effective_rank_history`` (projector effective rank per epoch, for sparklines) and times.
- ``GET /api/runs/{id}``: the summary plus ``config`` (resolved), ``request`` (as sent),
  ``attempts``, ``worker_losses``, ``last_event_id``.
- ``GET /api/runs/{id}/epochs?since=E``: the epoch records (epochs > E when given).
- ``GET /api/runs/{id}/projections`` -> ``{"epochs": [...]}``;
  ``GET /api/runs/{id}/projections/{epoch}`` -> ``{"epoch", "points": [[x, y]...], "labels"}``.
- ``GET /api/runs/{id}/probe/{index}.png``: probe image ``index`` (the order of the projection
  points) as a PNG, upscaled by nearest neighbour to at least 96 px; 404 past the probe's end,
  409 while the run's worker has not written its probe images (``DATA_DIR/runs/<id>``).
- ``POST /api/runs/{id}/cancel`` -> 202 with the run (``cancelled`` at once when queued; a
  running run stops within a few seconds and then streams ``status: cancelled``).
- ``DELETE /api/runs/{id}`` -> 204 (409 while queued or running: cancel it first).
"""

from __future__ import annotations

import io
import math
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Body, Depends, HTTPException, Query, Response, status
from PIL import Image
from pydantic import Field

from backend.auth import ReadAccess, check_readable, read_access, require_writer
from backend.settings import probe_images_path
from backend.state import ServiceState, StateDep
from backend.store import repository as repo
from backend.validation import resolve_request
from workers.engine.spec import PRESETS, RunConfig, StrictModel

router = APIRouter(prefix="/api", tags=["runs"])
Access = Annotated[ReadAccess, Depends(read_access)]
Status = Literal["queued", "running", "succeeded", "failed", "cancelled"]
VerdictKind = Literal["healthy", "dimensional_collapse", "complete_collapse"]


def _request_schema() -> dict[str, Any]:
    schema = RunConfig.model_json_schema()
    schema["required"] = []
    schema["additionalProperties"] = False
    schema["title"] = "RunRequest"
    schema["description"] = (
        "A run config: give a method or a preset (or both); every other field is optional "
        "and overrides the method's and the preset's defaults. Unknown fields are errors."
    )
    return schema


RUN_REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": _request_schema()}},
    }
}


def _with_links(run: dict[str, Any]) -> dict[str, Any]:
    run_id = run["id"]
    return {
        **run,
        "api_url": f"/api/runs/{run_id}",
        "events_url": f"/api/runs/{run_id}/events",
        "epochs_url": f"/api/runs/{run_id}/epochs",
    }


def _launch(state: ServiceState, payload: dict[str, Any]) -> dict[str, Any]:
    config = resolve_request(payload, state.settings)
    return _store_and_enqueue(state, payload, config.model_dump())


def _store_and_enqueue(
    state: ServiceState, payload: dict[str, Any], config: dict[str, Any]
) -> dict[str, Any]:
    run, messages = repo.create_run(state.db, payload, config)
    state.publisher.publish(messages)
    state.enqueue_run(run["id"])
    return _with_links(run)


@router.post(
    "/runs",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(require_writer)],
    openapi_extra=RUN_REQUEST_BODY,
)
def create_run(
    payload: Annotated[dict[str, Any], Body()], state: StateDep, response: Response
) -> dict[str, Any]:
    """Validate the config, store the run as queued and send it to the train queue."""
    run = _launch(state, payload)
    response.headers["Location"] = run["api_url"]
    return run


class ZooRequest(StrictModel):
    presets: list[str] | None = None
    overrides: dict[str, Any] = Field(default_factory=dict)


@router.post("/zoo", status_code=status.HTTP_201_CREATED, dependencies=[Depends(require_writer)])
def launch_zoo(body: ZooRequest, state: StateDep) -> dict[str, Any]:
    """Launch every preset (or the listed ones) with the same overrides (dataset, epochs...).
    All configs are validated before any run is stored."""
    names = body.presets if body.presets is not None else list(PRESETS)
    if not names:
        raise HTTPException(422, [{"loc": ["body", "presets"], "msg": "no presets given"}])
    payloads, configs = [], []
    for index, name in enumerate(names):
        if name not in PRESETS:
            raise HTTPException(
                422, [{"loc": ["body", "presets", index], "msg": f"unknown preset {name!r}"}]
            )
        payload = {**body.overrides, "preset": name}
        payload.pop("method", None)
        payloads.append(payload)
        configs.append(resolve_request(payload, state.settings).model_dump())
    runs = [_store_and_enqueue(state, p, c) for p, c in zip(payloads, configs, strict=True)]
    return {
        "data": runs,
        "count": len(runs),
        "compare_url": "/compare?runs=" + ",".join(r["id"] for r in runs),
    }


@router.get("/runs")
def list_runs(
    state: StateDep,
    access: Access,
    status_filter: Annotated[Status | None, Query(alias="status")] = None,
    method: str | None = None,
    dataset: str | None = None,
    preset: str | None = None,
    verdict: VerdictKind | None = None,
    ids: Annotated[str | None, Query(description="Comma-separated run ids.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> dict[str, Any]:
    """Runs, newest first, filtered; ``count`` is the number matching the filters."""
    id_list = [i for i in ids.split(",") if i] if ids is not None else None
    if not access.all_runs:
        allowed = sorted(access.run_ids)
        id_list = [i for i in id_list if i in access.run_ids] if id_list is not None else allowed
    filters = repo.RunFilter(status_filter, method, dataset, preset, verdict, id_list)
    page, total = repo.list_runs(state.db, filters, limit, offset)
    return {"data": page, "count": total}


def readable_run(state: ServiceState, access: ReadAccess, run_id: str) -> dict[str, Any]:
    check_readable(access, run_id)
    run = repo.get_run(state.db, run_id)
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no run {run_id!r}")
    return run


@router.get("/runs/{run_id}")
def get_run(run_id: str, state: StateDep, access: Access) -> dict[str, Any]:
    """The run: config, status, progress, verdict, error."""
    return _with_links(readable_run(state, access, run_id))


EPOCHS_RESPONSE = {
    200: {
        "description": "the epoch records, in epoch order",
        "content": {"application/json": {"schema": {"type": "array", "items": {"type": "object"}}}},
    }
}


@router.get("/runs/{run_id}/epochs", response_class=Response, responses=EPOCHS_RESPONSE)
def get_epochs(
    run_id: str,
    state: StateDep,
    access: Access,
    since: Annotated[int | None, Query(ge=-1, description="Only epochs after this one.")] = None,
) -> Response:
    """Per-epoch records in epoch order (the same JSON the ``epoch`` events carry)."""
    readable_run(state, access, run_id)
    body = repo.epoch_records_json(state.db, run_id, since)
    return Response(body, media_type="application/json")


@router.get("/runs/{run_id}/projections")
def list_projections(run_id: str, state: StateDep, access: Access) -> dict[str, Any]:
    """Epochs that have a 2-D projection."""
    readable_run(state, access, run_id)
    return {"epochs": repo.projection_epochs(state.db, run_id)}


@router.get("/runs/{run_id}/projections/{epoch}")
def get_projection(run_id: str, epoch: int, state: StateDep, access: Access) -> dict[str, Any]:
    """2-D points (aligned with the previous epoch's) with their labels."""
    readable_run(state, access, run_id)
    projection = repo.get_projection(state.db, run_id, epoch)
    if projection is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no projection for epoch {epoch}")
    return projection


PROBE_THUMBNAIL_MIN_PX = 96
PNG_RESPONSE = {200: {"description": "the probe image", "content": {"image/png": {}}}}


@lru_cache(maxsize=8)
def _probe_images(path: Path, modified_ns: int) -> np.ndarray:
    """The run's probe images, uint8 (N, C, S, S), memory-mapped (cached per file version, so
    clicking points does not re-read it)."""
    return np.load(path, mmap_mode="r")


def probe_thumbnail_png(image: np.ndarray) -> bytes:
    """PNG of one probe image (uint8 (C, S, S)), each pixel repeated ``ceil(96 / S)`` times
    per axis (nearest neighbour, so small images stay crisp)."""
    factor = max(1, math.ceil(PROBE_THUMBNAIL_MIN_PX / image.shape[-1]))
    pixels = np.ascontiguousarray(np.transpose(image, (1, 2, 0)))  # (S, S, C)
    if pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    picture = Image.fromarray(pixels)
    picture = picture.resize((picture.width * factor, picture.height * factor), Image.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


@router.get("/runs/{run_id}/probe/{index}.png", response_class=Response, responses=PNG_RESPONSE)
def get_probe_image(run_id: str, index: int, state: StateDep, access: Access) -> Response:
    """Probe image ``index`` (the index of a UMAP point) as an upscaled PNG."""
    readable_run(state, access, run_id)
    path = probe_images_path(state.settings.run_dir(run_id))
    try:
        images = _probe_images(path, path.stat().st_mtime_ns)
    except (OSError, ValueError) as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "the run's probe images are not on this server yet (its worker writes them when "
            f"training starts, into DATA_DIR): {exc}",
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
)
def cancel_run(run_id: str, state: StateDep) -> dict[str, Any]:
    """Cooperative cancel: a queued run ends at once, a running one within seconds."""
    run, messages = repo.request_cancel(state.db, run_id)
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no run {run_id!r}")
    state.publisher.publish(messages)
    if run["status"] not in ("queued", "running") and not messages:
        raise HTTPException(status.HTTP_409_CONFLICT, f"the run has already {run['status']}")
    return _with_links(run)


@router.delete(
    "/runs/{run_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(require_writer)],
)
def delete_run(run_id: str, state: StateDep) -> Response:
    """Delete a finished run with its records and checkpoint."""
    outcome = repo.delete_run(state.db, run_id)
    if outcome == "missing":
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no run {run_id!r}")
    if outcome == "active":
        raise HTTPException(status.HTTP_409_CONFLICT, "the run is queued or running: cancel it")
    shutil.rmtree(state.settings.run_dir(run_id), ignore_errors=True)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
