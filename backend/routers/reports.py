"""Reports and exports of a run or a comparison.

- ``GET /api/runs/{id}/report.html``: self-contained HTML (figures, data and plotly.js
  inline; opens offline). ``GET /api/compare/report.html?runs=a,b`` the same for several.
- ``GET /api/runs/{id}/epochs.csv`` / ``.json``: the epoch records as a download (CSV has
  one column per scalar, ``backbone.*``/``projector.*``/``logs.*``/``verdict.*``; spectra are
  in the JSON). ``GET /api/compare/epochs.csv?runs=a,b`` / ``.json`` with a ``run_id`` column.
- ``GET /api/runs/{id}/figures?space=projector|backbone`` and
  ``GET /api/compare/figures?runs=a,b&space=...``: ``{"figures": {name: {"data", "layout"}}}``
  (the same Plotly figures as the reports, for ``Plotly.react``).
"""

from __future__ import annotations

import csv
import html
import io
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from plotly.offline import get_plotlyjs

from backend.auth import ReadAccess, read_access
from backend.figures import VERDICT_COLOURS, RunSeries, build_figures, figures_json
from backend.routers.runs import readable_run as readable_run_detail
from backend.schemas import NOT_FOUND, UNAUTHORIZED, projection_from_row
from backend.state import ServiceState, StateDep
from backend.store import epochs as epoch_store

router = APIRouter(prefix="/api", tags=["reports"], responses={**UNAUTHORIZED, **NOT_FOUND})
Access = Annotated[ReadAccess, Depends(read_access)]
Space = Literal["projector", "backbone"]
RunIds = Annotated[str, Query(description="Comma-separated run ids.", min_length=1)]
MAX_COMPARED = 20


def readable_run(state: ServiceState, access: ReadAccess, run_id: str) -> dict[str, Any]:
    """The run as GET /api/runs/{id} returns it, as JSON data."""
    return readable_run_detail(state, access, run_id).model_dump(mode="json")


def _series(state: ServiceState, run: dict[str, Any]) -> RunSeries:
    records = epoch_store.epoch_records(state.db, run["id"])
    epochs = epoch_store.projection_epochs(state.db, run["id"])
    row = epoch_store.get_projection(state.db, run["id"], epochs[-1]) if epochs else None
    projection = projection_from_row(row).model_dump() if row else None
    label = run["preset"] or run["method"]
    return RunSeries(run["id"], f"{label} · {run['id'][:6]}", records, projection)


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


def _csv(rows: list[dict[str, Any]]) -> str:
    flat = [_flatten(r) for r in rows]
    columns: list[str] = []
    for row in flat:
        columns.extend(c for c in row if c not in columns)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(flat)
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
    return _download(
        _csv(epoch_store.epoch_records(state.db, run_id)), "text/csv", f"{run_id}-epochs.csv"
    )


@router.get("/runs/{run_id}/epochs.json", response_class=Response)
def run_epochs_json(run_id: str, state: StateDep, access: Access) -> Response:
    """The epoch records as a JSON download (with the run's config and verdict)."""
    run = readable_run(state, access, run_id)
    body = {"run": run, "epochs": epoch_store.epoch_records(state.db, run_id)}
    return _download(json.dumps(body), "application/json", f"{run_id}-epochs.json")


@router.get("/compare/epochs.csv", response_class=Response)
def compare_epochs_csv(runs: RunIds, state: StateDep, access: Access) -> Response:
    """Epoch records of several runs as one CSV with a run_id column."""
    rows = [
        {"run_id": run["id"], **record}
        for run in _compared_runs(state, access, runs)
        for record in epoch_store.epoch_records(state.db, run["id"])
    ]
    return _download(_csv(rows), "text/csv", "comparison-epochs.csv")


@router.get("/compare/epochs.json", response_class=Response)
def compare_epochs_json(runs: RunIds, state: StateDep, access: Access) -> Response:
    """Epoch records of several runs as a JSON download."""
    body = [
        {"run": run, "epochs": epoch_store.epoch_records(state.db, run["id"])}
        for run in _compared_runs(state, access, runs)
    ]
    return _download(json.dumps(body), "application/json", "comparison-epochs.json")


@router.get("/runs/{run_id}/figures")
def run_figures(
    run_id: str, state: StateDep, access: Access, space: Space = "projector"
) -> dict[str, Any]:
    """The run's diagnostic figures as Plotly JSON."""
    run = readable_run(state, access, run_id)
    return {"figures": figures_json(build_figures([_series(state, run)], space))}


@router.get("/compare/figures")
def compare_figures(
    runs: RunIds, state: StateDep, access: Access, space: Space = "projector"
) -> dict[str, Any]:
    """The runs' diagnostics overlaid, as Plotly JSON."""
    series = [_series(state, run) for run in _compared_runs(state, access, runs)]
    return {"figures": figures_json(build_figures(series, space))}


def _verdict_block(run: dict[str, Any]) -> str:
    verdict = run.get("verdict") or {}
    kind = verdict.get("kind") or "no verdict yet"
    colour = VERDICT_COLOURS.get(kind, "#555")
    onset = verdict.get("onset_epoch")
    onset_text = f" from epoch {onset}" if onset is not None else ""
    reason = html.escape(verdict.get("reason") or run.get("error") or "")
    return (
        f'<div class="run"><h2>{html.escape(run["preset"] or run["method"])} '
        f"<small>{html.escape(run['id'])}</small></h2>"
        f'<p class="verdict" style="background:{colour}">{html.escape(kind.replace("_", " "))}'
        f"{onset_text}</p><p>{reason}</p>"
        f"<p>status {html.escape(run['status'])}, {run['last_epoch'] or 0} of "
        f"{run['epochs']} epochs, dataset {html.escape(run['dataset'])}</p>"
        f"<details><summary>config</summary><pre>"
        f"{html.escape(json.dumps(run['config'], indent=2))}</pre></details></div>"
    )


def render_report(title: str, runs: list[dict[str, Any]], series: list[RunSeries]) -> str:
    """A self-contained HTML page: plotly.js, the figures and their data inline."""
    figures = build_figures(series, "projector")
    backbone = build_figures(series, "backbone")
    parts = []
    for name, figure in figures.items():
        parts.append(figure.to_html(full_html=False, include_plotlyjs=False, div_id=name))
    for name in ("std_l2", "effective_rank", "knn_top1"):
        parts.append(
            backbone[name].to_html(
                full_html=False, include_plotlyjs=False, div_id=f"backbone_{name}"
            )
        )
    cells = "".join(f'<div class="cell">{p}</div>' for p in parts)
    blocks = "".join(_verdict_block(run) for run in runs)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }}
.verdict {{ display: inline-block; color: white; padding: .2rem .6rem; border-radius: .3rem; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); gap: 1rem; }}
.run {{ border-bottom: 1px solid #ddd; margin-bottom: 1rem; }}
small {{ color: #777; font-weight: normal; }}
</style>
<script type="text/javascript">{get_plotlyjs()}</script></head>
<body><h1>{html.escape(title)}</h1>{blocks}<div class="grid">{cells}</div>
<p><small>Collapse Lab report: projector (z) diagnostics, then backbone (h) ones.</small></p>
</body></html>"""


@router.get("/runs/{run_id}/report.html", response_class=HTMLResponse)
def run_report(run_id: str, state: StateDep, access: Access) -> HTMLResponse:
    """Self-contained HTML report of one run (opens offline)."""
    run = readable_run(state, access, run_id)
    body = render_report(f"Collapse Lab: run {run_id}", [run], [_series(state, run)])
    return HTMLResponse(
        body, headers={"Content-Disposition": f'inline; filename="{run_id}-report.html"'}
    )


@router.get("/compare/report.html", response_class=HTMLResponse)
def compare_report(runs: RunIds, state: StateDep, access: Access) -> HTMLResponse:
    """Self-contained HTML report comparing several runs."""
    chosen = _compared_runs(state, access, runs)
    if not chosen:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such runs")
    series = [_series(state, run) for run in chosen]
    return HTMLResponse(render_report("Collapse Lab: comparison", chosen, series))
