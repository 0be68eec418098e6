"""Collapse diagnostics on constructed embeddings whose true values are known."""

from __future__ import annotations

import json
import math

import pytest
import torch

from workers.engine import metrics


def _gaussian(n: int, d: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def _random_subspace(n: int, k: int, d: int, seed: int = 0) -> torch.Tensor:
    """(n, d) isotropic Gaussian confined to a randomly oriented k-dimensional subspace."""
    generator = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(d, k, generator=generator))  # (d, k) orthonormal
    return torch.randn(n, k, generator=generator) @ basis.T


def _constant(n: int, d: int) -> torch.Tensor:
    return torch.ones(n, 1) * _gaussian(1, d, seed=3)


def test_constant_embedding_is_completely_collapsed() -> None:
    z = _constant(512, 64)
    assert metrics.std_l2(z) == pytest.approx(0.0, abs=1e-7)
    assert metrics.effective_rank(z) == pytest.approx(1.0, abs=1e-3)
    assert metrics.uniformity(z) == pytest.approx(0.0, abs=1e-6)
    cos_pos, cos_rand = metrics.cosine_stats(z, z)
    assert cos_pos == pytest.approx(1.0, abs=1e-6)
    assert cos_rand == pytest.approx(1.0, abs=1e-6)
    assert metrics.alignment(z, z) == pytest.approx(0.0, abs=1e-10)
    total_variance = sum(math.exp(v) for v in metrics.singular_spectrum(z))
    assert total_variance == pytest.approx(0.0, abs=1e-10)


def test_std_is_taken_over_samples_not_features() -> None:
    # every sample is the same vector whose features differ widely: no spread across samples
    z = torch.ones(256, 1) * torch.linspace(-5.0, 5.0, 32)
    assert metrics.std_l2(z) == pytest.approx(0.0, abs=1e-7)
    # the transpose situation: each sample is constant across features, samples differ
    # only in sign -> a large spread over samples
    signs = torch.where(torch.arange(256) % 2 == 0, 1.0, -1.0)
    z = signs[:, None] * torch.ones(256, 32)
    assert metrics.std_l2(z) == pytest.approx(1 / math.sqrt(32), rel=0.01)


@pytest.mark.parametrize("d", [16, 128, 512])
def test_isotropic_gaussian_is_healthy(d: int) -> None:
    z = _gaussian(4096, d)
    assert metrics.std_l2(z) == pytest.approx(1 / math.sqrt(d), rel=0.02)
    # RankMe of a Gaussian matrix is below d (Marchenko-Pastur spread) but close when N >> d
    assert metrics.effective_rank(z) > 0.9 * d
    assert metrics.effective_rank(z) <= d
    assert metrics.uniformity(z) < -3.0


@pytest.mark.parametrize(("k", "d"), [(1, 32), (3, 128), (8, 128), (10, 512), (32, 64)])
def test_subspace_rank_equals_its_dimension(k: int, d: int) -> None:
    z = _random_subspace(4096, k, d)
    assert metrics.effective_rank(z) == pytest.approx(k, rel=0.05)


def test_design_example_8_of_128_dims_keeps_std_but_loses_rank() -> None:
    # DESIGN.md: std_l2 alone misses dimensional collapse
    z = _random_subspace(2048, 8, 128)
    assert metrics.std_l2(z) == pytest.approx(0.086, abs=0.004)
    assert metrics.effective_rank(z) == pytest.approx(8.0, abs=0.2)


def test_spectrum_shows_the_subspace_dimension() -> None:
    spectrum = metrics.singular_spectrum(_random_subspace(2048, 8, 64))
    assert len(spectrum) == 64
    assert spectrum == sorted(spectrum, reverse=True)
    assert spectrum[7] - spectrum[8] > 20  # sharp drop after the 8th value (natural log)
    # exp(spectrum) sums to the total variance of the l2-normalised rows: 1 for zero mean
    assert sum(math.exp(v) for v in spectrum) == pytest.approx(1.0, rel=0.01)


def test_alignment_and_positive_cosine() -> None:
    z = _gaussian(1000, 64)
    assert metrics.alignment(z, z) == pytest.approx(0.0, abs=1e-10)
    assert metrics.alignment(z, -z) == pytest.approx(4.0, rel=1e-5)
    noisy = z + 0.1 * _gaussian(1000, 64, seed=1)
    cos_pos, cos_rand = metrics.cosine_stats(z, noisy)
    assert cos_pos > 0.98
    assert abs(cos_rand) < 0.02
    # alignment = 2 - 2 cos for unit vectors
    assert metrics.alignment(z, noisy) == pytest.approx(2 - 2 * cos_pos, rel=1e-4)


def test_random_pairs_never_pair_a_sample_with_itself() -> None:
    # orthogonal one-hot rows: any self-pair would contribute cosine 1
    z = torch.eye(50)
    _, cos_rand = metrics.cosine_stats(z, z)
    assert cos_rand == 0.0


def test_uniformity_matches_direct_formula_and_subsamples_large_inputs() -> None:
    z = _gaussian(300, 8)
    unit = torch.nn.functional.normalize(z.double(), dim=1)
    distances = torch.cdist(unit, unit).pow(2)
    off_diagonal = distances[~torch.eye(300, dtype=torch.bool)]
    expected = math.log(torch.exp(-2 * off_diagonal).mean().item())
    assert metrics.uniformity(z) == pytest.approx(expected, rel=1e-6)
    big = _gaussian(5000, 8)
    assert metrics.uniformity(big) == pytest.approx(metrics.uniformity(big[:1024]), abs=0.05)


def _clusters(n: int, num_classes: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    centres = 10 * torch.randn(num_classes, d, generator=torch.Generator().manual_seed(42))
    labels = torch.randint(0, num_classes, (n,), generator=generator)
    return centres[labels] + torch.randn(n, d, generator=generator), labels


def test_knn_separates_clusters_and_is_chance_on_random_labels() -> None:
    bank, bank_labels = _clusters(2000, 10, 32, seed=0)
    query, query_labels = _clusters(1000, 10, 32, seed=1)
    assert metrics.knn_top1(bank, bank_labels, query, query_labels, num_classes=10) == 1.0
    shuffled = bank_labels[torch.randperm(2000, generator=torch.Generator().manual_seed(5))]
    accuracy = metrics.knn_top1(bank, shuffled, query, query_labels, num_classes=10)
    assert accuracy == pytest.approx(0.1, abs=0.04)


def test_cluster_entropy_extremes() -> None:
    assert metrics.cluster_entropy(torch.zeros(100, dtype=torch.long), 16) == 0.0
    uniform = torch.arange(1600) % 16
    assert metrics.cluster_entropy(uniform, 16) == pytest.approx(math.log(16))


def test_embedding_diagnostics_is_json_ready_with_exact_keys() -> None:
    z, labels = _clusters(512, 10, 64, seed=2)
    bank, bank_labels = _clusters(1024, 10, 64, seed=3)
    view1 = z + 0.1 * _gaussian(512, 64, seed=4)
    view2 = z + 0.1 * _gaussian(512, 64, seed=5)
    result = metrics.embedding_diagnostics(
        z,
        view1,
        view2,
        labels,
        bank,
        bank_labels,
        num_classes=10,
        assignments=labels,
        num_clusters=10,
    )
    assert set(result) == {
        "dim",
        "std_l2",
        "std_l2_sqrt_d",
        "effective_rank",
        "spectrum",
        "alignment",
        "uniformity",
        "cos_pos",
        "cos_rand",
        "knn_top1",
        "cluster_entropy",
        "cluster_entropy_max",
    }
    assert json.loads(json.dumps(result)) == result
    assert result["dim"] == 64
    assert result["std_l2_sqrt_d"] == pytest.approx(result["std_l2"] * 8)
    assert result["knn_top1"] == 1.0
    assert result["cluster_entropy_max"] == pytest.approx(math.log(10))
    assert result["cos_pos"] > result["cos_rand"]
    without = metrics.embedding_diagnostics(z, view1, view2, labels, bank, bank_labels, 10)
    assert without["cluster_entropy"] is None
    assert without["cluster_entropy_max"] is None


def test_extreme_scales_and_non_finite_embeddings() -> None:
    z = _random_subspace(1024, 4, 32)
    for scale in (1e-30, 1e30):
        assert metrics.effective_rank(z * scale) == pytest.approx(4.0, rel=0.05)
    singular = metrics.singular_values(3.0 * torch.eye(5))
    assert singular.tolist() == pytest.approx([3.0] * 5)
    broken = z.clone()
    broken[0, 0] = float("nan")
    labels = torch.zeros(1024, dtype=torch.long)
    with pytest.raises(metrics.NonFiniteEmbeddingError, match="NaN"):
        metrics.embedding_diagnostics(broken, z, z, labels, z, labels, num_classes=2)
