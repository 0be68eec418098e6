"""Verdicts on synthetic run histories built from the diagnostics of constructed embeddings."""

from __future__ import annotations

import torch

from workers.engine.metrics import embedding_diagnostics
from workers.engine.verdict import THRESHOLDS, epoch_verdict, run_verdict, spread

N_PROBE = 1024
NUM_CLASSES = 10


def _record(epoch: int, z: torch.Tensor, seed: int) -> dict:
    """An epoch record whose projector and backbone are both the embedding z (N, d); the
    two views are z plus a little noise, the kNN bank is z itself."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(z.shape[0]) % NUM_CLASSES
    view1 = z + 0.05 * z.std() * torch.randn(z.shape, generator=generator)
    view2 = z + 0.05 * z.std() * torch.randn(z.shape, generator=generator)
    diagnostics = embedding_diagnostics(z, view1, view2, labels, z, labels, NUM_CLASSES)
    loss = None if epoch == 0 else 1.0 / (epoch + 1)
    return {"epoch": epoch, "loss": loss, "projector": diagnostics, "backbone": diagnostics}


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
    assert verdict["kind"] == "healthy"
    assert verdict["onset_epoch"] is None
    assert verdict["trend"]["warning"] is None
    assert set(verdict) == {"kind", "onset_epoch", "reason", "trend"}
    assert set(verdict["trend"]) == {
        "effective_rank_change_per_epoch",
        "std_change_per_epoch",
        "warning",
    }
    assert abs(verdict["trend"]["effective_rank_change_per_epoch"]) < 0.05


def test_collapse_to_a_constant_is_complete_with_its_onset() -> None:
    weights = [1.0, 0.7, 0.45, 0.02, 0.001, 0.0001]
    history = [_record(e, _to_constant(128, w, seed=e), seed=e) for e, w in enumerate(weights)]
    verdict = run_verdict(history)
    assert verdict["kind"] == "complete_collapse"
    assert verdict["onset_epoch"] == 3
    assert "std_l2·√d fell from" in verdict["reason"]
    assert "collapsed since epoch 3" in verdict["reason"]
    # before the collapse the trend already warned
    early = epoch_verdict(history[:3])
    assert early["kind"] == "healthy"
    assert early["trend"]["std_change_per_epoch"] < -0.15
    assert early["trend"]["warning"] is not None


def test_collapse_to_three_dimensions_is_dimensional_for_several_d() -> None:
    for d in (128, 512):
        weights = [1.0, 0.5, 0.2, 0.0001, 0.0, 0.0]
        history = [
            _record(e, _subspace_mix(d, 3, w, seed=e), seed=e) for e, w in enumerate(weights)
        ]
        verdict = run_verdict(history)
        assert verdict["kind"] == "dimensional_collapse", d
        assert verdict["onset_epoch"] == 3, d
        assert f"of d={d}" in verdict["reason"]
        # the points still spread out: this is not complete collapse
        assert spread(history[-1]["projector"]) > 0.9


def test_noisy_healthy_run_stays_healthy() -> None:
    generator = torch.Generator().manual_seed(11)
    history = []
    for epoch in range(8):
        # anisotropic but full-rank, with a random per-epoch rescaling of each dimension
        scales = torch.exp(0.5 * torch.randn(64, generator=generator))
        z = _gaussian(64, seed=epoch) * scales + 0.3 * torch.randn(1, 64, generator=generator)
        history.append(_record(epoch, z, seed=100 + epoch))
        verdict = epoch_verdict(history)
        assert verdict["kind"] == "healthy", epoch
    assert verdict["trend"]["warning"] is None


def test_onset_is_the_start_of_the_final_streak() -> None:
    sequence = [1.0, 0.0, 1.0, 1.0, 0.0, 0.0]  # collapses, recovers, collapses again
    history = [_record(e, _subspace_mix(128, 3, w, seed=e), seed=e) for e, w in enumerate(sequence)]
    assert run_verdict(history)["onset_epoch"] == 4
    assert run_verdict(history[:4])["kind"] == "healthy"


def test_baseline_only_history_and_thresholds_in_one_place() -> None:
    verdict = epoch_verdict([_record(0, _gaussian(32, seed=0), seed=0)])
    assert verdict["kind"] == "healthy"
    assert verdict["trend"]["effective_rank_change_per_epoch"] == 0.0
    assert 0 < THRESHOLDS.complete_spread < 1


def test_one_dominant_direction_under_a_noise_floor_is_dimensional() -> None:
    # BT-without-off-diagonal-like: every dimension a copy of one feature, plus a small noise
    # floor over all 512 dimensions. RankMe counts the noise (hundreds), the participation
    # ratio of the spectrum does not (about 1.4).
    d = 512
    generator = torch.Generator().manual_seed(5)
    feature = torch.randn(N_PROBE, 1, generator=generator)
    direction = torch.nn.functional.normalize(torch.randn(1, d, generator=generator), dim=1)
    z = feature * direction + 0.005 * _gaussian(d, seed=6)
    history = [_record(0, _gaussian(d, seed=0), seed=0), _record(1, z, seed=1)]
    verdict = run_verdict(history)
    assert history[1]["projector"]["effective_rank"] > 50
    assert verdict["kind"] == "dimensional_collapse"
    assert "directions" in verdict["reason"]
