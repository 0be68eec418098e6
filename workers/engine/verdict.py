"""Collapse verdict: healthy, dimensional or complete collapse, from the per-epoch diagnostics.

Input is the run's history: a list of epoch records (see ``metrics.embedding_diagnostics``
for the "projector" and "backbone" dicts); ``history[0]`` is epoch 0, measured before any
training, and is the baseline every later epoch is compared with.

The verdict rests on the projector output z and on scale-free quantities only, so the same
thresholds hold for any dataset, seed and embedding size d:

* spread = sqrt(total variance of z/||z||) = sqrt(sum exp(spectrum)), in [0, 1]. About 1 for
  an isotropic embedding, 0 when every sample maps to the same point. Unlike std_l2 x sqrt(d)
  it does not mistake an embedding that varies along few axes for a collapsed one
  (std_l2 x sqrt(d) of k axis-aligned dimensions is sqrt(k/d), 0.02 for k=1, d=2048).
  1 - spread^2 is about the cosine of random pairs.
* effective rank (RankMe) relative to the epoch-0 baseline, and relative to d.

The backbone h corroborates: it is cited in the reason sentence (kNN, rank).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

VerdictKind = Literal["healthy", "dimensional_collapse", "complete_collapse"]
_SEVERITY: dict[str, int] = {"healthy": 0, "dimensional_collapse": 1, "complete_collapse": 2}


@dataclass(frozen=True)
class Thresholds:
    """Every number the verdict uses.

    Evidence (constructed embeddings, tests/test_verdict.py): an isotropic Gaussian has
    spread 1.0 and RankMe > 0.9 d for d = 16..2048 when N >> d; a 3-dimensional subspace has
    RankMe 3 whatever d is, i.e. < 3% of a healthy baseline for d >= 128.
    """

    # complete collapse: z/||z|| has total variance below 0.1^2 = 0.01, i.e. random pairs
    # have cosine > 0.99 -- all samples sit in one narrow cone.
    complete_spread: float = 0.1
    # dimensional collapse: effective rank below this fraction of the epoch-0 rank...
    dimensional_rank_of_baseline: float = 0.2
    # ...and below this fraction of d (a baseline that is itself low-rank is not collapse).
    dimensional_rank_of_dim: float = 0.1
    # trend: relative change per epoch measured over this many most recent epochs
    trend_window: int = 3
    # warn when rank or spread falls faster than this per epoch and would cross its
    # collapse threshold within `warn_horizon_epochs` epochs at that rate
    warn_rate: float = 0.15
    warn_horizon_epochs: int = 3


THRESHOLDS = Thresholds()


def spread(embedding_metrics: dict[str, Any]) -> float:
    """sqrt of the total variance of the l2-normalised embedding, from its spectrum."""
    return math.sqrt(sum(math.exp(value) for value in embedding_metrics["spectrum"]))


def classify(
    current: dict[str, Any], baseline: dict[str, Any], thresholds: Thresholds = THRESHOLDS
) -> VerdictKind:
    """Kind of one embedding's diagnostics (an "M" dict) compared with its epoch-0 baseline."""
    if spread(current) < thresholds.complete_spread:
        return "complete_collapse"
    rank = current["effective_rank"]
    if (
        rank < thresholds.dimensional_rank_of_baseline * baseline["effective_rank"]
        and rank < thresholds.dimensional_rank_of_dim * current["dim"]
    ):
        return "dimensional_collapse"
    return "healthy"


def _rate_per_epoch(values: list[float], window: int) -> float:
    """Geometric mean relative change per epoch over the last `window` steps (-0.3 means
    falling 30% per epoch); 0 with fewer than two values."""
    recent = values[-(window + 1) :]
    steps = len(recent) - 1
    if steps < 1 or recent[0] <= 0:
        return 0.0
    return (max(recent[-1], 1e-12) / recent[0]) ** (1.0 / steps) - 1.0


def _epochs_to_cross(value: float, limit: float, rate: float) -> float:
    """Epochs until `value` falling at `rate` per epoch drops below `limit`."""
    if value <= limit:
        return 0.0
    if rate >= 0:
        return math.inf
    return math.log(limit / value) / math.log1p(rate)


def _trend(history: list[dict[str, Any]], kind: str, thresholds: Thresholds) -> dict[str, Any]:
    projector = [record["projector"] for record in history]
    ranks = [m["effective_rank"] for m in projector]
    stds = [m["std_l2_sqrt_d"] for m in projector]
    spreads = [spread(m) for m in projector]
    rank_rate = _rate_per_epoch(ranks, thresholds.trend_window)
    std_rate = _rate_per_epoch(stds, thresholds.trend_window)
    spread_rate = _rate_per_epoch(spreads, thresholds.trend_window)
    warning = None
    if kind != "complete_collapse":
        rank_limit = min(
            thresholds.dimensional_rank_of_baseline * ranks[0],
            thresholds.dimensional_rank_of_dim * projector[-1]["dim"],
        )
        soon = thresholds.warn_horizon_epochs
        if spread_rate <= -thresholds.warn_rate and (
            _epochs_to_cross(spreads[-1], thresholds.complete_spread, spread_rate) <= soon
        ):
            warning = (
                f"std_l2·√d falling {-std_rate:.0%}/epoch (spread {spreads[-1]:.2f}): "
                "heading for complete collapse"
            )
        elif (
            kind == "healthy"
            and rank_rate <= -thresholds.warn_rate
            and _epochs_to_cross(ranks[-1], rank_limit, rank_rate) <= soon
        ):
            warning = f"effective rank falling {-rank_rate:.0%}/epoch: collapsing"
    return {
        "effective_rank_change_per_epoch": rank_rate,
        "std_change_per_epoch": std_rate,
        "warning": warning,
    }


def _reason(history: list[dict[str, Any]], kind: str, onset: int | None) -> str:
    first, last = history[0], history[-1]
    z0, z = first["projector"], last["projector"]
    h0, h = first["backbone"], last["backbone"]
    epoch = last["epoch"]
    knn = f"backbone kNN {h0['knn_top1']:.2f} → {h['knn_top1']:.2f}"
    if kind == "complete_collapse":
        return (
            f"projector std_l2·√d fell from {z0['std_l2_sqrt_d']:.2f} to "
            f"{z['std_l2_sqrt_d']:.3f} and effective rank from {z0['effective_rank']:.1f} to "
            f"{z['effective_rank']:.1f} by epoch {epoch}, collapsed since epoch {onset} "
            f"(random-pair cosine {z['cos_rand']:.3f}; {knn})."
        )
    if kind == "dimensional_collapse":
        return (
            f"projector effective rank fell from {z0['effective_rank']:.1f} to "
            f"{z['effective_rank']:.1f} of d={z['dim']} by epoch {epoch} (below threshold since "
            f"epoch {onset}) while std_l2·√d is {z['std_l2_sqrt_d']:.2f} (was "
            f"{z0['std_l2_sqrt_d']:.2f}): the embedding uses few dimensions ({knn})."
        )
    return (
        f"at epoch {epoch} projector std_l2·√d is {z['std_l2_sqrt_d']:.2f} "
        f"(epoch 0: {z0['std_l2_sqrt_d']:.2f}) and effective rank {z['effective_rank']:.1f} of "
        f"d={z['dim']} (epoch 0: {z0['effective_rank']:.1f}); backbone effective rank "
        f"{h['effective_rank']:.1f}, {knn}."
    )


def epoch_kinds(
    history: list[dict[str, Any]], thresholds: Thresholds = THRESHOLDS
) -> list[VerdictKind]:
    """The kind of every epoch in the history, each compared with epoch 0."""
    baseline = history[0]["projector"]
    return [classify(record["projector"], baseline, thresholds) for record in history]


def _onset(history: list[dict[str, Any]], kinds: list[VerdictKind]) -> int | None:
    """First epoch of the final uninterrupted streak of epochs at least as severe as the
    last one (a run that went dimensional at 2 and complete at 4 has complete-collapse onset
    4; one that flickers between dimensional and complete at the end keeps the onset of the
    streak). None for a healthy run."""
    final = _SEVERITY[kinds[-1]]
    if final == 0:
        return None
    start = len(kinds) - 1
    while start > 0 and _SEVERITY[kinds[start - 1]] >= final:
        start -= 1
    return int(history[start]["epoch"])


def epoch_verdict(
    history: list[dict[str, Any]], thresholds: Thresholds = THRESHOLDS
) -> dict[str, Any]:
    """Verdict at the last epoch of ``history`` (epoch records, history[0] = epoch 0).

    Returns {"kind", "onset_epoch", "reason", "trend": {"effective_rank_change_per_epoch",
    "std_change_per_epoch", "warning"}}. The two trend rates are relative changes per epoch
    over the last ``trend_window`` epochs (-0.3 = falling 30% per epoch) of the projector's
    effective rank and std_l2·√d; the warning announces a collapse before it happens.
    """
    if not history:
        raise ValueError("history is empty: epoch 0 (the baseline) is needed")
    kinds = epoch_kinds(history, thresholds)
    kind = kinds[-1]
    onset = _onset(history, kinds)
    return {
        "kind": kind,
        "onset_epoch": onset,
        "reason": _reason(history, kind, onset),
        "trend": _trend(history, kind, thresholds),
    }


def run_verdict(
    history: list[dict[str, Any]], thresholds: Thresholds = THRESHOLDS
) -> dict[str, Any]:
    """Verdict of a whole run: the state it ended in, with the onset of that state.

    Same shape as :func:`epoch_verdict` (the final epoch's verdict): a run that collapsed and
    recovered is judged by where it ended; the onset is the first epoch of the final streak.
    """
    return epoch_verdict(history, thresholds)
