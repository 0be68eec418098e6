"""Sweeps: a base run config x a grid over one or two fields or options x seeds.

- ``POST /api/sweeps`` ``{"base": {run config}, "grid": {"variance_weight": [0, 25]},
  "seeds": [0, 1], "concurrency": 2, "stop_when_settled": true}`` -> 201 ``{"id", "url",
  "api_url", "runs": [run ids], "count"}``. Every run is validated before any is stored; a
  bad grid gets 422 at ``["body", "grid", key]`` (unknown field or option, a value out of
  range), a bad base at ``["body", "base", field]``, too many runs (``MAX_SWEEP_RUNS``) at
  ``["body", "grid"]``. Needs the API token when one is set. The runs are ordinary runs
  tagged with the sweep; at most ``concurrency`` of them are sent to the workers at a time
  (policy: :mod:`backend.dispatch`).
- ``POST /api/sweeps/preview`` (the same body) -> ``{"axes": [{key, field, is_option,
  values}], "seeds", "runs"}``: the grid expanded as ``POST /api/sweeps`` would (a grid
  key's text parsed, an integer field's range rounded), nothing stored; the Launch form's
  live run count. Errors as for ``POST /api/sweeps`` (the runs' configs are not checked).
- ``GET /api/sweeps?limit=&offset=`` -> ``{"data": [summaries], "count"}``, newest first.
- ``GET /api/sweeps/{id}``: the sweep with one cell per grid point (values, runs with their
  status, verdict, onset and final metrics; the seeds aggregated, see
  :mod:`backend.sweep_schemas`).
- ``GET /api/sweeps/{id}/cells.csv`` / ``cells.json``: one row per run, for download.
- ``GET /api/sweeps/{id}/report.html``: the map, its line plot and cells as one
  self-contained page (the pages' own chart code inlined; opens offline).
- ``POST /api/sweeps/{id}/cancel`` -> 202 with the sweep: its unfinished runs are cancelled.
- ``POST /api/sweeps/{id}/share`` -> 201 a read-only share link (``/s/<token>``) to the map
  and its runs.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse

from backend.auth import ReadAccess, not_found, read_access, require_writer
from backend.dispatch import advance_sweep
from backend.report_page import ReportAssetsMissing, render_module_page
from backend.schemas import CONFLICT, NOT_FOUND, UNAUTHORIZED, ShareOut, share_from_row
from backend.state import ServiceState, StateDep
from backend.store import shares as share_store
from backend.store import sweeps as sweep_store
from backend.store.models import Sweep
from backend.sweep_schemas import (
    GridAxisOut,
    SweepCellRow,
    SweepCreated,
    SweepDetail,
    SweepList,
    SweepPreview,
    cell_rows,
    sweep_detail,
    sweep_summary,
)
from backend.validation import as_sent, check_receivers, validate_request
from contract import metric_catalogue
from contract.strict import error_message
from contract.sweeps import SweepError, SweepRequest, axis_of_field, expand_sweep

router = APIRouter(prefix="/api", tags=["sweeps"], responses=UNAUTHORIZED)
Access = Annotated[ReadAccess, Depends(read_access)]


def _body_error(loc: list[Any], msg: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ["body", *loc], "msg": msg, "type": "value_error"}])


def _validated_runs(
    body: SweepRequest, state: ServiceState
) -> tuple[list[dict[str, Any]], list[sweep_store.NewSweepRun], list[dict[str, Any]]]:
    """(axes, runs, grid points), every run resolved like a launch; the first bad run's
    errors are reported at the grid key (or base field) that caused them."""
    try:
        axes, runs = expand_sweep(body, state.settings.max_sweep_runs)
    except SweepError as exc:
        raise _body_error(list(exc.loc), exc.message) from None
    new_runs = []
    for run in runs:
        try:
            _, config = validate_request(run.request, state.settings, where=())
        except RequestValidationError as exc:
            errors = []
            for error in exc.errors():
                loc = list(error["loc"])[1:]  # after the union member (the method)
                said = error_message(error)
                axis = axis_of_field(axes, loc)
                if axis is not None:
                    value = run.point[axis.key]
                    where, msg = ["grid", axis.key], f"value {json.dumps(value)}: {said}"
                elif loc[:1] == ["seed"] and body.seeds is not None:
                    where, msg = ["seeds"], f"seed {run.seed}: {said}"
                else:
                    where, msg = ["base", *error["loc"]], said
                errors.append({**error, "loc": ["body", *where], "msg": msg})
            raise RequestValidationError(errors) from None
        new_runs.append(sweep_store.NewSweepRun(run.cell, run.request, config.model_dump()))
    points = {run.cell: dict(run.point) for run in runs}
    axes_out = [
        {"key": a.key, "field": a.field, "is_option": a.is_option, "values": a.values} for a in axes
    ]
    return axes_out, new_runs, [points[cell] for cell in sorted(points)]


@router.post(
    "/sweeps",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(require_writer)],
    response_model=SweepCreated,
)
def create_sweep(body: SweepRequest, state: StateDep, response: Response) -> SweepCreated:
    """Validate every run of the sweep, store them queued and send the first ones."""
    check_receivers(body.alerts, state.settings, ["body", "alerts"])
    axes, runs, points = _validated_runs(body, state)
    seeds = sorted({int(r.config["seed"]) for r in runs})
    sweep, run_ids = sweep_store.create_sweep(
        state.db,
        request={**body.model_dump(mode="json"), "base": as_sent(body.base)},
        name=body.name,
        axes=axes,
        seeds=seeds,
        points=points,
        runs=runs,
        concurrency=body.concurrency or state.settings.sweep_concurrency,
    )
    advance_sweep(state.db, state.celery, state.settings, sweep.id)
    response.headers["Location"] = f"/api/sweeps/{sweep.id}"
    return SweepCreated(
        id=sweep.id,
        url=f"/sweeps/{sweep.id}",
        api_url=f"/api/sweeps/{sweep.id}",
        runs=run_ids,
        count=len(run_ids),
    )


@router.post("/sweeps/preview", response_model=SweepPreview)
def preview_sweep(body: SweepRequest, state: StateDep) -> SweepPreview:
    """The grid's axes and run count, as creating the sweep would expand them, every run
    validated as creating it would: a preview counts no run the launch would refuse."""
    check_receivers(body.alerts, state.settings, ["body", "alerts"])
    axes, runs, _ = _validated_runs(body, state)
    return SweepPreview(
        axes=[GridAxisOut.model_validate(axis) for axis in axes],
        seeds=sorted({int(run.config["seed"]) for run in runs}),
        runs=len(runs),
    )


@router.get("/sweeps", response_model=SweepList)
def list_sweeps(
    state: StateDep,
    access: Access,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> SweepList:
    """Sweeps, newest first (on a share link: the shared sweep only)."""
    page, total = sweep_store.list_sweeps(state.db, limit, offset)
    if not access.all_runs:
        page = [s for s in page if access.can_read_sweep(s.id)]
        total = len(page)
    runs = sweep_store.sweep_runs(state.db, [s.id for s in page])
    by_sweep: dict[str, list[Any]] = {}
    for run in runs.values():
        by_sweep.setdefault(run.sweep_id or "", []).append(run)
    return SweepList(data=[sweep_summary(s, by_sweep.get(s.id, [])) for s in page], count=total)


def _existing_sweep(state: ServiceState, sweep_id: str) -> Sweep:
    """The sweep, for a writer (who may act on any sweep); 404 when there is none."""
    sweep = sweep_store.get_sweep(state.db, sweep_id)
    if sweep is None:
        raise not_found("sweep", sweep_id)
    return sweep


def _readable_sweep(state: ServiceState, access: ReadAccess, sweep_id: str) -> Sweep:
    """The sweep if this caller may read it (a share link covers one sweep); else 404."""
    if not access.can_read_sweep(sweep_id):
        raise not_found("sweep", sweep_id)
    return _existing_sweep(state, sweep_id)


def _detail(state: ServiceState, sweep: Sweep) -> SweepDetail:
    runs = sweep_store.sweep_runs(state.db, [sweep.id])
    return sweep_detail(sweep, runs, sweep_store.final_records(state.db, sweep.id))


@router.get("/sweeps/{sweep_id}", response_model=SweepDetail, responses=NOT_FOUND)
def get_sweep(sweep_id: str, state: StateDep, access: Access) -> SweepDetail:
    """The sweep with one cell per grid point."""
    return _detail(state, _readable_sweep(state, access, sweep_id))


@router.get(
    "/sweeps/{sweep_id}/cells.json",
    response_class=JSONResponse,  # documents the rows (returned as an attachment)
    response_model=list[SweepCellRow],
    responses=NOT_FOUND,
)
def export_cells_json(sweep_id: str, state: StateDep, access: Access) -> Response:
    """One record per run: grid values, seed, outcome, final metrics."""
    rows = cell_rows(_detail(state, _readable_sweep(state, access, sweep_id)))
    return Response(
        json.dumps(rows, indent=1),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="sweep-{sweep_id}.json"'},
    )


@router.get("/sweeps/{sweep_id}/cells.csv", response_class=Response, responses=NOT_FOUND)
def export_cells_csv(sweep_id: str, state: StateDep, access: Access) -> Response:
    """The same rows as cells.json, as CSV."""
    rows = cell_rows(_detail(state, _readable_sweep(state, access, sweep_id)))
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return Response(
        buffer.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="sweep-{sweep_id}.csv"'},
    )


@router.get("/sweeps/{sweep_id}/report.html", response_class=HTMLResponse, responses=NOT_FOUND)
def sweep_report(sweep_id: str, state: StateDep, access: Access) -> HTMLResponse:
    """Self-contained HTML report of the sweep's map (opens offline)."""
    detail = _detail(state, _readable_sweep(state, access, sweep_id))
    title = f"Collapse Lab: sweep {sweep_id}"
    data = {
        "title": title,
        "sweep": detail.model_dump(mode="json"),
        "metrics": metric_catalogue().model_dump(mode="json"),
    }
    try:
        body = render_module_page(
            state.settings.frontend_dir, title, "js/sweep-report.js", "renderSweepReport", data
        )
    except ReportAssetsMissing as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(error)) from error
    return HTMLResponse(
        body, headers={"Content-Disposition": f'inline; filename="sweep-{sweep_id}-report.html"'}
    )


@router.post(
    "/sweeps/{sweep_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Depends(require_writer)],
    response_model=SweepDetail,
    responses={**NOT_FOUND, **CONFLICT},
)
def cancel_sweep(sweep_id: str, state: StateDep) -> SweepDetail:
    """Cancel every unfinished run: queued ones at once, running ones within seconds; 409
    when none is left (as for a run that has ended)."""
    sweep = _existing_sweep(state, sweep_id)
    if sweep_store.cancel_sweep(state.db, sweep_id) == 0:
        raise HTTPException(status.HTTP_409_CONFLICT, "every run of the sweep has ended already")
    return _detail(state, sweep)


@router.post(
    "/sweeps/{sweep_id}/share",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(require_writer)],
    response_model=ShareOut,
    responses=NOT_FOUND,
)
def share_sweep(sweep_id: str, state: StateDep) -> ShareOut:
    """A read-only link to the sweep's map and its runs (``/s/<token>``)."""
    sweep = _existing_sweep(state, sweep_id)
    run_ids = [run_id for cell in sweep.cells for run_id in cell["runs"]]
    return share_from_row(share_store.create_share(state.db, run_ids, sweep_id=sweep.id))
