"""Verdicts on synthetic run histories built from the diagnostics of constructed embeddings."""

from __future__ import annotations

import math

import pytest
import torch

from contract import EmbeddingMetrics, EpochRecord
from workers.engine.metrics import embedding_diagnostics
from workers.engine.verdict import THRESHOLDS, epoch_verdict, run_verdict

N_PROBE = 1024
NUM_CLASSES = 10


def _record(epoch: int, z: torch.Tensor, seed: int) -> EpochRecord:
    """An epoch record whose projector and backbone are both the embedding z (N, d); the
    two views are z plus a little noise, the kNN bank is z itself."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(z.shape[0]) % NUM_CLASSES
    view1 = z + 0.05 * z.std() * torch.randn(z.shape, generator=generator)
    view2 = z + 0.05 * z.std() * torch.randn(z.shape, generator=generator)
    diagnostics = embedding_diagnostics(z, view1, view2, labels, z, labels, NUM_CLASSES)
    loss = None if epoch == 0 else 1.0 / (epoch + 1)
    return EpochRecord(epoch=epoch, loss=loss, projector=diagnostics, backbone=diagnostics)


def _gaussian(d: int, seed: int) -> torch.Tensor:
    return torch.randn(N_PROBE, d, generator=torch.Generator().manual_seed(seed))


def _subspace_mix(d: int, k: int, weight: float, seed: int) -> torch.Tensor:
    """Gaussian whose variance outside a fixed k-dim subspace is scaled by `weight`
    (1 = isotropic, 0 = confined to the subspace)."""
    z = _gaussian(d, seed)
    basis, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(99)))
    coordinates = z @ basis
    coordinates[:, k:] *= weight
    return coordinates @ basis.T


def _to_constant(d: int, weight: float, seed: int) -> torch.Tensor:
    """Points shrinking towards one fixed point as weight goes from 1 to 0."""
    centre = 3.0 * torch.randn(1, d, generator=torch.Generator().manual_seed(7))
    return centre + weight * _gaussian(d, seed) * 3.0


def test_gaussian_history_is_healthy() -> None:
    history = [_record(epoch, _gaussian(128, seed=epoch), seed=epoch) for epoch in range(4)]
    verdict = epoch_verdict(history)
    assert verdict.kind == "healthy"
    assert verdict.onset_epoch is None
    assert verdict.trend.warning is None
    assert verdict.findings == []
    assert abs(verdict.trend.effective_rank_change_per_epoch) < 0.05


def test_collapse_to_a_constant_is_complete_with_its_onset() -> None:
    weights = [1.0, 0.7, 0.45, 0.02, 0.001, 0.0001]
    history = [_record(e, _to_constant(128, w, seed=e), seed=e) for e, w in enumerate(weights)]
    verdict = run_verdict(history)
    assert verdict.kind == "complete_collapse"
    assert verdict.onset_epoch == 3
    assert "std_l2·√d fell from" in verdict.reason
    assert "collapsed since epoch 3" in verdict.reason
    # before the collapse the trend already warned
    early = epoch_verdict(history[:3])
    assert early.kind == "healthy"
    assert early.trend.std_change_per_epoch < -0.15
    assert early.trend.warning is not None
    assert any(f.startswith("collapse coming: ") for f in early.findings)


def test_collapse_to_three_dimensions_is_dimensional_for_several_d() -> None:
    for d in (128, 512):
        weights = [1.0, 0.5, 0.2, 0.0001, 0.0, 0.0]
        history = [
            _record(e, _subspace_mix(d, 3, w, seed=e), seed=e) for e, w in enumerate(weights)
        ]
        verdict = run_verdict(history)
        assert verdict.kind == "dimensional_collapse", d
        assert verdict.onset_epoch == 3, d
        assert f"of d={d}" in verdict.reason
        assert "collapsed since epoch 3: effective rank below 4.0)" in verdict.reason
        # the points still spread out: this is not complete collapse
        assert history[-1].projector.spread > 0.9


def test_noisy_healthy_run_stays_healthy() -> None:
    generator = torch.Generator().manual_seed(11)
    history = []
    for epoch in range(8):
        # anisotropic but full-rank, with a random per-epoch rescaling of each dimension
        scales = torch.exp(0.5 * torch.randn(64, generator=generator))
        z = _gaussian(64, seed=epoch) * scales + 0.3 * torch.randn(1, 64, generator=generator)
        history.append(_record(epoch, z, seed=100 + epoch))
        verdict = epoch_verdict(history)
        assert verdict.kind == "healthy", epoch
    assert verdict.trend.warning is None


def test_onset_is_the_start_of_the_final_streak() -> None:
    sequence = [1.0, 0.0, 1.0, 1.0, 0.0, 0.0]  # collapses, recovers, collapses again
    history = [_record(e, _subspace_mix(128, 3, w, seed=e), seed=e) for e, w in enumerate(sequence)]
    assert run_verdict(history).onset_epoch == 4
    assert run_verdict(history[:4]).kind == "healthy"


def test_baseline_only_history_and_thresholds_in_one_place() -> None:
    verdict = epoch_verdict([_record(0, _gaussian(32, seed=0), seed=0)])
    assert verdict.kind == "healthy"
    assert verdict.trend.effective_rank_change_per_epoch == 0.0
    assert 0 < THRESHOLDS.complete_spread < 1


def _one_direction_under_noise(noise: float, d: int = 512) -> list[EpochRecord]:
    """Epoch 0 isotropic; epoch 1 every dimension a copy of one feature, plus isotropic noise
    of std ``noise`` per dimension."""
    generator = torch.Generator().manual_seed(5)
    feature = torch.randn(N_PROBE, 1, generator=generator)
    direction = torch.nn.functional.normalize(torch.randn(1, d, generator=generator), dim=1)
    z = feature * direction + noise * _gaussian(d, seed=6)
    return [_record(0, _gaussian(d, seed=0), seed=0), _record(1, z, seed=1)]


def test_one_dominant_direction_under_a_noise_floor_is_dimensional() -> None:
    # BT-without-off-diagonal-like: every dimension a copy of one feature, plus a small noise
    # floor over all 512 dimensions. RankMe counts the noise (hundreds), the participation
    # ratio of the spectrum does not (about 1.4).
    history = _one_direction_under_noise(0.005)
    verdict = run_verdict(history)
    assert history[1].projector.effective_rank > 50
    assert verdict.kind == "dimensional_collapse"
    assert "directions" in verdict.reason
    # the reason says which limit decided: not RankMe's, which counts the noise
    assert "participation ratio under 2.2, the effective rank above its limit" in verdict.reason


def test_one_direction_under_a_larger_noise_floor_is_dimensional_by_its_participation() -> None:
    """Isotropic noise of 5% of the variance keeps RankMe's count above half of epoch 0's, so
    only the participation ratio's own fall tells: tenfold, and under the limit."""
    history = _one_direction_under_noise(0.01)
    z0, z1 = history[0].projector, history[1].projector
    assert z1.effective_rank > 0.5 * z0.effective_rank  # RankMe alone sees no fall
    assert run_verdict(history).kind == "dimensional_collapse"


def test_a_narrow_z_on_two_of_its_eight_directions_is_not_collapsed() -> None:
    """Healthy loops with z of width 8 go from a participation ratio of 4-5 to about 2,
    RankMe 4-5 of 8 (bench/external_loops.py --z-dim 8): a fall, but not the tenfold one of
    a collapse under a noise floor."""
    generator = torch.Generator().manual_seed(1)
    scales = torch.tensor([4, 1.5, 1, 0.8, 0.6, 0.5, 0.4, 0.3])
    narrow = torch.randn(N_PROBE, 8, generator=generator) * scales + 2.0
    history = [_record(0, _gaussian(8, seed=0), seed=0), _record(1, narrow, seed=1)]
    assert history[1].projector.participation_ratio is not None
    assert history[1].projector.participation_ratio < THRESHOLDS.dimensional_participation
    assert run_verdict(history).kind == "healthy"


def test_an_epoch_0_already_on_few_directions_is_judged_by_the_limit_alone() -> None:
    """A run logged from a trained checkpoint on, already on one direction: nothing falls
    from epoch 0, yet it is not healthy; it is once it spreads out."""
    d = 128
    generator = torch.Generator().manual_seed(3)
    direction = torch.nn.functional.normalize(torch.randn(1, d, generator=generator), dim=1)

    def line(seed: int) -> torch.Tensor:
        feature = torch.randn(N_PROBE, 1, generator=torch.Generator().manual_seed(seed))
        return feature * direction + 0.01 * _gaussian(d, seed=seed + 50)

    stuck = [_record(epoch, line(epoch), seed=epoch) for epoch in range(3)]
    verdict = run_verdict(stuck)
    assert verdict.kind == "dimensional_collapse" and verdict.onset_epoch == 1
    assert any("epoch 0 already spreads its variance" in f for f in verdict.findings)
    spread_out = [*stuck, _record(3, _gaussian(d, seed=3), seed=3)]
    recovered = run_verdict(spread_out)
    assert recovered.kind == "healthy"
    assert any(
        "dimensional collapse at epochs 1-2, healthy again since epoch 3" in f
        for f in recovered.findings
    )


def test_a_common_offset_that_dominates_is_said_beside_the_collapse() -> None:
    """An isotropic cloud pushed far from the origin: its directions collapse, its centred
    spread is intact; a cloud shrunk to a point gets no such finding."""
    d = 64
    offset = 20.0 * torch.nn.functional.normalize(torch.ones(1, d), dim=1) * math.sqrt(d)
    history = [_record(0, _gaussian(d, seed=0), seed=0), _record(1, _gaussian(d, 1) + offset, 1)]
    verdict = run_verdict(history)
    assert verdict.kind == "complete_collapse"
    assert any("a common offset dominates" in f for f in verdict.findings)
    point = [_record(0, _gaussian(d, seed=0), seed=0), _record(1, 0.01 * _gaussian(d, 1) + 3, 1)]
    collapsed = run_verdict(point)
    assert collapsed.kind == "complete_collapse"
    assert not any("common offset" in f for f in collapsed.findings)


def test_the_directions_do_not_depend_on_the_embeddings_magnitude() -> None:
    """The same healthy embedding at 1e-20 or 1e20 (float32 squares overflow above about
    1e19; F.normalize leaves rows under 1e-12 unscaled) reads as it does at 1."""
    base = _gaussian(64, seed=0)
    for magnitude in (1e-20, 1.0, 1e20):
        metrics = embedding_diagnostics(base * magnitude, None, None, None, None, None, None)
        assert metrics.spread == pytest.approx(
            embedding_diagnostics(base, None, None, None, None, None, None).spread, rel=1e-4
        ), magnitude


# -- findings ----------------------------------------------------------------------------------


def _diagnostics(z: torch.Tensor, seed: int, **extra: object) -> EmbeddingMetrics:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(z.shape[0]) % NUM_CLASSES
    view1 = z + 0.05 * z.std() * torch.randn(z.shape, generator=generator)
    view2 = z + 0.05 * z.std() * torch.randn(z.shape, generator=generator)
    bank_labels = extra.pop("bank_labels", labels)
    return embedding_diagnostics(z, view1, view2, labels, z, bank_labels, NUM_CLASSES, **extra)


def _split_record(
    epoch: int, projector: EmbeddingMetrics, backbone: EmbeddingMetrics
) -> EpochRecord:
    return EpochRecord(epoch=epoch, projector=projector, backbone=backbone)


def _labelled_clusters(d: int, seed: int) -> torch.Tensor:
    """Probe embeddings that carry their labels (class centres + noise): kNN near 1."""
    centres = 4.0 * torch.randn(NUM_CLASSES, d, generator=torch.Generator().manual_seed(3))
    return centres[torch.arange(N_PROBE) % NUM_CLASSES] + _gaussian(d, seed)


def test_projector_collapse_with_a_healthy_backbone_is_a_finding() -> None:
    healthy = _diagnostics(_gaussian(128, seed=0), seed=0)
    history = [
        _split_record(0, healthy, healthy),
        _split_record(1, _diagnostics(_to_constant(128, 0.001, seed=1), 1), healthy),
    ]
    verdict = run_verdict(history)
    assert verdict.kind == "complete_collapse"
    confined = [f for f in verdict.findings if "confined to z" in f]
    assert len(confined) == 1
    assert "spread 0.00" in confined[0]  # the numbers are cited


def test_backbone_collapse_under_a_healthy_projector_is_a_finding() -> None:
    healthy = _diagnostics(_gaussian(128, seed=0), seed=0)
    collapsed = _diagnostics(_subspace_mix(128, 2, 0.0, seed=2), seed=2)
    history = [_split_record(0, healthy, healthy), _split_record(1, healthy, collapsed)]
    verdict = run_verdict(history)
    assert verdict.kind == "healthy"
    assert any("backbone h is in dimensional collapse" in f for f in verdict.findings)
    both = [_split_record(0, healthy, healthy), _split_record(1, collapsed, collapsed)]
    assert any("has collapsed too" in f for f in run_verdict(both).findings)


def test_backbone_knn_below_its_epoch_0_value_is_a_finding() -> None:
    z = _labelled_clusters(64, seed=0)
    good = _diagnostics(z, seed=0)
    shuffled = torch.randperm(N_PROBE, generator=torch.Generator().manual_seed(1))
    bad_labels = (torch.arange(N_PROBE) % NUM_CLASSES)[shuffled]
    worse = _diagnostics(z, seed=1, bank_labels=bad_labels)
    assert worse.knn_top1 < good.knn_top1 - 0.5
    verdict = run_verdict([_split_record(0, good, good), _split_record(1, good, worse)])
    knn = [f for f in verdict.findings if f.startswith("backbone kNN")]
    assert len(knn) == 1
    assert f"{worse.knn_top1:.2f}" in knn[0] and f"{good.knn_top1:.2f}" in knn[0]
    # the same kNN as at epoch 0 says nothing
    same = run_verdict([_split_record(0, good, good), _split_record(1, good, good)])
    assert not any(f.startswith("backbone kNN") for f in same.findings)


def test_a_healthy_run_that_lost_half_its_spread_gets_a_finding() -> None:
    """Above the complete-collapse limit but under half of epoch 0's spread: still healthy,
    and the verdict says how far the spread fell; a spread kept says nothing."""
    start = _record(0, _gaussian(128, seed=0), seed=0)
    halved = _record(1, _to_constant(128, 0.4, seed=1), seed=1)
    assert 0.3 < halved.projector.spread < 0.5 * start.projector.spread
    verdict = epoch_verdict([start, halved])
    assert verdict.kind == "healthy"
    fallen = [f for f in verdict.findings if f.startswith("the spread (")]
    assert len(fallen) == 1
    assert (
        f"{start.projector.spread:.2f}" in fallen[0]
        and f"{halved.projector.spread:.2f}" in fallen[0]
    )
    kept = epoch_verdict([start, _record(1, _gaussian(128, seed=1), seed=1)])
    assert not any(f.startswith("the spread (") for f in kept.findings)


def test_a_backbone_whose_knn_fell_is_not_called_the_whole_story() -> None:
    """z collapsed, h kept its geometry but lost its labels: the head is not the only place
    the collapse shows, so the verdict does not say it is confined there."""
    z = _labelled_clusters(64, seed=0)
    good = _diagnostics(z, seed=0)
    shuffled = torch.randperm(N_PROBE, generator=torch.Generator().manual_seed(1))
    worse = _diagnostics(z, seed=1, bank_labels=(torch.arange(N_PROBE) % NUM_CLASSES)[shuffled])
    collapsed = _diagnostics(_to_constant(64, 0.001, seed=1), 1)
    verdict = run_verdict([_split_record(0, good, good), _split_record(1, collapsed, worse)])
    assert verdict.kind == "complete_collapse"
    assert not any("confined to z" in f for f in verdict.findings)
    held = [f for f in verdict.findings if "backbone h is healthy" in f]
    assert len(held) == 1 and "its kNN fell" in held[0]


def test_partial_prototype_collapse_is_a_finding_even_when_healthy() -> None:
    z = _gaussian(128, seed=0)
    k = 30
    prototypes = torch.randn(k, 128, generator=torch.Generator().manual_seed(4))
    uniform = torch.full((N_PROBE, k), 1.0 / k)
    before = _diagnostics(z, 0, cluster_probabilities=uniform, prototypes=prototypes)
    # 30 prototypes that are noisy copies of 3, and samples sent to 3 clusters
    copies = torch.cat([prototypes[:3]] * 10) + 0.01 * torch.randn(k, 128)
    few = torch.nn.functional.one_hot(torch.arange(N_PROBE) % 3, k).float()
    after = _diagnostics(z, 1, cluster_probabilities=few, prototypes=copies)
    healthy = _diagnostics(z, seed=2)
    verdict = run_verdict([_split_record(0, before, healthy), _split_record(1, after, healthy)])
    assert verdict.kind == "healthy"
    assert any("only 3 of 30 prototypes are distinct" in f for f in verdict.findings)
    assert any("effective 3.0 of 30 clusters" in f for f in verdict.findings)
    fine = run_verdict([_split_record(0, before, healthy), _split_record(1, before, healthy)])
    assert fine.findings == []
    # prototypes as crowded as the samples of a low-dimensional embedding are no collapse
    flat = z[:, :2] @ torch.randn(2, 128, generator=torch.Generator().manual_seed(5))
    centroids = flat[torch.randperm(len(flat), generator=torch.Generator().manual_seed(6))[:k]]
    crowded = _diagnostics(flat, 1, cluster_probabilities=uniform, prototypes=centroids)
    assert crowded.distinct_prototypes < 0.5 * k  # what the old rule called a collapse
    low = run_verdict([_split_record(0, before, healthy), _split_record(1, crowded, healthy)])
    assert not any("prototypes are distinct" in f for f in low.findings), low.findings


def test_embedding_shrinking_to_the_origin_is_complete_collapse() -> None:
    """LeJEPA without SIGReg: every row shrinks towards 0 while its direction still varies,
    so the scale-free measures stay healthy and only the raw scale sees it."""
    weights = [1.0, 0.6, 0.35, 0.1, 0.05]
    history = [_record(e, w * _gaussian(128, seed=e), seed=e) for e, w in enumerate(weights)]
    assert all(record.projector.spread > 0.9 for record in history)
    verdict = run_verdict(history)
    assert verdict.kind == "complete_collapse"
    assert verdict.onset_epoch == 3
    assert "shrank towards a single point" in verdict.reason
    assert "0.05 of epoch 0" in verdict.reason and "its size" in verdict.reason
    # before the onset the trend already warned
    early = epoch_verdict(history[:3])
    assert early.kind == "healthy"
    assert (
        early.trend.warning is not None
        and "shrinking towards a single point" in early.trend.warning
    )
    # a cloud that grows, or shrinks less than the threshold, stays healthy
    for factor in (3.0, 0.6):
        steady = [_record(e, factor**e * _gaussian(128, seed=e), seed=e) for e in range(3)]
        assert run_verdict(steady).kind == "healthy"
    # a guard read from the configuration is not named for a shrink its directions survive:
    # its collapses fold the directions; configured as plain SGD, weight decay still can be
    for setting in ({"predictor": False}, {"stop_gradient": False}, {"negatives": False}):
        cause = run_verdict(history, configuration=setting).cause
        assert cause is not None and cause.guard == "undetermined", (setting, cause)
    folded = [_record(e, _to_constant(128, w, seed=e), seed=e) for e, w in enumerate(weights)]
    cause = run_verdict(folded, configuration={"predictor": False}).cause
    assert cause is not None and cause.guard == "predictor"  # spread collapse: confirmed
    # records written before the scale was measured are judged as before
    old = [
        r.model_copy(update={"projector": r.projector.model_copy(update={"scale": None})})
        for r in history
    ]
    assert run_verdict(old).kind == "healthy"


def test_variance_spreading_out_of_one_direction_is_not_shrinking() -> None:
    """An untrained network's output is anisotropic; training spreads it over many
    directions, which lowers the top direction's std while the cloud keeps its size. So does
    one outlier row at epoch 0. Neither is the cloud shrinking to a point."""
    d = 256
    anisotropic = _gaussian(d, seed=0)
    anisotropic[:, 0] *= math.sqrt(0.15 * d / 0.85)  # the top direction: 15% of the variance
    anisotropic *= math.sqrt(d / anisotropic.pow(2).sum(dim=1).mean())  # size as isotropic
    history = [_record(0, anisotropic, seed=0)]
    history += [_record(e, _gaussian(d, seed=e), seed=e) for e in range(1, 4)]
    assert history[-1].projector.scale < 0.3 * history[0].projector.scale  # top direction
    verdict = run_verdict(history)
    assert verdict.kind == "healthy", verdict.reason
    assert verdict.trend.warning is None

    outlier = _gaussian(128, seed=0)
    outlier[0] *= 20.0  # one probe row far out at epoch 0
    history = [_record(0, outlier, seed=0)]
    history += [_record(e, _gaussian(128, seed=e), seed=e) for e in range(1, 4)]
    assert run_verdict(history).kind == "healthy"


def test_an_epoch_0_of_zero_rows_does_not_hide_a_later_collapse() -> None:
    """A zero-initialised last layer gives z = 0 at epoch 0: spread 0, random-pair cosine 0
    (zero rows stay zero when normalised), so limits taken from it would all be 0."""
    zero = _record(0, torch.zeros(N_PROBE, 64), seed=0)
    assert zero.projector.spread < THRESHOLDS.degenerate_baseline_spread
    constant = [_record(e, _to_constant(64, 1e-4, seed=e), seed=e) for e in (1, 2)]
    verdict = run_verdict([zero, *constant])
    assert verdict.kind == "complete_collapse" and verdict.onset_epoch == 1
    assert any("epoch 0 already looks completely collapsed" in f for f in verdict.findings)
    healthy = [_record(e, _gaussian(64, seed=e), seed=e) for e in (1, 2)]
    assert run_verdict([zero, *healthy]).kind == "healthy"


def test_an_epoch_0_close_to_collapsed_still_lets_a_collapse_be_seen() -> None:
    """Random pairs at cosine 0.93 at epoch 0 (not yet the collapsed-baseline rule's 0.95)
    and 0.97 later: complete collapse by the slow-collapse rule, although half of epoch 0's
    spread (0.12) was never reached."""
    near = _record(0, _to_constant(64, 0.25, seed=0), seed=0)
    assert 0.90 < near.projector.cos_rand < THRESHOLDS.collapsed_baseline_cos_rand
    tighter = [_record(e, _to_constant(64, 0.14, seed=e), seed=e) for e in (1, 2)]
    spread = tighter[-1].projector.spread
    assert THRESHOLDS.complete_spread_of_baseline * near.projector.spread < spread
    assert spread < THRESHOLDS.slow_collapse_of_baseline * near.projector.spread
    assert run_verdict([near, *tighter]).kind == "complete_collapse"


def _stuck_low(seed: int) -> torch.Tensor:
    """I-JEPA's untrained pooled ViT features as measured on digits: random pairs at cosine
    0.98 on the probe (spread 0.15), its views' at 0.58 (cosine_stats pairs view 1 with
    view 2: augmented views differ), never moving in 3 epochs."""
    return _to_constant(64, 0.158, seed=seed)


def test_a_spread_low_from_epoch_0_is_no_collapse_until_it_falls() -> None:
    """A spread under 0.2 at epoch 0 that is not the collapsed-baseline rule's (random pairs
    of views under 0.95) is judged by its fall: unchanged, or crossing 0.15 by a hair, it
    stays healthy (an absolute floor of 0.15 called such an I-JEPA run complete collapse
    from the epoch it crossed); falling under three quarters of it is complete collapse."""
    baseline = _record(0, _stuck_low(seed=0), seed=0)
    assert 0.15 < baseline.projector.spread < 0.16
    views_apart = baseline.projector.model_copy(update={"cos_rand": 0.58})
    assert not THRESHOLDS.baseline_collapsed(views_apart)
    start = baseline.model_copy(update={"projector": views_apart, "backbone": views_apart})
    stuck = [_record(e, _to_constant(64, 0.155, seed=e), seed=e) for e in (1, 2, 3)]
    assert all(record.projector.spread < 0.15 for record in stuck)
    assert run_verdict([start, *stuck]).kind == "healthy"
    falling = [_record(e, _to_constant(64, 0.09, seed=e), seed=e) for e in (1, 2)]
    assert falling[-1].projector.spread < 0.75 * baseline.projector.spread
    assert run_verdict([start, *falling]).kind == "complete_collapse"


def test_a_slow_collapse_from_a_low_epoch_0_spread_is_complete_collapse() -> None:
    """External loops whose untrained BatchNorm network in eval mode gave an epoch-0 spread
    of 0.28-0.39 collapsed slowly to random pairs at 0.96-0.98 (spread 0.16-0.20), over
    half of such a baseline: below 0.2 after falling under three quarters
    of epoch 0's spread is complete collapse. A spread held at epoch 0's level is not, nor
    is I-JEPA's pooled target drifting from 0.21 to 0.17 (contract: Thresholds.spread_limit)."""
    low = _record(0, _to_constant(64, 0.34, seed=0), seed=0)
    assert 0.3 < low.projector.spread < 0.4
    assert low.projector.cos_rand < THRESHOLDS.collapsed_baseline_cos_rand
    slow = [_record(e, _to_constant(64, w, seed=e), seed=e) for e, w in ((1, 0.26), (2, 0.18))]
    assert THRESHOLDS.complete_spread_of_baseline * low.projector.spread < slow[-1].projector.spread
    assert slow[-1].projector.spread < 0.2
    verdict = run_verdict([low, *slow])
    assert verdict.kind == "complete_collapse" and verdict.onset_epoch == 2
    held = [_record(e, _to_constant(64, 0.34, seed=e), seed=e) for e in (1, 2)]
    assert run_verdict([low, *held]).kind == "healthy"
    pooled = _record(0, _to_constant(64, 0.22, seed=0), seed=0)  # spread 0.21
    drifting = [_record(e, _to_constant(64, 0.18, seed=e), seed=e) for e in (1, 2)]
    assert drifting[-1].projector.spread > 0.75 * pooled.projector.spread
    assert run_verdict([pooled, *drifting]).kind == "healthy"


def test_a_collapsed_epoch_0_is_a_finding_and_the_absolute_limits_judge() -> None:
    """A loop that measures its random network in eval mode with BatchNorm's initial
    statistics reports one vector for every image at epoch 0: nothing later can fall below
    it, so the verdict says so beside its kind, and judges the trained epochs by the absolute
    limits alone: a run that stays collapsed is complete collapse from its first trained
    epoch, one that spreads out is healthy."""
    one_point = _to_constant(64, 0.001, seed=0)
    later = [_to_constant(64, 0.02, seed=epoch) for epoch in (1, 2, 3)]
    history = [_record(0, one_point, seed=0)]
    history += [_record(epoch, z, seed=epoch) for epoch, z in enumerate(later, start=1)]
    assert history[0].projector.cos_rand > THRESHOLDS.collapsed_baseline_cos_rand
    assert all(record.projector.spread < THRESHOLDS.complete_spread for record in history)
    # epoch 0 alone: nothing trained yet, so nothing judged
    assert epoch_verdict(history[:1]).kind == "healthy"
    verdict = epoch_verdict(history)
    assert verdict.kind == "complete_collapse"
    assert verdict.onset_epoch == 1
    assert "epoch 0 was already collapsed" in verdict.reason
    assert "fell" not in verdict.reason  # it rose a little, still collapsed
    assert any("epoch 0 already looks completely collapsed" in f for f in verdict.findings)
    spreading = history[:1] + [
        _record(epoch, _gaussian(64, seed=epoch), seed=epoch) for epoch in (1, 2)
    ]
    recovered = epoch_verdict(spreading)
    assert recovered.kind == "healthy"
    assert any("epoch 0 already" in f for f in recovered.findings)
    healthy = [_record(epoch, _gaussian(64, seed=epoch), seed=epoch) for epoch in range(3)]
    assert not any("epoch 0 already" in f for f in epoch_verdict(healthy).findings)
    assert "BatchNorm" in verdict.reason and any("update_bn" in f for f in verdict.findings)


def test_a_collapsed_baseline_logged_after_training_began_is_not_blamed_on_batchnorm() -> None:
    """A run first logged at epoch 5 (resumed from a checkpoint) and already collapsed there:
    its baseline is a trained network, so the texts say the collapse may predate the first
    measurement and ask for epoch 0, not for BatchNorm's statistics."""
    history = [_record(epoch, _to_constant(64, 0.001, seed=epoch), seed=epoch) for epoch in (5, 6)]
    verdict = epoch_verdict(history)
    assert verdict.kind == "complete_collapse" and verdict.onset_epoch == 6
    texts = [verdict.reason, *verdict.findings]
    assert not any("BatchNorm" in text for text in texts), texts
    assert "first logged at epoch 5, after training had begun" in verdict.reason
    [finding] = [f for f in verdict.findings if "epoch 5 already looks completely" in f]
    assert "log epoch 0 (before the first training step)" in finding


def test_a_run_logged_from_a_later_epoch_names_that_epoch_as_its_baseline() -> None:
    """A synced part of a preempted job, or a loop logged from a checkpoint on, starts at
    epoch 4: the texts compare with epoch 4, not with an "epoch 0" the run never had."""
    history = [_record(epoch, _gaussian(128, seed=epoch), seed=epoch) for epoch in (4, 5, 6)]
    verdict = epoch_verdict(history)
    assert verdict.kind == "healthy"
    assert "(epoch 4: " in verdict.reason and "epoch 0" not in verdict.reason
    shrinking = [*history, _record(7, _to_constant(128, 0.4, seed=7), seed=7)]
    assert any(" at epoch 4 to " in f for f in epoch_verdict(shrinking).findings)
