"""Collapse verdict: healthy, dimensional or complete collapse, from the per-epoch diagnostics.

Input is the run's history: its typed epoch records (:class:`contract.EpochRecord`, whose
``projector`` and ``backbone`` are :class:`contract.EmbeddingMetrics`); ``history[0]`` is
epoch 0, measured before any training, and is the baseline every later epoch is compared with.

The verdict rests on the projector output z and on scale-free quantities (with one exception,
below), so the same thresholds hold for any dataset, seed and embedding size d:

* spread (``EmbeddingMetrics.spread``, declared in contract/metrics.py) = sqrt(total
  variance of z/||z||) = sqrt(sum exp(spectrum)), in [0, 1]. About 1 for
  an isotropic embedding, 0 when every sample maps to the same point. Unlike std_l2 x sqrt(d)
  it does not mistake an embedding that varies along few axes for a collapsed one
  (std_l2 x sqrt(d) of k axis-aligned dimensions is sqrt(k/d), 0.02 for k=1, d=2048).
  1 - spread^2 is about the cosine of random pairs.
* effective rank (RankMe): the number of dimensions the embedding uses, compared with an
  absolute count and with the epoch-0 baseline.

One measure is not scale-free, on purpose: the size of the raw z, its std along its top
principal direction (``EmbeddingMetrics.scale``) and its RMS distance from the mean
(``total_scale``), both compared with their epoch-0 values. An embedding whose rows all
shrink towards one point keeps the spread and rank of its directions, but for a loss on
raw distances it has reached the trivial solution (LeJEPA without SIGReg): that is complete
collapse too.

The backbone h corroborates: it is cited in the reason sentence (kNN, rank).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from contract import VERDICT_SEVERITY, EmbeddingMetrics, EpochRecord, Trend, Verdict, VerdictKind
from contract.metrics import participation_of
from workers.engine.cause import diagnose_cause, guard_warnings


@dataclass(frozen=True)
class Thresholds:
    """Every number the verdict uses, and the evidence that chose it.

    Calibration (metrics helper, 2026-11-28): ``collapse-lab train``, 12 epochs, small_cnn,
    CPU, preset defaults; digits seed 0 d=128 (15 presets), shapes seed 1 d=128, digits
    seed 2 with proj_dim 32 and 512. Projector z, over all trained epochs:

    * spread of runs collapsing to a point, last epoch: simclr-no-negatives 0.024,
      simsiam-no-stopgrad 0.039 (shapes) / 0.125 (digits; random-pair cosine 0.99, loss
      -0.991), swav-no-sinkhorn 0.052, swav as configured 0.23 (loss stuck at log K).
      Runs that keep their spread: >= 0.33 in epoch 1 of deepcluster, >= 0.60 afterwards,
      0.78-1.0 for all others; epoch 0 gives 0.80-0.83. Threshold 0.3 = random-pair cosine
      above about 0.91.
    * effective rank (RankMe) of the redundant-dimension ablations: barlow-no-offdiag
      1.8-5.1 (d = 32..512, two datasets), vicreg-no-covariance 5.1 (d=128), 22 (d=512);
      of runs that keep several dimensions: deepcluster 6.1 (d=32) / 8.7 (d=128; its
      k-means pulls z towards 10 centroids), simclr 20-66, byol 48, simsiam 17 (d=32) / 59
      / 165 (d=512). RankMe's noise floor grows with d, so RankMe alone cannot separate
      these; it catches an embedding spread evenly over at most 4 directions (RankMe
      counts dimensions, so this holds for any d; capped at d/4 for small d), 1.5x below
      deepcluster's 6.1.
    * the participation ratio of the spectrum catches the redundant-dimension ablations:
      1.0-2.0 (vicreg-no-covariance d=512: 1.7-2.0) against >= 2.5 for every other run
      after its first epoch (deepcluster 2.5-3.5, byol-no-ema 2.8, simclr/simsiam >= 4.0).
      Threshold 2.2 is the geometric middle of 1.7 and 2.8.
    * every rule also needs a fall from epoch 0, so an unusual initialisation is never
      called collapsed before training has done anything. Except when epoch 0 itself is
      collapsed (random pairs at cosine >= 0.95 with spread < 0.3; untrained networks
      measured 0.16-0.76): nothing can fall from it, so trained epochs are judged by the
      absolute limits alone, and a run that stays collapsed is not called healthy.
    * warnings: the rank of every method falls sharply in the first epoch (simclr on
      shapes 88 -> 24, deepcluster 93 -> 16) and settles, so a warning needs two epochs of
      fall faster than 15%/epoch that would cross a threshold within 3 epochs. It fires 3
      epochs before vicreg-no-covariance (d=128) turns dimensional.

    Re-checked after the probe embeddings moved into the BatchNorm-recompute pass
    (2026-11-28): digits zoo 17/17 as expected; shapes seed 1 (6 presets) and digits seed 2
    d=512 (4 presets) too (e.g. barlow-no-offdiag rank 1.7 / 6.4, vicreg-no-covariance
    2.9 / 14.0, simsiam-no-stopgrad spread collapse with std_l2 x sqrt(d) 0.014).

    Checked where not calibrated (2026-12-02): real photographs (bench/make_photo_folder.py),
    all 17 presets x seeds 0, 1, unchanged thresholds (docs/verdicts-photos.md). No
    collapsing run called healthy. Healthy runs there use fewer directions than on digits
    (participation ratio 2.3-14.6, simsiam 2.3-2.4) but keep their spread (>= 0.58); the
    dimensional ablations read 1.1-1.3. byol-no-ema (tau = 0, disputed by the BYOL and
    SimSiam papers) reads 1.9 / 2.2 and is called dimensional with seed 0. byol-no-predictor
    and swav-no-sinkhorn keep a spread of 0.33-0.59 there with 1.2-1.9 directions, so they
    are dimensional collapse, not complete, within 12 epochs.

    Audit on constructed embeddings (2026-12-06): one direction under isotropic noise of
    5-9% of the variance kept RankMe above half of epoch 0's (it counts the noise) while its
    participation ratio fell to 1.9-2.0, and read healthy; a run logged from a trained
    checkpoint on, on one direction from its first record, read healthy because nothing
    fell. Now a participation ratio fallen tenfold counts as a fall too (halved, it called
    healthy z = 8 loops collapsed: `dimensional_participation_of_baseline`), and an epoch 0
    already under the participation limit is judged by that limit alone (a finding says
    so). Re-judged at every epoch of the 276 stored runs of bench/causes.py (seeds 0-2):
    no kind changed. On the photos (bench/causes.py, seeds 0 and 1, evening of 2026-12-06)
    that rule called the healthy I-JEPA preset dimensional from epoch 1: its untrained
    pooled features sit on 1.6-1.8 directions and had not moved. It now starts below every
    untrained network measured (`dimensional_participation_at_baseline`).

    Scale (2026-12-05, digits and shapes, small_cnn, 512 images, 10-12 epochs): the raw z of
    lejepa-no-sigreg shrank to 0.16 (digits) and 0.05 (shapes) of its epoch-0 scale while
    its spread stayed 0.48 / 0.42 and its rank 68 (backbone kNN 0.72 -> 0.49 on digits);
    every healthy preset's z grew or held (lowest epoch: 0.95 of epoch 0, vicreg; lejepa
    with SIGReg x3-4), and so did their backbones' h (lowest 0.995, vicreg); a dimensional
    collapse keeps its top direction (barlow-no-offdiag, vicreg-no-covariance: x8-13).
    VICReg without its variance term reaches the same trivial solution (digits: 0.11 of
    epoch 0); with the rule, bench/causes.py's vicreg-no-variance and variance-weight-0.1
    runs read complete collapse in 4 of 4 each (digits and shapes, seeds 0 and 1), where
    the scale-free rules alone caught 1 of 4 within 10 epochs.
    Threshold 0.3: the geometric middle of 0.1 and 0.95, rounded.
    """

    # complete collapse: sqrt(total variance of z/||z||) below this...
    complete_spread: float = 0.3
    # ...and below this fraction of its epoch-0 value...
    complete_spread_of_baseline: float = 0.5
    # ...or below this spread (random pairs at cosine >= 0.96) after falling under this
    # fraction of epoch 0's: a slow collapse from a low epoch 0. External loops whose
    # untrained BatchNorm network in eval mode gives a spread of 0.28-0.39 (2026-12-06, two
    # audits of about 950 loops the calibration never saw: SimCLR without negatives, SimSiam
    # without predictor or stop-gradient, VICReg without variance, on wine, breast cancer,
    # Gaussian mixtures, photo patches) collapsed slowly to 0.16-0.20 (random pairs at
    # 0.96-0.98, 0.51-0.71 of epoch 0) and read healthy under the floor alone; the lowest
    # healthy loop ended at 0.23. Not a plain floor of 0.2: I-JEPA's pooled target features
    # on digits sit at 0.20 from epoch 0 on in a healthy run, and drift to 0.17-0.19 (0.86
    # of epoch 0, kNN rising) without EMA. This rule also sees an epoch 0 just short of the
    # collapsed-baseline rule below (random pairs at 0.94, spread 0.24) fall to cosine 0.98
    # (spread 0.14), which halving missed. Every rule asks for a fall: an absolute floor of
    # 0.15 did not, and read a 3-epoch I-JEPA run on digits whose pooled features never
    # moved (spread 0.1505 at epoch 0, 0.1499 at epoch 2, random pairs of its views at
    # cosine 0.58) as complete collapse from epoch 2 (2026-12-07 audit)
    slow_collapse_spread: float = 0.2
    slow_collapse_of_baseline: float = 0.75
    # or the raw z shrunk towards the origin: its scale below this fraction of epoch 0's
    complete_scale_of_baseline: float = 0.3
    # dimensional collapse: effective rank (RankMe) below this many dimensions...
    dimensional_rank: float = 4.0
    # ...(at most this fraction of d, for small d)...
    dimensional_rank_of_dim: float = 0.25
    # ...and below this fraction of its epoch-0 value;
    dimensional_rank_of_baseline: float = 0.5
    # or (same fall from epoch 0) the variance concentrated in fewer than this many
    # directions (participation ratio of the spectrum; RankMe's noise floor grows with d)
    dimensional_participation: float = 2.2
    # ...a fall being RankMe under `dimensional_rank_of_baseline` of epoch 0's, or the
    # participation ratio under this fraction of epoch 0's. Not half: at d = 8 healthy
    # SimSiam and BYOL loops (bench/external_loops.py --z-dim 8) go from 4.2-5.5 at epoch 0
    # to 1.7-2.4, RankMe 4-5 of 8; the noise-floor collapse it is for falls from hundreds
    dimensional_participation_of_baseline: float = 0.1
    # An epoch 0 under this participation ratio is judged by the limit alone, with no fall
    # asked for: below every untrained network measured (epoch 0, 2026-12-06: I-JEPA's pooled
    # ViT features on the photos 1.62-1.77, on digits and shapes 3.1-3.9; DINO's ViT 2.2-6.4;
    # LeJEPA's ViT, small_cnn and resnet18 5.0-61), above one direction under a noise floor of
    # 1% (1.31: the record of a run logged from a collapsed checkpoint on). The geometric
    # middle of 1.31 and 1.62.
    dimensional_participation_at_baseline: float = 1.45
    # trend: relative change per epoch measured over this many most recent epochs
    trend_window: int = 3
    # warn when rank or spread falls faster than this per epoch and would cross its
    # collapse threshold within `warn_horizon_epochs` epochs at that rate
    warn_rate: float = 0.15
    warn_horizon_epochs: int = 3
    # findings (sentences beside the kind, never changing it):
    # epoch 0 itself collapsed: z/||z|| below `complete_spread` with random pairs at least
    # this close (the baseline rule above then applies: `baseline_collapsed`). Untrained
    # networks measured 0.46-0.76 on digits and 0.16-0.68 on shapes (simsiam, byol, lejepa,
    # dino, ijepa; 2026-12-05, one epoch-0 probe each); 1.00 is what a loop measuring a random
    # network in eval mode with BatchNorm's initial running statistics reports (all rows one
    # vector).
    collapsed_baseline_cos_rand: float = 0.95
    # ...or z/||z|| with next to no variance at all, whatever its random pairs: an epoch 0
    # of zero rows (a zero-initialised last layer, dead ReLUs) has spread 0 and random-pair
    # cosine 0 (zero rows stay zero when normalised), and every limit taken from it is 0
    degenerate_baseline_spread: float = 0.01
    # a complete collapse of the directions whose raw z keeps at least this fraction of its
    # epoch-0 size around its mean gets the common-offset finding (a shrink is below 0.3)
    offset_size_of_baseline: float = 0.5
    # a healthy verdict whose spread has fallen under this fraction of epoch 0's gets a
    # finding (the limit is not crossed yet, the fall is real). Healthy presets at the zoo's
    # defaults (2026-12-06, seed 0, 20 epochs, every epoch's verdict): digits, nine presets,
    # lowest epoch 0.56 of epoch 0 (swav), 0.67 (deepcluster), 0.69 (dino), the others never
    # under it; shapes, nine presets, lowest 0.87 (swav): the finding fired on none of their
    # 377 epochs (lejepa on shapes stopped at 19). Photos end >= 0.58 in 0.8; I-JEPA's pooled
    # features sit at their epoch-0 0.17-0.20. simsiam-no-predictor on digits, in a run of 4
    # short epochs, read healthy at 0.36 of 0.91 on its way to complete collapse (0.07 at the
    # zoo's 20 epochs)
    spread_fallen_of_baseline: float = 0.5
    # backbone kNN this far below its epoch-0 (random network) value; about two standard
    # errors of a 450-image probe at 85% accuracy (sqrt(0.85 * 0.15 / 450) = 0.017)
    knn_drop: float = 0.03
    # partial prototype collapse: fewer than this share of the K prototypes distinct...
    prototypes_distinct_share: float = 0.5
    # ...or the samples' mean assignment using an effective number below this share of K
    clusters_used_share: float = 0.25

    def baseline_collapsed(self, baseline: EmbeddingMetrics) -> bool:
        """Whether epoch 0 itself already looks completely collapsed: then no later epoch
        can fall from it, and trained epochs are judged by the absolute limits alone."""
        return baseline.spread < self.degenerate_baseline_spread or (
            baseline.spread < self.complete_spread
            and baseline.cos_rand >= self.collapsed_baseline_cos_rand
        )

    def spread_limit(self, baseline: EmbeddingMetrics) -> float:
        """Spread below which z counts as completely collapsed, given epoch 0."""
        if self.baseline_collapsed(baseline):
            return self.complete_spread
        relative = min(self.complete_spread, self.complete_spread_of_baseline * baseline.spread)
        slow = min(self.slow_collapse_spread, self.slow_collapse_of_baseline * baseline.spread)
        return max(relative, slow)

    def participation_limit(self, baseline: EmbeddingMetrics) -> float:
        """Participation ratio below which z counts as dimensionally collapsed (capped at
        d/4 for small d, as the rank limit is)."""
        return min(self.dimensional_participation, self.dimensional_rank_of_dim * baseline.dim)

    def baseline_dimensional(self, baseline: EmbeddingMetrics) -> bool:
        """Whether epoch 0 already spreads its variance over so few directions that no
        untrained network measured did (``dimensional_participation_at_baseline``; and is not
        completely collapsed): then no fall from it can be asked for, and trained epochs are
        judged by the participation limit alone, as a collapsed epoch 0 is by the absolute
        limits. An epoch 0 between the two (I-JEPA's untrained pooled features on photographs,
        1.6-1.8) gets a finding and the usual rules: a fall is asked for."""
        return not self.baseline_collapsed(baseline) and participation_ratio(baseline) < min(
            self.dimensional_participation_at_baseline, self.participation_limit(baseline)
        )

    def rank_limit(self, baseline: EmbeddingMetrics) -> float:
        """Effective rank below which z counts as dimensionally collapsed, given epoch 0."""
        absolute = min(self.dimensional_rank, self.dimensional_rank_of_dim * baseline.dim)
        if self.baseline_collapsed(baseline):
            return float(absolute)
        return float(min(absolute, self.dimensional_rank_of_baseline * baseline.effective_rank))


THRESHOLDS = Thresholds()


def participation_ratio(embedding_metrics: EmbeddingMetrics) -> float:
    """The participation ratio of z/||z|| (``metrics.participation_ratio``); records written
    before it was recorded carry only the spectrum, from which it is derived the same way."""
    recorded = embedding_metrics.participation_ratio
    if recorded is not None:
        return recorded
    return participation_of(embedding_metrics.spectrum)


def shrunk(
    current: EmbeddingMetrics, baseline: EmbeddingMetrics, thresholds: Thresholds = THRESHOLDS
) -> bool:
    """Whether the raw embedding has shrunk towards the origin since epoch 0: the std along
    its top direction and its total size (RMS distance from the mean) both below
    ``complete_scale_of_baseline`` of epoch 0's. The top direction alone also falls when
    variance spreads out of it: an untrained network whose output is anisotropic (a top
    share of 0.1-0.2 at d = 128-256) trained into an isotropic one, or one outlier row at
    epoch 0, read as complete collapse with the same size. False for records written
    before the scale was measured; the top direction alone for those before the total."""
    size = _relative_size(current, baseline)
    return size is not None and size < thresholds.complete_scale_of_baseline


def _relative_size(current: EmbeddingMetrics, baseline: EmbeddingMetrics) -> float | None:
    """How much of its epoch-0 size the raw z keeps, as :func:`shrunk` reads it: the larger
    of the top direction's and the total scale's ratios (both must fall); None before the
    scale was measured."""
    if current.scale is None or not baseline.scale:
        return None
    ratio = current.scale / baseline.scale
    if current.total_scale is not None and baseline.total_scale:
        ratio = max(ratio, current.total_scale / baseline.total_scale)
    return ratio


def classify(
    current: EmbeddingMetrics, baseline: EmbeddingMetrics, thresholds: Thresholds = THRESHOLDS
) -> VerdictKind:
    """Kind of one trained epoch's diagnostics compared with its epoch-0 baseline (epoch 0
    itself is never judged: training has not done anything yet)."""
    if current.spread < thresholds.spread_limit(baseline) or shrunk(current, baseline, thresholds):
        return "complete_collapse"
    if dimensional_limit(current, baseline, thresholds) is not None:
        return "dimensional_collapse"
    return "healthy"


def dimensional_limit(
    current: EmbeddingMetrics, baseline: EmbeddingMetrics, thresholds: Thresholds = THRESHOLDS
) -> str | None:
    """The limit under which ``current`` counts as dimensionally collapsed, in words for the
    reason sentence ("effective rank below 4.0"), or None while it uses enough dimensions.
    The one place the dimensional rules are decided (:func:`classify` reads it too)."""
    rank, rank_limit = current.effective_rank, thresholds.rank_limit(baseline)
    if rank < rank_limit:
        return f"effective rank below {rank_limit:.1f}"
    participation = participation_ratio(current)
    # the participation ratio's limit alone: the variance in few directions while RankMe
    # still counts many (a run near that limit can read healthy again at its next epoch)
    beside_rank = f", the effective rank above its limit {rank_limit:.1f}"
    # few directions: collapsed once RankMe has halved since epoch 0, or the participation
    # ratio fell tenfold (RankMe counts a noise floor the participation ratio weighs little:
    # one direction under 5-9% isotropic noise keeps RankMe's count)...
    fell = rank < thresholds.dimensional_rank_of_baseline * baseline.effective_rank or (
        participation
        < thresholds.dimensional_participation_of_baseline * participation_ratio(baseline)
    )
    if fell and participation < thresholds.dimensional_participation:
        return f"participation ratio under {thresholds.dimensional_participation:.1f}{beside_rank}"
    # ...or whatever epoch 0 was, when it already had few
    limit = thresholds.participation_limit(baseline)
    if thresholds.baseline_dimensional(baseline) and participation < limit:
        return f"participation ratio under {limit:.1f}{beside_rank}"
    return None


def _rate_per_epoch(values: list[float], window: int) -> float:
    """Geometric mean relative change per epoch over the last `window` steps (-0.3 means
    falling 30% per epoch); 0 with fewer than two values."""
    recent = values[-(window + 1) :]
    steps = len(recent) - 1
    if steps < 1 or recent[0] <= 0:
        return 0.0
    return float((max(recent[-1], 1e-12) / recent[0]) ** (1.0 / steps) - 1.0)


def _epochs_to_cross(value: float, limit: float, rate: float) -> float:
    """Epochs until `value` falling at `rate` per epoch drops below `limit`."""
    if value <= limit:
        return 0.0
    if rate >= 0:
        return math.inf
    return math.log(limit / value) / math.log1p(rate)


def _falling(values: list[float], limit: float, thresholds: Thresholds) -> float | None:
    """The per-epoch fall rate of `values` if it is steep and lasting enough to warn: faster
    than ``warn_rate`` both over the trend window and over the last epoch, and heading below
    `limit` within ``warn_horizon_epochs``. None otherwise. The first trained epoch alone
    never warns: every method's rank drops sharply from the random initialisation (simclr
    on shapes: 88 -> 24) and then settles."""
    if len(values) < 3:
        return None
    rate = _rate_per_epoch(values, thresholds.trend_window)
    last_step = _rate_per_epoch(values, 1)
    if max(rate, last_step) > -thresholds.warn_rate:
        return None
    if _epochs_to_cross(values[-1], limit, rate) > thresholds.warn_horizon_epochs:
        return None
    return rate


def _trend(history: Sequence[EpochRecord], kind: str, thresholds: Thresholds) -> Trend:
    projector = [record.projector for record in history]
    ranks = [m.effective_rank for m in projector]
    stds = [m.std_l2_sqrt_d for m in projector]
    spreads = [m.spread for m in projector]
    rank_rate = _rate_per_epoch(ranks, thresholds.trend_window)
    std_rate = _rate_per_epoch(stds, thresholds.trend_window)
    warning = None
    if kind != "complete_collapse":
        spread_fall = _falling(spreads, thresholds.spread_limit(projector[0]), thresholds)
        rank_fall = _falling(ranks, thresholds.rank_limit(projector[0]), thresholds)
        # every epoch's size relative to epoch 0, as `shrunk` reads it (records written
        # before the scale was measured have none)
        sizes = [_relative_size(m, projector[0]) for m in projector]
        scale_fall = None
        if all(size is not None for size in sizes):
            known = [size for size in sizes if size is not None]
            scale_fall = _falling(known, thresholds.complete_scale_of_baseline, thresholds)
        if spread_fall is not None:
            warning = (
                f"std_l2·√d falling {-std_rate:.0%}/epoch (spread {spreads[-1]:.2f}): "
                "heading for complete collapse"
            )
        elif scale_fall is not None:
            warning = (
                f"the raw scale of z falling {-scale_fall:.0%}/epoch ({sizes[-1]:.2f} of epoch "
                "0): shrinking towards a single point"
            )
        elif kind == "healthy" and rank_fall is not None:
            warning = f"effective rank falling {-rank_fall:.0%}/epoch: collapsing"
    return Trend(
        effective_rank_change_per_epoch=rank_rate, std_change_per_epoch=std_rate, warning=warning
    )


def _scale_only(history: Sequence[EpochRecord], kind: str, thresholds: Thresholds) -> bool:
    """Whether a complete collapse shows in the raw scale only (:func:`shrunk`), the
    directions of z/||z|| still spread above the limit."""
    z0, z = history[0].projector, history[-1].projector
    return kind == "complete_collapse" and z.spread >= thresholds.spread_limit(z0)


def _reason(
    history: Sequence[EpochRecord], kind: str, onset: int | None, thresholds: Thresholds
) -> str:
    first, last = history[0], history[-1]
    z0, z = first.projector, last.projector
    h0, h = first.backbone, last.backbone
    epoch, base = last.epoch, _baseline(history)
    knn = _knn_clause(h0, h)
    if _scale_only(history, kind, thresholds) and z.scale is not None and z0.scale:
        total = ""
        if z.total_scale is not None and z0.total_scale:
            size = z.total_scale / z0.total_scale
            total = f" and its size (RMS distance from the mean) to {size:.2f}"
        return (
            f"z's raw values shrank towards a single point: its scale (std along "
            f"its top direction) fell from {z0.scale:.3g} to {z.scale:.3g} "
            f"({z.scale / z0.scale:.2f} of {base}){total} by epoch {epoch}, collapsed since "
            f"epoch {onset}, while its directions still vary (spread {z.spread:.2f}, "
            f"effective rank {z.effective_rank:.1f}{knn})."
        )
    if kind != "healthy" and thresholds.baseline_collapsed(z0):
        # nothing fell: epoch 0 was already collapsed, so the absolute limits decided
        return (
            f"z std_l2·√d is {z.std_l2_sqrt_d:.3f} and effective rank "
            f"{z.effective_rank:.1f} of d={z.dim} at epoch {epoch}, under the absolute "
            f"limits since epoch {onset} (random-pair cosine {z.cos_rand:.3f}{knn}); {base} "
            f"was already collapsed (std_l2·√d {z0.std_l2_sqrt_d:.3f}, random-pair cosine "
            f"{z0.cos_rand:.2f}), so nothing could fall from it. The onset is the next epoch: "
            f"{base}, the baseline, is not judged ({_baseline_note(first.epoch)})."
        )
    if kind == "complete_collapse":
        return (
            f"z std_l2·√d fell from {z0.std_l2_sqrt_d:.2f} to "
            f"{z.std_l2_sqrt_d:.3f} and effective rank from {z0.effective_rank:.1f} to "
            f"{z.effective_rank:.1f} by epoch {epoch}, collapsed since epoch {onset} "
            f"(random-pair cosine {z.cos_rand:.3f}{knn})."
        )
    if kind == "dimensional_collapse":
        limit = dimensional_limit(z, z0, thresholds)
        return (
            f"z effective rank fell from {z0.effective_rank:.1f} to "
            f"{z.effective_rank:.1f} of d={z.dim} by epoch {epoch} (collapsed since epoch "
            f"{onset}: {limit}) while std_l2·√d is {z.std_l2_sqrt_d:.2f} (was "
            f"{z0.std_l2_sqrt_d:.2f}) and its variance spreads over "
            f"{participation_ratio(z):.2f} directions: the embedding uses few dimensions"
            f"{knn.replace('; ', ' (', 1) + ')' if knn else ''}."
        )
    backbone = f"; backbone effective rank {h.effective_rank:.1f}" if h else ""
    return (
        f"at epoch {epoch} z std_l2·√d is {z.std_l2_sqrt_d:.2f} "
        f"({base}: {z0.std_l2_sqrt_d:.2f}) and effective rank {z.effective_rank:.1f} of "
        f"d={z.dim} ({base}: {z0.effective_rank:.1f}){backbone}{knn}."
    )


def _baseline(history: Sequence[EpochRecord]) -> str:
    """What the texts call the baseline: "epoch 0", or the first epoch a run logged where it
    started later (an external run logged from a checkpoint on, a synced part of a job)."""
    return f"epoch {history[0].epoch}"


def _baseline_note(first_epoch: int) -> str:
    """Why a collapsed baseline need not be the training's doing, a clause: an untrained
    network's BatchNorm statistics at epoch 0; where the run was first logged later, a run
    already trained (when it collapsed is then unknown)."""
    if first_epoch == 0:
        return (
            "an untrained network measured in eval mode with BatchNorm's initial statistics "
            "(mean 0, variance 1, not the data's) reads collapsed too"
        )
    return (
        f"first logged at epoch {first_epoch}, after training had begun: it may have "
        "collapsed earlier"
    )


def _why_baseline_collapsed(history: Sequence[EpochRecord]) -> str:
    """:func:`_baseline_note` as a sentence, with what to do about it."""
    first = history[0].epoch
    advice = (
        "give the BatchNorm layers the data's statistics before epoch 0 "
        "(torch.optim.swa_utils.update_bn over a few training batches, as client/README.md "
        "shows; the Lightning callback does it on the probe)"
        if first == 0
        else "log epoch 0 (before the first training step) for a baseline that trained epochs "
        "can fall from"
    )
    note = _baseline_note(first)
    return f"{note[0].upper()}{note[1:]}: {advice}."


def _knn_clause(h0: EmbeddingMetrics | None, h: EmbeddingMetrics | None) -> str:
    """ "; backbone kNN a → b", or "" when the run records no backbone or no labels (an
    external run may log only z)."""
    if h0 is None or h is None or h0.knn_top1 is None or h.knn_top1 is None:
        return ""
    return f"; backbone kNN {h0.knn_top1:.2f} → {h.knn_top1:.2f}"


def _cluster_findings(history: Sequence[EpochRecord], thresholds: Thresholds) -> list[str]:
    """Partial prototype collapse (Govindarajan et al., arXiv 2410.14060): duplicated
    prototypes, or samples spread over few of them; invisible in loss, std and RankMe."""
    z0, z = history[0].projector, history[-1].projector
    base = _baseline(history)
    total = z.num_prototypes
    if not total:
        return []
    findings = []
    distinct = z.distinct_prototypes
    # as distinct as the data allows: K samples' own count (all K in older records)
    allowed = min(total, z.distinct_samples or total)
    if distinct is not None and distinct < thresholds.prototypes_distinct_share * allowed:
        findings.append(
            f"partial prototype collapse: only {distinct} of {total} prototypes are distinct "
            f"(cosine < 0.9), where {allowed} samples of the embedding are; {base}: "
            f"{z0.distinct_prototypes}."
        )
    used = z.cluster_perplexity
    if used is not None and used < thresholds.clusters_used_share * total:
        before = z0.cluster_perplexity
        was = f"; {base}: {before:.1f}" if before is not None else ""
        findings.append(
            f"the samples use an effective {used:.1f} of {total} clusters (perplexity of "
            f"the mean assignment{was}): most prototypes are idle."
        )
    return findings


def _space_summary(m: EmbeddingMetrics) -> str:
    return f"spread {m.spread:.2f}, effective rank {m.effective_rank:.1f} of d={m.dim}"


def findings(
    history: Sequence[EpochRecord],
    kinds: list[VerdictKind],
    trend: Trend,
    thresholds: Thresholds = THRESHOLDS,
) -> list[str]:
    """What the three kinds do not say, one sentence with its numbers each: partial
    prototype collapse, the backbone's kNN below its epoch-0 value, a collapse coming (the
    trend's warning), a healthy run that has lost more than half of its spread, an epoch 0
    that already looks collapsed or on few directions (the baseline every kind is judged
    against), a collapse the run came back from, a common offset dominating a complete
    collapse, backbone and projector disagreeing (one collapsed, the other not). ``kinds``:
    every epoch's (:func:`epoch_kinds`). The backbone is judged by the same rules against
    its own epoch 0."""
    kind = kinds[-1]
    first, last = history[0], history[-1]
    base = _baseline(history)
    result = _cluster_findings(history, thresholds)
    h0, h = first.backbone, last.backbone
    if trend.warning:
        result.append(f"collapse coming: {trend.warning}.")
    z0 = first.projector
    z = last.projector
    if (
        kind == "healthy"
        and not thresholds.baseline_collapsed(z0)
        and z.spread < thresholds.spread_fallen_of_baseline * z0.spread
    ):
        result.append(
            f"the spread (the square root of z/‖z‖'s total variance) has fallen from "
            f"{z0.spread:.2f} at {base} to {z.spread:.2f} "
            f"(random pairs at cosine {z.cos_rand:.2f}): short of complete collapse (below "
            f"{thresholds.spread_limit(z0):.2f} for this run), it has lost more than half of it."
        )
    if thresholds.baseline_collapsed(z0):
        result.append(
            f"{base} already looks completely collapsed (std·√d {z0.std_l2_sqrt_d:.3f}, "
            f"random-pair cosine {z0.cos_rand:.2f}): no later epoch can fall from it, so "
            f"trained epochs are judged by the absolute limits alone (spread below "
            f"{thresholds.complete_spread}, effective rank below "
            f"{thresholds.rank_limit(z0):.1f}). {_why_baseline_collapsed(history)}"
        )
    else:
        directions, limit = participation_ratio(z0), thresholds.participation_limit(z0)
        few = f"{directions:.1f} directions (participation ratio, below {limit:.1f})"
        if thresholds.baseline_dimensional(z0):
            result.append(
                f"{base} already spreads its variance over {few}: no fall from it can be "
                "measured, so trained epochs are dimensional collapse while they stay under "
                "that limit. An untrained network rarely looks like this; a run logged from a "
                "trained checkpoint on may."
            )
        elif directions < limit:
            result.append(
                f"{base} spreads its variance over {few}, as untrained networks can (I-JEPA's "
                "pooled ViT features on photographs: 1.6-1.8): few directions count as "
                "dimensional collapse only after a fall from it."
            )
    result += [
        f for f in (_recovery(history, kinds), _offset_finding(history, kind, thresholds)) if f
    ]
    if h0 is None or h is None or len(history) < 2:  # only z logged, or nothing trained yet
        return result
    h_knn_fell = (
        h.knn_top1 is not None
        and h0.knn_top1 is not None
        and h.knn_top1 < h0.knn_top1 - thresholds.knn_drop
    )
    if h_knn_fell:
        owner = "the untrained network's" if first.epoch == 0 else "its"
        result.append(
            f"backbone kNN {h.knn_top1:.2f} is below {owner} {h0.knn_top1:.2f} at {base}: "
            "training has made h worse for classification."
        )
    backbone_kind = classify(h, h0, thresholds)
    if kind != "healthy" and backbone_kind == "healthy":
        result.append(
            f"z is in {kind.replace('_', ' ')} ({_space_summary(z)}) but "
            f"the backbone h is healthy ({_space_summary(h)}; {base}: {_space_summary(h0)}): "
            + (
                # its geometry held but what it encodes did not: the head is not the whole story
                "its geometry held, though its kNN fell (above)."
                if h_knn_fell
                else "the collapse is confined to z."
            )
        )
    elif kind == "healthy" and backbone_kind != "healthy":
        result.append(
            f"the backbone h is in {backbone_kind.replace('_', ' ')} ({_space_summary(h)}; "
            f"{base}: {_space_summary(h0)}) while z looks healthy "
            f"({_space_summary(z)})."
        )
    elif kind != "healthy" and backbone_kind != "healthy":
        result.append(
            f"the backbone h has collapsed too ({backbone_kind.replace('_', ' ')}: "
            f"{_space_summary(h)}; {base}: {_space_summary(h0)})."
        )
    return result


def _offset_finding(
    history: Sequence[EpochRecord], kind: VerdictKind, thresholds: Thresholds
) -> str | None:
    """A complete collapse of the directions (z/||z||) while the raw z keeps its size around
    its mean: a common offset has come to dominate every row. That is the collapse for a
    loss on cosines; a loss on the raw z (VICReg, Barlow Twins, LeJEPA) centres it away."""
    z0, z = history[0].projector, history[-1].projector
    if kind != "complete_collapse" or _scale_only(history, kind, thresholds):
        return None
    if z.total_scale is None or not z0.total_scale:
        return None
    size = z.total_scale / z0.total_scale
    if size < thresholds.offset_size_of_baseline:
        return None
    return (
        f"z/||z|| has collapsed (random pairs at cosine {z.cos_rand:.3f}) while the raw z "
        f"keeps {size:.2f} of its epoch-0 size around its mean: a common offset dominates "
        "every row. For a loss on cosines (SimCLR, BYOL, SimSiam, DINO) that is the collapse; "
        "for one on the raw z (VICReg, Barlow Twins, LeJEPA), whose terms centre z, look at "
        "the centred spread."
    )


def _recovery(history: Sequence[EpochRecord], kinds: list[VerdictKind]) -> str | None:
    """A collapse the run came back from: the last streak of collapsed epochs (``kinds``,
    every epoch's) before the final healthy one, its most severe kind and its epochs; None
    if there was none."""
    collapsed = [i for i, kind in enumerate(kinds) if kind != "healthy"]
    if not collapsed or kinds[-1] != "healthy":
        return None
    end = collapsed[-1]
    start = end
    while start > 1 and kinds[start - 1] != "healthy":
        start -= 1
    worst = max(kinds[start : end + 1], key=lambda kind: VERDICT_SEVERITY[kind])
    first, last = history[start].epoch, history[end].epoch
    epochs = f"epoch {first}" if first == last else f"epochs {first}-{last}"
    return (
        f"{worst.replace('_', ' ')} at {epochs}, healthy again since epoch "
        f"{history[end + 1].epoch}: a recovery, or a run on the boundary."
    )


def epoch_kinds(
    history: Sequence[EpochRecord], thresholds: Thresholds = THRESHOLDS
) -> list[VerdictKind]:
    """The kind of every epoch in the history, each compared with epoch 0 (itself healthy:
    nothing has been trained yet)."""
    baseline = history[0].projector
    untrained: VerdictKind = "healthy"
    return [untrained, *(classify(r.projector, baseline, thresholds) for r in history[1:])]


def _onset(history: Sequence[EpochRecord], kinds: list[VerdictKind]) -> int | None:
    """First epoch of the final uninterrupted streak of epochs at least as severe as the
    last one (a run that went dimensional at 2 and complete at 4 has complete-collapse onset
    4; one that flickers between dimensional and complete at the end keeps the onset of the
    streak). None for a healthy run. Never epoch 0, which is not judged even where it reads
    collapsed: a loop measuring its untrained network in eval mode reads one vector there
    (Thresholds.collapsed_baseline_cos_rand), so a streak from epoch 1 starts at the first
    trained epoch, and the reason says what epoch 0 read."""
    final = VERDICT_SEVERITY[kinds[-1]]
    if final == 0:
        return None
    start = len(kinds) - 1
    while start > 0 and VERDICT_SEVERITY[kinds[start - 1]] >= final:
        start -= 1
    return history[start].epoch


def epoch_verdict(
    history: Sequence[EpochRecord],
    thresholds: Thresholds = THRESHOLDS,
    configuration: Mapping[str, Any] | None = None,
) -> Verdict:
    """Verdict at the last epoch of ``history`` (epoch records, history[0] = epoch 0): kind,
    onset, reason, trend, findings (see :func:`findings`; while healthy, also the guards
    whose measured signal fires: :func:`workers.engine.cause.guard_warnings`) and, for a
    collapse, its cause
    (:func:`workers.engine.cause.diagnose_cause`; ``configuration`` is read only for the
    guards no probe can see). The two trend rates are
    relative changes per epoch over the last ``trend_window`` epochs (-0.3 = falling 30% per
    epoch) of the projector's effective rank and std_l2·√d; the warning announces a collapse
    before it happens.
    """
    if not history:
        raise ValueError("history is empty: epoch 0 (the baseline) is needed")
    kinds = epoch_kinds(history, thresholds)
    kind = kinds[-1]
    onset = _onset(history, kinds)
    trend = _trend(history, kind, thresholds)
    scale_only = _scale_only(history, kind, thresholds)
    warnings = guard_warnings(history, configuration) if kind == "healthy" else []
    return Verdict(
        kind=kind,
        onset_epoch=onset,
        reason=_reason(history, kind, onset, thresholds),
        trend=trend,
        findings=findings(history, kinds, trend, thresholds) + warnings,
        cause=diagnose_cause(history, kind, onset, configuration, scale_only=scale_only),
    )


def run_verdict(
    history: Sequence[EpochRecord],
    thresholds: Thresholds = THRESHOLDS,
    configuration: Mapping[str, Any] | None = None,
) -> Verdict:
    """Verdict of a whole run: the state it ended in, with the onset of that state.

    Same shape as :func:`epoch_verdict` (the final epoch's verdict): a run that collapsed and
    recovered is judged by where it ended; the onset is the first epoch of the final streak.
    """
    return epoch_verdict(history, thresholds, configuration)
