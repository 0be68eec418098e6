"""Every loss and part against an independent, straightforward formula, plus known cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score
from torch import nn

from workers.engine.methods.barlow_twins import barlow_twins_loss
from workers.engine.methods.byol import momentum_at, regression_loss
from workers.engine.methods.deepcluster import pseudo_label_loss
from workers.engine.methods.simclr import nt_xent, positive_alignment
from workers.engine.methods.simsiam import negative_cosine
from workers.engine.methods.swav import swapped_prediction_loss
from workers.engine.methods.vicreg import covariance_term, variance_term, vicreg_loss
from workers.engine.parts import (
    cosine_momentum,
    ema_update,
    kmeans,
    mlp,
    recompute_batchnorm_statistics,
    sinkhorn_knopp,
)


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=1, keepdims=True)


# -- SimCLR ---------------------------------------------------------------------------------
def test_nt_xent_matches_loop_formula() -> None:
    z1, z2 = _rand(5, 4, seed=1), _rand(5, 4, seed=2)
    t = 0.3
    z = _unit(torch.cat([z1, z2]).numpy())
    n = 5
    losses = []
    for i in range(2 * n):
        positive = (i + n) % (2 * n)
        denominator = sum(math.exp(z[i] @ z[k] / t) for k in range(2 * n) if k != i)
        losses.append(-math.log(math.exp(z[i] @ z[positive] / t) / denominator))
    assert nt_xent(z1, z2, t).item() == pytest.approx(np.mean(losses), rel=1e-9)


def test_nt_xent_identical_orthogonal_views_has_closed_form() -> None:
    # identical views, images orthonormal: positive cosine 1, the 2N-2 negatives cosine 0
    n, t = 4, 0.5
    z = torch.eye(n, 6, dtype=torch.float64)
    expected = math.log(1 + (2 * n - 2) * math.exp(-1 / t))
    assert nt_xent(z, z.clone(), t).item() == pytest.approx(expected, rel=1e-9)


def test_positive_alignment_is_minus_mean_cosine_over_temperature() -> None:
    z1, z2 = _rand(6, 3, seed=3), _rand(6, 3, seed=4)
    cos = (_unit(z1.numpy()) * _unit(z2.numpy())).sum(1)
    assert positive_alignment(z1, z2, 0.2).item() == pytest.approx(-cos.mean() / 0.2)
    assert positive_alignment(z1, z1, 0.2).item() == pytest.approx(-5.0)


# -- BYOL / SimSiam -------------------------------------------------------------------------
def test_byol_regression_loss_is_normalised_mse() -> None:
    p, z = _rand(7, 5, seed=5), _rand(7, 5, seed=6)
    expected = ((_unit(p.numpy()) - _unit(z.numpy())) ** 2).sum(1).mean()
    assert regression_loss(p, z).item() == pytest.approx(expected, rel=1e-9)
    assert regression_loss(p, 3 * p).item() == pytest.approx(0.0, abs=1e-12)
    assert regression_loss(p, -p).item() == pytest.approx(4.0)


def test_simsiam_negative_cosine() -> None:
    p, z = _rand(7, 5, seed=7), _rand(7, 5, seed=8)
    expected = -np.mean([(_unit(p.numpy())[i] * _unit(z.numpy())[i]).sum() for i in range(7)])
    assert negative_cosine(p, z).item() == pytest.approx(expected, rel=1e-9)
    assert negative_cosine(p, 2 * p).item() == pytest.approx(-1.0)


def test_cosine_momentum_schedule_endpoints() -> None:
    assert cosine_momentum(0.99, 0, 100) == pytest.approx(0.99)
    assert cosine_momentum(0.99, 50, 100) == pytest.approx(0.995)
    assert cosine_momentum(0.99, 100, 100) == pytest.approx(1.0)
    assert cosine_momentum(0.9, 25, 100) == pytest.approx(1 - 0.1 * (math.cos(math.pi / 4) + 1) / 2)
    values = [cosine_momentum(0.9, k, 10) for k in range(11)]
    assert values == sorted(values)


def test_byol_ablation_endpoints_stay_constant() -> None:
    # tau = 0 means no EMA at every step; the cosine schedule would otherwise raise it to 1
    assert [momentum_at(0.0, k, 10) for k in (0, 5, 10)] == [0.0, 0.0, 0.0]
    assert [momentum_at(1.0, k, 10) for k in (0, 5, 10)] == [1.0, 1.0, 1.0]
    assert momentum_at(0.99, 10, 10) == pytest.approx(1.0)


def test_ema_update_arithmetic() -> None:
    online, target = nn.BatchNorm1d(3), nn.BatchNorm1d(3)
    with torch.no_grad():
        online.weight.copy_(torch.tensor([1.0, 2.0, 3.0]))
        target.weight.copy_(torch.tensor([10.0, 20.0, 30.0]))
        online.running_mean.copy_(torch.tensor([7.0, 8.0, 9.0]))
    ema_update(target, online, 0.9)
    assert torch.allclose(target.weight, torch.tensor([9.1, 18.2, 27.3]))
    assert torch.equal(target.running_mean, online.running_mean)  # buffers copied
    ema_update(target, online, 1.0)
    assert torch.allclose(target.weight, torch.tensor([9.1, 18.2, 27.3]))
    ema_update(target, online, 0.0)
    assert torch.equal(target.weight, online.weight)


# -- SwAV -----------------------------------------------------------------------------------
def _sinkhorn_numpy(scores: np.ndarray, eps: float, iters: int) -> np.ndarray:
    q = np.exp(scores / eps).T
    q /= q.sum()
    k, b = q.shape
    for _ in range(iters):
        q /= q.sum(axis=1, keepdims=True) * k
        q /= q.sum(axis=0, keepdims=True) * b
    return (q * b).T


def test_sinkhorn_matches_numpy_and_has_both_marginals() -> None:
    scores = torch.rand(16, 4, generator=torch.Generator().manual_seed(9)) * 2 - 1
    codes = sinkhorn_knopp(scores, epsilon=0.5, iterations=3)
    expected = _sinkhorn_numpy(scores.double().numpy(), 0.5, 3)
    assert np.allclose(codes.numpy(), expected, atol=1e-5)
    # each sample's code is a distribution (exact after the last sample normalisation)
    assert torch.allclose(codes.sum(dim=1), torch.ones(16), atol=1e-5)
    # each prototype receives B / K of the mass once converged
    converged = sinkhorn_knopp(scores, epsilon=0.5, iterations=200)
    assert torch.allclose(converged.sum(dim=0), torch.full((4,), 4.0), atol=1e-3)
    assert torch.allclose(converged.sum(dim=1), torch.ones(16), atol=1e-5)


def test_sinkhorn_spreads_samples_that_all_prefer_one_prototype() -> None:
    scores = torch.zeros(8, 4)
    scores[:, 0] = 1.0  # everyone's favourite
    scores += 0.01 * torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    softmax_usage = torch.softmax(scores / 0.05, dim=1).sum(dim=0)
    codes_usage = sinkhorn_knopp(scores, epsilon=0.05, iterations=3).sum(dim=0)
    assert softmax_usage[0] > 7.9
    assert codes_usage.max() < 2.5  # close to 8 / 4 = 2 each


def test_swapped_prediction_matches_loop() -> None:
    scores = [_rand(3, 4, seed=s) for s in (10, 11, 12)]  # two global views + one local
    codes = [torch.softmax(_rand(3, 4, seed=s), dim=1) for s in (13, 14)]
    t = 0.1
    total, pairs = 0.0, 0
    for g in range(2):
        for v in range(3):
            if v == g:
                continue
            for b in range(3):
                logits = scores[v][b].numpy() / t
                log_p = logits - np.log(np.exp(logits).sum())
                total -= float((codes[g][b].numpy() * log_p).sum()) / 3
            pairs += 1
    assert swapped_prediction_loss(scores, codes, t).item() == pytest.approx(total / pairs)


# -- DeepCluster ----------------------------------------------------------------------------
def test_pseudo_label_loss_matches_manual_cross_entropy() -> None:
    z = _rand(4, 3, seed=15)
    centroids = torch.from_numpy(_unit(_rand(5, 3, seed=16).numpy()))
    labels = torch.tensor([0, 4, 2, 2])
    logits = _unit(z.numpy()) @ centroids.numpy().T / 0.1
    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    expected = -np.mean([log_p[i, labels[i]] for i in range(4)])
    assert pseudo_label_loss(z, centroids, labels, 0.1).item() == pytest.approx(expected)


def _blobs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = torch.eye(4, 8) * 5
    labels = torch.arange(4).repeat_interleave(25)
    return centres[labels] + 0.1 * torch.randn(100, 8, generator=g), labels


def test_kmeans_recovers_well_separated_blobs() -> None:
    x, labels = _blobs()
    centroids, assignments = kmeans(x, 4, 20, torch.Generator().manual_seed(1), True)
    assert adjusted_rand_score(labels.numpy(), assignments.numpy()) == pytest.approx(1.0)
    assert torch.allclose(centroids.norm(dim=1), torch.ones(4))
    for cluster in range(4):  # each centroid points at its blob's centre direction
        members = x[assignments == cluster]
        mean_dir = members.mean(0) / members.mean(0).norm()
        assert torch.dot(mean_dir, centroids[cluster]) > 0.999


def test_kmeans_empty_cluster_reassignment_fires() -> None:
    x, _ = _blobs()
    # the last starting centroid points away from every sample: it attracts nobody
    init = torch.cat([torch.eye(4, 8)[:3], -torch.ones(1, 8)])
    init[0, 3] = 0.1
    g = torch.Generator().manual_seed(2)
    _, without = kmeans(x, 4, 5, g, reassign_empty=False, init=init)
    assert torch.bincount(without, minlength=4)[3] == 0  # stays dead
    _, with_fix = kmeans(x, 4, 5, torch.Generator().manual_seed(2), True, init=init)
    assert (torch.bincount(with_fix, minlength=4) > 0).all()


def test_kmeans_reassignment_splits_identical_points() -> None:
    x = torch.tensor([[1.0, 0.0]] * 10 + [[0.0, 1.0]] * 10)  # a collapsed embedding
    _, without = kmeans(x, 4, 3, torch.Generator().manual_seed(0), False)
    assert (torch.bincount(without, minlength=4) > 0).sum() <= 2
    _, with_fix = kmeans(x, 4, 3, torch.Generator().manual_seed(0), True)
    assert (torch.bincount(with_fix, minlength=4) > 0).all()


# -- Barlow Twins ---------------------------------------------------------------------------
def _barlow_numpy(z1: np.ndarray, z2: np.ndarray, lam: float) -> float:
    def standardize(z: np.ndarray) -> np.ndarray:
        return (z - z.mean(0)) / np.sqrt(z.var(0) + 1e-5)

    a, b = standardize(z1), standardize(z2)
    n, d = a.shape
    loss = 0.0
    for i in range(d):
        for j in range(d):
            c = sum(a[k, i] * b[k, j] for k in range(n)) / n
            loss += (1 - c) ** 2 if i == j else lam * c**2
    return loss


def test_barlow_twins_matches_loop_formula() -> None:
    z1, z2 = _rand(6, 3, seed=17), _rand(6, 3, seed=18)
    loss, _, _ = barlow_twins_loss(z1, z2, 0.3)
    assert loss.item() == pytest.approx(_barlow_numpy(z1.numpy(), z2.numpy(), 0.3), rel=1e-6)


def test_barlow_twins_perfectly_correlated_views_have_zero_invariance_term() -> None:
    z1 = _rand(64, 4, seed=19)
    z2 = 3 * z1 + 2  # same standardised features
    _, on_diag, off_diag = barlow_twins_loss(z1, z2, 5e-3)
    assert on_diag.item() == pytest.approx(0.0, abs=1e-6)
    assert off_diag.item() > 0  # random features still correlate a little
    # whitened (decorrelated) features: both terms vanish
    white = torch.linalg.qr(_rand(64, 4, seed=20) - _rand(64, 4, seed=20).mean(0))[0] * 8
    loss, _, _ = barlow_twins_loss(white, white, 5e-3)
    assert loss.item() == pytest.approx(0.0, abs=1e-4)


# -- VICReg ---------------------------------------------------------------------------------
def test_vicreg_terms_match_numpy() -> None:
    z1, z2 = _rand(10, 4, seed=21), _rand(10, 4, seed=22)
    a, b = z1.numpy(), z2.numpy()

    def variance(z: np.ndarray) -> float:
        return float(
            np.mean([max(0.0, 1 - math.sqrt(z[:, j].var(ddof=1) + 1e-4)) for j in range(4)])
        )

    def covariance(z: np.ndarray) -> float:
        c = np.cov(z, rowvar=False)
        return float(sum(c[i, j] ** 2 for i in range(4) for j in range(4) if i != j) / 4)

    assert variance_term(z1 * 0.3).item() == pytest.approx(variance(a * 0.3))
    assert covariance_term(z1).item() == pytest.approx(covariance(a))
    loss, terms = vicreg_loss(z1, z2, 25.0, 25.0, 1.0)
    invariance = float(((a - b) ** 2).mean())
    expected = 25 * invariance + 25 * (variance(a) + variance(b)) / 2
    expected += covariance(a) + covariance(b)
    assert loss.item() == pytest.approx(expected)
    assert terms["invariance"] == pytest.approx(invariance)


def test_vicreg_on_constant_embeddings() -> None:
    z = torch.ones(16, 8) * 0.7
    loss, terms = vicreg_loss(z, z.clone(), 25.0, 25.0, 1.0)
    hinge = 1 - math.sqrt(1e-4)  # the largest the variance hinge can be
    assert terms["variance"] == pytest.approx(hinge)
    assert terms["covariance"] == 0.0
    assert terms["invariance"] == 0.0
    assert loss.item() == pytest.approx(25 * hinge)
    # with the variance weight at 0 the collapsed embedding is a perfect minimum
    collapsed, _ = vicreg_loss(z, z.clone(), 25.0, 0.0, 1.0)
    assert collapsed.item() == 0.0


# -- heads ----------------------------------------------------------------------------------
def test_mlp_structure_and_shapes() -> None:
    head = mlp(6, 16, 4, 3)
    assert head(torch.randn(5, 6)).shape == (5, 4)
    kinds = [type(m).__name__ for m in head]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU"] * 2 + ["Linear"]
    assert head[-1].bias is not None and head[0].bias is None
    assert [type(m).__name__ for m in mlp(6, 16, 4, 1)] == ["Linear"]


def test_recompute_batchnorm_statistics_gives_exact_dataset_statistics() -> None:
    net = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)).eval()
    x = torch.randn(300, 3, generator=torch.Generator().manual_seed(0)) * 2 + 5
    with torch.no_grad():
        hidden = net[0](x)
    outputs = recompute_batchnorm_statistics(net, net, x, batch_size=100)
    bn = net[1]
    # the outputs are the training-mode ones: each batch normalised by its own statistics
    assert [len(out) for out in outputs] == [100, 100, 100]
    for out in outputs:
        assert torch.allclose(out.mean(0), torch.zeros(3), atol=1e-5)
    assert torch.allclose(bn.running_mean, hidden.mean(0), atol=1e-5)
    batch_vars = torch.stack([hidden[i : i + 100].var(0) for i in range(0, 300, 100)])
    assert torch.allclose(bn.running_var, batch_vars.mean(0), atol=1e-5)
    assert bn.momentum == 0.1 and not net.training  # restored
    assert torch.allclose(net(x).mean(0), torch.zeros(3), atol=0.1)  # eval output centred


def test_recompute_batchnorm_statistics_never_makes_a_one_sample_batch() -> None:
    net = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    outputs = recompute_batchnorm_statistics(net, net, torch.randn(257, 3), batch_size=256)
    assert sorted(len(out) for out in outputs) == [128, 129]
