"""Reports and exports of a run or a comparison.

- ``GET /api/runs/{id}/report.html``: self-contained HTML drawn by the pages' own chart code
  (data, chart modules and plotly.js inline; opens offline; see ``backend.report_page``).
  ``GET /api/compare/report.html?runs=a,b`` the same for several.
- ``GET /api/runs/{id}/epochs.csv`` / ``.json``: the epoch records as a download. The CSV
  has a column per scalar field that holds no metric (``epoch``, timings, ``verdict.*``,
  ``placement.*``, a ``logs.*`` the registry does not declare), then the registry's export
  columns (``MetricEntry.columns``: derived metrics such as ``projector.spread`` computed);
  spectra are in the JSON. ``GET /api/compare/epochs.csv?runs=a,b`` / ``.json`` with a
  ``run_id`` column.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response

from backend.auth import ReadAccess, read_access
from backend.report_page import ReportAssetsMissing, render_report
from backend.routers.methods import catalogue
from backend.routers.runs import readable_run as readable_run_detail
from backend.schemas import NOT_FOUND, UNAUTHORIZED, RunEpochsExport, projection_from_row
from backend.state import ServiceState, StateDep
from backend.store import epochs as epoch_store
from contract import METRICS, EpochRecord
from contract.metrics import column_value, metric_places

router = APIRouter(prefix="/api", tags=["reports"], responses={**UNAUTHORIZED, **NOT_FOUND})
Access = Annotated[ReadAccess, Depends(read_access)]
RunIds = Annotated[str, Query(description="Comma-separated run ids.", min_length=1)]
MAX_COMPARED = 20


def readable_run(state: ServiceState, access: ReadAccess, run_id: str) -> dict[str, Any]:
    """The run as GET /api/runs/{id} returns it, as JSON data."""
    return readable_run_detail(state, access, run_id).model_dump(mode="json")


def _report_run(state: ServiceState, run: dict[str, Any]) -> dict[str, Any]:
    """What the report draws of one run: its detail, epochs, first and last projections."""
    epochs = epoch_store.projection_epochs(state.db, run["id"])
    shown = sorted({epochs[0], epochs[-1]}) if epochs else []
    rows = [epoch_store.get_projection(state.db, run["id"], epoch) for epoch in shown]
    return {
        "run": run,
        "records": epoch_store.epoch_records(state.db, run["id"]),
        "projections": [projection_from_row(row).model_dump() for row in rows if row],
    }


def _report(state: ServiceState, title: str, runs: list[dict[str, Any]]) -> str:
    try:
        return render_report(
            state.settings.frontend_dir,
            title,
            [_report_run(state, run) for run in runs],
            catalogue(),
        )
    except ReportAssetsMissing as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(error)) from error


def _runs_error(msg: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ["query", "runs"], "msg": msg, "type": "value_error"}])


def _compared_runs(state: ServiceState, access: ReadAccess, runs: str) -> list[dict[str, Any]]:
    ids = list(dict.fromkeys(i.strip() for i in runs.split(",") if i.strip()))
    if not ids:
        raise _runs_error("give at least one run id")
    if len(ids) > MAX_COMPARED:
        raise _runs_error(f"at most {MAX_COMPARED} runs")
    return [readable_run(state, access, run_id) for run_id in ids]


def _flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        elif not isinstance(value, list):
            flat[name] = value
    return flat


def _row(stored: dict[str, Any], places: set[str]) -> dict[str, Any]:
    """A stored epoch record's CSV row: its fields at none of the metrics' ``places``, then
    every export column of the registry with the record's value."""
    record = EpochRecord.model_validate(stored)  # typed: derived metrics are its properties
    other = {key: value for key, value in _flatten(stored).items() if key not in places}
    exported = {c: column_value(record, c) for metric in METRICS for c in metric.columns}
    return {**other, **exported}


# A CSV row to write: its leading columns (the comparison's run_id), a stored epoch record
CsvRow = tuple[dict[str, str], dict[str, Any]]


def _csv(rows: list[CsvRow]) -> str:
    places = {place for m in METRICS for place in metric_places(m.name, m.measured_on)}
    places |= {p.rpartition(".")[0] for p in places if "." in p}  # "backbone": None without h
    flat = [{**leading, **_row(record, places)} for leading, record in rows]
    named = list(dict.fromkeys(column for row in flat for column in row))
    # a field that is an object in some records and null in the others (a verdict's cause)
    # is its members' columns alone: its own column would be empty in every row (a logged
    # name such as "loss" beside "loss.ema" keeps its values)
    parents = {c for c in named if any(other.startswith(f"{c}.") for other in named)}
    empty = {c for c in parents if all(row.get(c) is None for row in flat)}
    columns = [c for c in named if c not in empty]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: v for k, v in row.items() if k not in empty} for row in flat)
    return buffer.getvalue()


def _download(body: str, media_type: str, filename: str) -> Response:
    return Response(
        body,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/runs/{run_id}/epochs.csv", response_class=Response)
def run_epochs_csv(run_id: str, state: StateDep, access: Access) -> Response:
    """The epoch records as CSV."""
    readable_run(state, access, run_id)
    rows: list[CsvRow] = [({}, record) for record in epoch_store.epoch_records(state.db, run_id)]
    return _download(_csv(rows), "text/csv", f"{run_id}-epochs.csv")


@router.get(
    "/runs/{run_id}/epochs.json",
    response_class=JSONResponse,  # documents the model (returned as an attachment)
    response_model=RunEpochsExport,
)
def run_epochs_json(run_id: str, state: StateDep, access: Access) -> Response:
    """The epoch records as a JSON download (with the run's config and verdict)."""
    run = readable_run(state, access, run_id)
    body = {"run": run, "epochs": epoch_store.epoch_records(state.db, run_id)}
    return _download(json.dumps(body), "application/json", f"{run_id}-epochs.json")


@router.get("/compare/epochs.csv", response_class=Response)
def compare_epochs_csv(runs: RunIds, state: StateDep, access: Access) -> Response:
    """Epoch records of several runs as one CSV with a run_id column."""
    rows = [
        ({"run_id": run["id"]}, record)
        for run in _compared_runs(state, access, runs)
        for record in epoch_store.epoch_records(state.db, run["id"])
    ]
    return _download(_csv(rows), "text/csv", "comparison-epochs.csv")


@router.get(
    "/compare/epochs.json", response_class=JSONResponse, response_model=list[RunEpochsExport]
)
def compare_epochs_json(runs: RunIds, state: StateDep, access: Access) -> Response:
    """Epoch records of several runs as a JSON download."""
    body = [
        {"run": run, "epochs": epoch_store.epoch_records(state.db, run["id"])}
        for run in _compared_runs(state, access, runs)
    ]
    return _download(json.dumps(body), "application/json", "comparison-epochs.json")


@router.get("/runs/{run_id}/report.html", response_class=HTMLResponse)
def run_report(run_id: str, state: StateDep, access: Access) -> HTMLResponse:
    """Self-contained HTML report of one run (opens offline)."""
    run = readable_run(state, access, run_id)
    body = _report(state, f"Collapse Lab: run {run_id}", [run])
    return HTMLResponse(
        body, headers={"Content-Disposition": f'inline; filename="{run_id}-report.html"'}
    )


@router.get("/compare/report.html", response_class=HTMLResponse)
def compare_report(runs: RunIds, state: StateDep, access: Access) -> HTMLResponse:
    """Self-contained HTML report comparing several runs."""
    chosen = _compared_runs(state, access, runs)
    if not chosen:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such runs")
    return HTMLResponse(_report(state, "Collapse Lab: comparison", chosen))
