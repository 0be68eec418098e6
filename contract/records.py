"""The records every layer shares: run statuses, verdicts and the per-epoch record.

The trainer builds an :class:`EpochRecord` after every epoch; the store keeps its JSON, the
API serves it (``GET /api/runs/{id}/epochs`` and the ``epoch`` events), ``collapse-lab train
--jsonl`` writes it and the reports draw it. This module is its one definition.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import BeforeValidator, Field, JsonValue

from contract.metrics import (
    CHARTS,
    METHOD_INTERNALS,
    Chart,
    EmbeddingMetrics,
    Level,
    MetricEntry,
    all_metrics,
    check_registry,
    measured,
)
from contract.strict import StrictModel

RunStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]

# The epoch record's logs typed by name in the OpenAPI document (and the dashboard's types):
# each declared mechanism signal or schedule, from its one declaration.
_INTERNAL_PROPERTIES: dict[str, JsonValue] = {
    name: {"type": "number", "title": metric.title, "description": metric.formula}
    for name, metric in METHOD_INTERNALS.items()
}
RUN_STATUSES: tuple[RunStatus, ...] = get_args(RunStatus)
# Runs not yet ended (a cancel still reaches them); every other status is final.
ACTIVE_STATUSES: tuple[RunStatus, ...] = ("queued", "running")
TERMINAL_STATUSES: tuple[RunStatus, ...] = tuple(
    s for s in RUN_STATUSES if s not in ACTIVE_STATUSES
)
# Runs that ended before their last epoch: their verdict is their last epoch's, not one of the
# schedule they stand for (a sweep's cell and summary count them by status).
ENDED_EARLY_STATUSES: tuple[RunStatus, ...] = ("failed", "cancelled")

VerdictKind = Literal["healthy", "dimensional_collapse", "complete_collapse"]
VERDICT_KINDS: tuple[VerdictKind, ...] = get_args(VerdictKind)
# How bad each kind is (its place in VERDICT_KINDS): a tie between seeds goes to the worse one,
# a collapse's onset is the start of the final streak at least this bad.
VERDICT_SEVERITY: dict[VerdictKind, int] = {kind: rank for rank, kind in enumerate(VERDICT_KINDS)}
# What the pages and the reports call each kind, its words: "dimensional collapse" (GET
# /api/metrics serves them, in this order).
VERDICT_LABELS: dict[VerdictKind, str] = {kind: kind.replace("_", " ") for kind in VERDICT_KINDS}


# The guards whose failure a verdict's cause names (docs/causes.md, "The vocabulary"):
# every family's anti-collapse mechanism, the two hyperparameters that overpower them, and
# "undetermined" when the measured signals do not single one out.
CauseGuard = Literal[
    "negatives",
    "stop_gradient",
    "predictor",
    "target_network",
    "balancing",
    "variance_term",
    "decorrelation",
    "centering",
    "sharpening",
    "weight_decay",
    "learning_rate",
    "undetermined",
]
CAUSE_GUARDS: tuple[CauseGuard, ...] = get_args(CauseGuard)


def _current_guard(guard: object) -> object:
    """Causes stored by the release that named LeJEPA's guard ``sigreg`` read as the
    ``variance_term`` it is (workers/engine/cause.py, ``_sigreg``)."""
    return "variance_term" if guard == "sigreg" else guard


class Cause(StrictModel):
    """Why a collapsed run collapsed: the guard that failed, read from the measured signals
    (workers/engine/cause.py); ``undetermined`` when they do not single one out."""

    guard: Annotated[CauseGuard, BeforeValidator(_current_guard)] = Field(
        description="The guard that failed (docs/causes.md)."
    )
    reason: str = Field(description="One sentence citing the numbers that name the guard.")
    onset_epoch: int | None = Field(
        None, description="First epoch from which the guard's signal stayed past its threshold."
    )
    advice: str = Field(description="What to try, citing the paper.")
    signals_checked: list[str] = Field(
        default_factory=list,
        description="The signals the diagnosis read (names of EpochRecord fields or logs).",
    )


class Trend(StrictModel):
    """Relative changes per epoch of the projector's effective rank and std_l2·√d over the
    last few epochs (-0.3 = falling 30 % per epoch), and a warning before a collapse."""

    effective_rank_change_per_epoch: float | None = None
    std_change_per_epoch: float | None = None
    warning: str | None = None


class Verdict(StrictModel):
    """One epoch's or one run's verdict: the kind, when that state began, and why."""

    kind: VerdictKind
    onset_epoch: int | None = Field(
        None, description="First epoch of the final streak in this state; None when healthy."
    )
    reason: str = Field(description="One sentence citing the numbers behind the kind.")
    trend: Trend = Field(default_factory=Trend)
    findings: list[str] = Field(
        default_factory=list,
        description="What the kind does not say, one sentence with its numbers each: partial "
        "prototype collapse, backbone kNN below epoch 0, collapse coming, backbone vs projector.",
    )
    cause: Cause | None = Field(
        None,
        description="Why it collapsed (the guard that failed); None when healthy and in "
        "records written before causes were diagnosed.",
    )
    stopped_early: str | None = Field(
        None,
        description="Why the run stopped before its last epoch (stop_after_settled_epochs), "
        "one sentence; None when it trained every epoch.",
    )


class Placement(StrictModel):
    """Where an epoch was trained (a resumed run may move between workers and cards)."""

    host: str
    worker: str | None = Field(None, description="The Celery worker; None outside the service.")
    device: str = Field(description="'cpu' or the card's name, e.g. 'NVIDIA H200'.")
    device_memory_gib: float | None = None
    torch: str
    cuda: str | None = None
    peak_memory_mib: float | None = Field(
        None, description="Peak GPU memory allocated during the epoch (None on the CPU)."
    )


class EpochRecord(StrictModel):
    """Everything measured after one epoch (epoch 0 = the untrained network, the baseline)."""

    epoch: int = Field(ge=0)
    loss: Annotated[
        float | None,
        measured(
            "run",
            title="loss",
            unit="method's own units",
            formula="Mean training loss over the epoch's steps; None at epoch 0",
            collapsed=Level(context="collapse_loss", label="trivial solution {value}"),
            chart="loss",
        ),
    ] = None
    lr: Annotated[
        float | None,
        measured(
            "run",
            title="learning rate",
            unit="",
            formula="Learning rate at the epoch's last step (warm-up, then cosine or constant)",
            healthy=Level(context="base_lr", label="configured lr {value} (base × batch/256)"),
            chart="schedule",
        ),
    ] = None
    ema_momentum: Annotated[
        float | None,
        measured(
            "run",
            title="EMA momentum τ",
            unit="",
            formula="The momentum target's current EMA momentum (BYOL; None without one)",
            paper="Grill et al., NeurIPS 2020",
            chart="schedule",
            axis="y2",
        ),
    ] = None
    epoch_time_s: float = 0.0
    train_time_s: float = 0.0
    diagnostics_time_s: float = 0.0
    lidar_time_s: float = Field(0.0, description="Part of diagnostics_time_s spent on LiDAR.")
    mechanisms_time_s: float = Field(
        0.0,
        description="Part of diagnostics_time_s spent on the method's mechanism signals "
        "(its probe_logs: docs/mechanisms.md).",
    )
    images_per_s: float | None = None
    logs: dict[str, float] = Field(
        default_factory=dict,
        description="Method-specific scalars: the mechanism signals and schedules declared in "
        "METHOD_INTERNALS (typed here by name), and the method's loss terms under their own.",
        json_schema_extra={"properties": _INTERNAL_PROPERTIES},
    )
    # None for an external run that logs only z (no backbone representation h)
    backbone: EmbeddingMetrics | None
    projector: EmbeddingMetrics
    verdict: Verdict | None = Field(None, description="The verdict at this epoch.")
    placement: Placement | None = None


METRICS: tuple[MetricEntry, ...] = tuple(all_metrics(EpochRecord))
check_registry(METRICS)


class VerdictEntry(StrictModel):
    """A verdict kind as the pages show it."""

    kind: VerdictKind
    label: str = Field(description="Its words on the pages: 'dimensional collapse'.")


class MetricCatalogue(StrictModel):
    """``GET /api/metrics``: every metric and chart, in page order, and the verdict kinds
    they lead to, from healthy to the worst."""

    metrics: list[MetricEntry]
    charts: list[Chart]
    verdicts: list[VerdictEntry] = Field(
        description="The verdict kinds in order of severity (VERDICT_SEVERITY), with their words."
    )


def metric_catalogue() -> MetricCatalogue:
    """Every metric and chart (``GET /api/metrics``), from which the pages draw, and the
    verdict kinds with their words, from which they write badges and colour the sweep map."""
    verdicts = [VerdictEntry(kind=kind, label=VERDICT_LABELS[kind]) for kind in VERDICT_KINDS]
    return MetricCatalogue(metrics=list(METRICS), charts=list(CHARTS), verdicts=verdicts)
