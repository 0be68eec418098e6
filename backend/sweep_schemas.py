"""The HTTP contract of sweeps (``/api/sweeps``): response models and how a stored sweep and
its runs become one cell per grid point.

A cell aggregates its seeds (:func:`contract.sweeps.aggregate_verdicts`):
``verdict_kind`` is the kind most of them reached (a tie goes to the more severe kind),
``seeds_agree`` says whether they all did, ``onset_epoch`` is the lower median onset of the
runs of that kind, and ``final`` holds the means of the runs' final metrics. A run's final
metrics are those of its last recorded epoch declared sweep-eligible in contract/metrics.py.
A cell's ``cause`` is the guard its collapsed seeds of the cell's kind name (``undetermined``
when they name different ones).
"""

from __future__ import annotations

import statistics
from collections import Counter
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from backend.schemas import shown_request
from backend.store.models import Run, Sweep
from contract import (
    ENDED_EARLY_STATUSES,
    METRICS,
    RUN_STATUSES,
    TERMINAL_STATUSES,
    Cause,
    CauseGuard,
    EmbeddingMetrics,
    EpochRecord,
    RunStatus,
    VerdictKind,
)
from contract.metrics import sweep_metrics
from contract.sweeps import aggregate_verdicts

SweepStatus = Literal["queued", "running", "finished", "cancelled"]


class SweepCreated(BaseModel):
    id: str
    url: str = Field(description="The sweep's page: /sweeps/<id>.")
    api_url: str
    runs: list[str] = Field(description="The sweep's run ids, grid point by grid point.")
    count: int


class GridAxisOut(BaseModel):
    key: str = Field(description="The grid key as sent.")
    field: str = Field(description="The run-config field or method option it sets.")
    is_option: bool
    values: list[bool | int | float | str | None]


class SweepPreview(BaseModel):
    """``POST /api/sweeps/preview``: the grid as the sweep would expand it."""

    axes: list[GridAxisOut]
    seeds: list[int]
    runs: int = Field(description="Grid points x seeds.")


SWEEP_METRICS = sweep_metrics(METRICS)

# The last recorded epoch of a run: one field per sweep-eligible metric (of z, or of h where
# the metric's declaration says so), generated from the registry.
_FINAL_FIELDS: dict[str, Any] = {
    m.name: (float | None, Field(description=f"{m.title} of the {m.sweep.space}: {m.formula}."))
    for m in SWEEP_METRICS
    if m.sweep is not None
}
FinalMetrics = create_model(
    "FinalMetrics",
    __doc__="The last recorded epoch of a run: its sweep-eligible metrics (contract/metrics.py).",
    epoch=(int, ...),
    **_FINAL_FIELDS,
)
FinalMeans = create_model(
    "FinalMeans",
    __doc__="A cell's sweep-eligible metrics: the mean over its runs' last recorded epochs "
    "(None when none has it).",
    **_FINAL_FIELDS,
)


class SweepRunOut(BaseModel):
    id: str
    url: str
    seed: int
    status: RunStatus
    progress: float = Field(description="Fraction done, 0..1 (1 once finished).")
    last_epoch: int | None
    epochs: int
    verdict_kind: VerdictKind | None
    onset_epoch: int | None
    cause: Cause | None = Field(None, description="The verdict's cause: the guard that failed.")
    stopped_early: str | None = Field(description="Why it stopped before its last epoch.")
    error: str | None
    final: FinalMetrics | None


class SweepCell(BaseModel):
    index: int
    point: dict[str, bool | int | float | str | None] = Field(description="Grid key -> value.")
    status: RunStatus = Field(
        description="running/queued while any seed is; else failed or cancelled when any "
        "seed was (its verdict rests on the others); else succeeded."
    )
    progress: float = Field(description="Mean fraction done of its runs.")
    verdict_kind: VerdictKind | None = Field(description="What most seeds reached so far.")
    seeds_agree: bool = Field(description="False when its seeds reached different verdicts.")
    kinds: dict[str, int] = Field(description="Verdict kind -> number of seeds.")
    onset_epoch: int | None
    cause: CauseGuard | None = Field(
        None,
        description="The guard the seeds of the cell's kind name as cause (undetermined when "
        "they differ); None when healthy.",
    )
    final: FinalMeans
    runs: list[SweepRunOut]


class SweepSummary(BaseModel):
    id: str
    url: str
    api_url: str
    name: str | None
    created_at: datetime
    method: str
    preset: str | None
    base: dict[str, Any] = Field(
        description="The base run config as sent, less its alert receivers (as a run's request)."
    )
    axes: list[GridAxisOut]
    seeds: list[int]
    concurrency: int = Field(description="At most this many of its runs go to workers at once.")
    status: SweepStatus
    counts: dict[str, int] = Field(description="Runs per status.")
    runs_total: int
    progress: float


class SweepDetail(SweepSummary):
    cells: list[SweepCell]


class SweepList(BaseModel):
    data: list[SweepSummary]
    count: int


def _final(stored: dict[str, Any] | None) -> Any:
    """The run's FinalMetrics from its last stored epoch record (None without one)."""
    if stored is None:
        return None
    record = EpochRecord.model_validate(stored)
    spaces: dict[str, EmbeddingMetrics | None] = {
        "projector": record.projector,
        "backbone": record.backbone,
    }
    values = {}
    for metric in SWEEP_METRICS:
        space = spaces[metric.sweep.space if metric.sweep else "projector"]
        values[metric.name] = None if space is None else getattr(space, metric.name)
    return FinalMetrics(epoch=record.epoch, **values)


def _run_out(run: Run, record: dict[str, Any] | None) -> SweepRunOut:
    verdict = run.verdict or {}
    progress = 1.0 if run.status in TERMINAL_STATUSES else (run.progress or {}).get("fraction", 0)
    return SweepRunOut(
        id=run.id,
        url=f"/runs/{run.id}",
        seed=int(run.config.get("seed", 0)),
        status=run.status,
        progress=float(progress or 0.0),
        last_epoch=run.last_epoch,
        epochs=run.epochs_total,
        verdict_kind=verdict.get("kind"),
        onset_epoch=verdict.get("onset_epoch"),
        cause=verdict.get("cause"),
        stopped_early=verdict.get("stopped_early"),
        error=run.error,
        final=_final(record),
    )


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def _cell_status(statuses: list[str]) -> RunStatus:
    """A cell is succeeded once every run of it succeeded; a failed or cancelled run says
    so, since the cell's verdict then rests on fewer seeds."""
    for status in ("running", "queued", *ENDED_EARLY_STATUSES):
        if status in statuses:
            return status
    return "succeeded"


def _cell_cause(kind: VerdictKind | None, runs: list[SweepRunOut]) -> CauseGuard | None:
    """The guard the runs of the cell's kind agree on; undetermined when they do not."""
    guards = {r.cause.guard for r in runs if r.verdict_kind == kind and r.cause is not None}
    if not guards:
        return None
    return guards.pop() if len(guards) == 1 else "undetermined"


def _cell(index: int, stored: dict[str, Any], runs: list[SweepRunOut]) -> SweepCell:
    # a run cancelled or failed partway keeps the verdict of its last epoch, not one of the
    # schedule the grid point stands for: left out (a running one's counts "so far")
    verdict = aggregate_verdicts(
        [
            (r.verdict_kind, r.onset_epoch)
            for r in runs
            if r.verdict_kind is not None and r.status not in ENDED_EARLY_STATUSES
        ]
    )
    return SweepCell(
        index=index,
        point=stored["point"],
        status=_cell_status([r.status for r in runs]) if runs else "cancelled",
        progress=_mean([r.progress for r in runs]) or 0.0,
        verdict_kind=verdict.kind,
        seeds_agree=verdict.seeds_agree,
        kinds=verdict.kinds,
        onset_epoch=verdict.onset_epoch,
        cause=_cell_cause(verdict.kind, runs),
        final=FinalMeans(
            **{
                metric.name: _mean([getattr(r.final, metric.name) for r in runs if r.final])
                for metric in SWEEP_METRICS
            }
        ),
        runs=runs,
    )


def _summary_fields(sweep: Sweep, runs: list[Run]) -> dict[str, Any]:
    counts = Counter(run.status for run in runs)
    if counts["running"]:
        status: SweepStatus = "running"
    elif counts["queued"]:
        status = "running" if len(counts) > 1 else "queued"
    elif counts["cancelled"] and not counts["succeeded"] and not counts["failed"]:
        status = "cancelled"
    else:
        status = "finished"
    done = [
        1.0 if r.status in TERMINAL_STATUSES else (r.progress or {}).get("fraction", 0.0)
        for r in runs
    ]
    base = shown_request(sweep.request.get("base", {}))
    return {
        "id": sweep.id,
        "url": f"/sweeps/{sweep.id}",
        "api_url": f"/api/sweeps/{sweep.id}",
        "name": sweep.name,
        "created_at": datetime.fromtimestamp(sweep.created_at, UTC),
        "method": runs[0].method if runs else str(base.get("method", "")),
        "preset": base.get("preset"),
        "base": base,
        "axes": sweep.axes,
        "seeds": sweep.seeds,
        "concurrency": sweep.concurrency,
        "status": status,
        "counts": {s: counts.get(s, 0) for s in RUN_STATUSES},
        "runs_total": sum(len(c["runs"]) for c in sweep.cells),
        "progress": _mean(done) or 0.0,
    }


def sweep_summary(sweep: Sweep, runs: list[Run]) -> SweepSummary:
    return SweepSummary.model_validate(_summary_fields(sweep, runs))


def sweep_detail(
    sweep: Sweep, runs: dict[str, Run], records: dict[str, dict[str, Any]]
) -> SweepDetail:
    """The sweep with its cells; runs deleted since are left out of their cell."""
    cells = []
    for index, stored in enumerate(sweep.cells):
        members = [runs[i] for i in stored["runs"] if i in runs]
        cells.append(_cell(index, stored, [_run_out(r, records.get(r.id)) for r in members]))
    return SweepDetail.model_validate(
        {**_summary_fields(sweep, list(runs.values())), "cells": cells}
    )


class SweepCellRow(BaseModel):
    """One run of a sweep as exported (``cells.json``, ``cells.csv``); besides these fields
    each row has the run's grid values under their keys and ``final_<metric>`` columns."""

    model_config = ConfigDict(extra="allow")

    cell: int = Field(description="The grid point's index.")
    seed: int
    run_id: str
    status: RunStatus
    verdict: VerdictKind | None
    onset_epoch: int | None
    cause: CauseGuard | None = Field(None, description="The guard the run's verdict names.")
    last_epoch: int | None
    epochs: int
    stopped_early: bool
    cell_verdict: VerdictKind | None = Field(description="The verdict the cell's seeds reached.")
    cell_cause: CauseGuard | None = Field(None, description="The cell's cause (SweepCell).")
    seeds_agree: bool


def cell_rows(detail: SweepDetail) -> list[dict[str, Any]]:
    """One flat row per run (grid values, seed, outcome, final metrics): the CSV/JSON export."""
    rows = []
    for cell in detail.cells:
        for run in cell.runs:
            final = run.final.model_dump() if run.final else {}
            rows.append(
                {
                    "cell": cell.index,
                    **cell.point,
                    "seed": run.seed,
                    "run_id": run.id,
                    "status": run.status,
                    "verdict": run.verdict_kind,
                    "onset_epoch": run.onset_epoch,
                    "cause": run.cause.guard if run.cause else None,
                    "last_epoch": run.last_epoch,
                    "epochs": run.epochs,
                    "stopped_early": run.stopped_early is not None,
                    "cell_verdict": cell.verdict_kind,
                    "cell_cause": cell.cause,
                    "seeds_agree": cell.seeds_agree,
                    **{f"final_{k}": v for k, v in final.items() if k != "epoch"},
                }
            )
    return rows
