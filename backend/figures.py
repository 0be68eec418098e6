"""Plotly figures of the collapse diagnostics, built once in Python and used twice: served
as JSON (``GET /api/runs/{id}/figures``) and written into the self-contained HTML reports.

Every figure takes a list of :class:`RunSeries` (one run, or several for a comparison) and
the embedding space ("projector" = z, "backbone" = h). Healthy reference levels are drawn
as dashed lines: std(z/|z|)*sqrt(d) = 1 for a healthy embedding, effective rank = d at most.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go

VERDICT_COLOURS = {
    "healthy": "#2e7d32",
    "dimensional_collapse": "#ef6c00",
    "complete_collapse": "#c62828",
}
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2"]


@dataclass
class RunSeries:
    """One run's data for plotting: records are the epoch records in epoch order."""

    run_id: str
    label: str
    records: list[dict[str, Any]]
    projection: dict[str, Any] | None = None  # {"epoch", "points", "labels"} of one epoch


def _metric(records: list[dict[str, Any]], space: str, key: str) -> list[Any]:
    return [(r.get(space) or {}).get(key) for r in records]


def _epochs(records: list[dict[str, Any]]) -> list[int]:
    return [r["epoch"] for r in records]


def _layout(title: str, x_title: str, y_title: str, **extra: Any) -> dict[str, Any]:
    return {
        "title": {"text": title},
        "xaxis": {"title": {"text": x_title}},
        "yaxis": {"title": {"text": y_title}},
        "template": "plotly_white",
        "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
        "legend": {"orientation": "h", "y": -0.2},
        **extra,
    }


def _line_figure(
    runs: list[RunSeries],
    space: str,
    key: str,
    title: str,
    y_title: str,
    reference: float | None = None,
    reference_label: str = "",
) -> go.Figure:
    figure = go.Figure()
    for index, run in enumerate(runs):
        figure.add_trace(
            go.Scatter(
                x=_epochs(run.records),
                y=_metric(run.records, space, key),
                mode="lines+markers",
                name=run.label,
                line={"color": PALETTE[index % len(PALETTE)]},
            )
        )
    if reference is not None:
        figure.add_hline(
            y=reference,
            line_dash="dash",
            line_color=VERDICT_COLOURS["healthy"],
            annotation_text=reference_label,
        )
    figure.update_layout(_layout(title, "epoch", y_title))
    return figure


def std_figure(runs: list[RunSeries], space: str) -> go.Figure:
    return _line_figure(
        runs,
        space,
        "std_l2_sqrt_d",
        f"Spread: std(z/‖z‖)·√d ({space})",
        "std · √d (healthy ≈ 1, collapsed → 0)",
        1.0,
        "healthy level",
    )


def rank_figure(runs: list[RunSeries], space: str) -> go.Figure:
    figure = _line_figure(
        runs, space, "effective_rank", f"Effective rank, RankMe ({space})", "effective rank"
    )
    dims = {(r.records[-1].get(space) or {}).get("dim") for r in runs if r.records}
    for dim in sorted(d for d in dims if d):
        figure.add_hline(y=dim, line_dash="dot", line_color="#555", annotation_text=f"d = {dim}")
    return figure


def spectrum_figure(runs: list[RunSeries], space: str) -> go.Figure:
    """One run: heatmap epoch x singular-value index; several: last epoch's spectra."""
    figure = go.Figure()
    if len(runs) == 1:
        records = runs[0].records
        figure.add_trace(
            go.Heatmap(
                z=[(r.get(space) or {}).get("spectrum") or [] for r in records],
                y=_epochs(records),
                colorscale="Viridis",
                colorbar={"title": {"text": "log σ"}},
            )
        )
        figure.update_layout(
            _layout(f"Singular-value spectrum ({space})", "singular value index", "epoch")
        )
        return figure
    for index, run in enumerate(runs):
        if not run.records:
            continue
        spectrum = (run.records[-1].get(space) or {}).get("spectrum") or []
        figure.add_trace(
            go.Scatter(
                y=spectrum,
                mode="lines",
                name=f"{run.label} (epoch {run.records[-1]['epoch']})",
                line={"color": PALETTE[index % len(PALETTE)]},
            )
        )
    figure.update_layout(
        _layout(f"Singular-value spectrum, last epoch ({space})", "index", "log σ")
    )
    return figure


def alignment_uniformity_figure(runs: list[RunSeries], space: str) -> go.Figure:
    figure = go.Figure()
    for index, run in enumerate(runs):
        figure.add_trace(
            go.Scatter(
                x=_metric(run.records, space, "alignment"),
                y=_metric(run.records, space, "uniformity"),
                text=[f"epoch {e}" for e in _epochs(run.records)],
                mode="lines+markers",
                name=run.label,
                line={"color": PALETTE[index % len(PALETTE)]},
            )
        )
    figure.update_layout(
        _layout(
            f"Alignment vs uniformity ({space}); collapse heads to (0, 0)",
            "alignment E‖f(x)−f(x⁺)‖² (lower = closer positives)",
            "uniformity log E exp(−2‖f(x)−f(y)‖²) (lower = more spread)",
        )
    )
    return figure


def cosine_figure(runs: list[RunSeries], space: str) -> go.Figure:
    figure = go.Figure()
    for index, run in enumerate(runs):
        colour = PALETTE[index % len(PALETTE)]
        for key, dash, name in (("cos_pos", "solid", "positive"), ("cos_rand", "dot", "random")):
            figure.add_trace(
                go.Scatter(
                    x=_epochs(run.records),
                    y=_metric(run.records, space, key),
                    mode="lines",
                    name=f"{run.label}: {name} pairs",
                    line={"color": colour, "dash": dash},
                )
            )
    figure.update_layout(
        _layout(f"Cosine similarity ({space}); both → 1 when collapsed", "epoch", "mean cosine")
    )
    return figure


def knn_figure(runs: list[RunSeries], space: str) -> go.Figure:
    return _line_figure(
        runs, space, "knn_top1", f"kNN top-1 accuracy, k = 20 ({space})", "accuracy"
    )


def _top_level_figure(runs: list[RunSeries], key: str, title: str, y_title: str) -> go.Figure:
    figure = go.Figure()
    for index, run in enumerate(runs):
        figure.add_trace(
            go.Scatter(
                x=_epochs(run.records),
                y=[r.get(key) for r in run.records],
                mode="lines+markers",
                name=run.label,
                line={"color": PALETTE[index % len(PALETTE)]},
            )
        )
    figure.update_layout(_layout(title, "epoch", y_title))
    return figure


def projection_figure(run: RunSeries) -> go.Figure | None:
    if not run.projection:
        return None
    points = run.projection["points"]
    labels = run.projection["labels"]
    figure = go.Figure(
        go.Scattergl(
            x=[p[0] for p in points],
            y=[p[1] for p in points],
            mode="markers",
            marker={"color": labels, "colorscale": "Turbo", "size": 4, "showscale": True},
            text=[f"#{i}, label {label}" for i, label in enumerate(labels)],
            hoverinfo="text",
        )
    )
    figure.update_layout(
        _layout(f"UMAP of z, epoch {run.projection['epoch']} ({run.label})", "UMAP 1", "UMAP 2")
    )
    return figure


def build_figures(runs: list[RunSeries], space: str = "projector") -> dict[str, go.Figure]:
    """Every diagnostic figure, keyed by a stable name."""
    figures = {
        "std_l2": std_figure(runs, space),
        "effective_rank": rank_figure(runs, space),
        "spectrum": spectrum_figure(runs, space),
        "alignment_uniformity": alignment_uniformity_figure(runs, space),
        "cosine": cosine_figure(runs, space),
        "knn_top1": knn_figure(runs, space),
        "loss": _top_level_figure(runs, "loss", "Training loss", "loss"),
        "lr": _top_level_figure(runs, "lr", "Learning rate", "learning rate"),
    }
    if any(r.get("ema_momentum") is not None for run in runs for r in run.records):
        figures["ema_momentum"] = _top_level_figure(runs, "ema_momentum", "EMA momentum τ", "τ")
    for run in runs:
        figure = projection_figure(run)
        if figure is not None:
            figures[f"projection_{run.run_id}"] = figure
    return figures


def figures_json(figures: dict[str, go.Figure]) -> dict[str, Any]:
    """Figures as plain JSON (``{"data", "layout"}`` each) for ``Plotly.react``."""
    return {name: json.loads(figure.to_json()) for name, figure in figures.items()}
