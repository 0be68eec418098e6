"""Collapse diagnostics on constructed embeddings whose true values are known."""

from __future__ import annotations

import math

import pytest
import torch

from contract import EmbeddingMetrics
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
    # docs/design.md: std_l2 alone misses dimensional collapse
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


def test_knn_is_not_measured_on_a_probe_of_one_class() -> None:
    """An image folder with one class folder: every neighbour votes for the one label, so
    the accuracy would read 1.0 whatever the embedding (a collapsed one included)."""
    z = _gaussian(256, 16, seed=6)
    one_class = torch.zeros(256, dtype=torch.long)
    alone = metrics.embedding_diagnostics(z, None, None, one_class, None, None, num_classes=1)
    assert alone.knn_top1 is None
    collapsed = torch.ones(256, 16)
    assert metrics.knn_top1(collapsed, one_class, collapsed, one_class, num_classes=1) == 1.0
    two = metrics.embedding_diagnostics(z, None, None, torch.arange(256) % 2, None, None, 2)
    assert two.knn_top1 is not None
    # with a bank, the votes are the bank's: a bank of two classes decides, one of one not
    bank = _gaussian(512, 16, seed=7)
    mixed = metrics.embedding_diagnostics(
        z, None, None, one_class, bank, torch.arange(512) % 2, num_classes=2
    )
    assert mixed.knn_top1 is not None
    single = metrics.embedding_diagnostics(
        z, None, None, torch.arange(256) % 2, bank, torch.zeros(512, dtype=torch.long), 2
    )
    assert single.knn_top1 is None


def test_cluster_entropy_extremes() -> None:
    assert metrics.cluster_entropy(torch.zeros(100, dtype=torch.long), 16) == 0.0
    uniform = torch.arange(1600) % 16
    assert metrics.cluster_entropy(uniform, 16) == pytest.approx(math.log(16))


def test_embedding_diagnostics_fills_every_declared_field() -> None:
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
    # the typed record: what a JSON round trip gives back is the same record
    assert EmbeddingMetrics.model_validate_json(result.model_dump_json()) == result
    assert result.dim == 64
    assert result.std_l2_sqrt_d == pytest.approx(result.std_l2 * 8)
    assert result.knn_top1 == 1.0
    assert result.cluster_entropy_max == pytest.approx(math.log(10))
    assert result.cos_pos is not None and result.cos_pos > result.cos_rand
    without = metrics.embedding_diagnostics(z, view1, view2, labels, bank, bank_labels, 10)
    assert without.cluster_entropy is None
    assert without.cluster_entropy_max is None
    for key in ("cluster_perplexity", "distinct_prototypes", "distinct_samples", "lidar"):
        assert getattr(without, key) is None
    views = torch.stack([view1, view2, z])
    with_all = metrics.embedding_diagnostics(
        z,
        view1,
        view2,
        labels,
        bank,
        bank_labels,
        num_classes=10,
        assignments=labels,
        num_clusters=10,
        cluster_probabilities=torch.full((512, 10), 0.1),
        prototypes=torch.eye(10, 64),
        lidar_views=views,
    )
    assert EmbeddingMetrics.model_validate(with_all.model_dump()) == with_all
    # every declared (stored) field is measured when everything is given
    assert all(value is not None for value in with_all.model_dump().values())
    assert with_all.cluster_perplexity == pytest.approx(10.0)
    assert with_all.distinct_prototypes == with_all.num_prototypes == 10
    assert with_all.distinct_samples is not None and 1 <= with_all.distinct_samples <= 10
    assert with_all.lidar == pytest.approx(metrics.lidar(views))
    assert with_all.variance_shares is not None
    assert len(with_all.variance_shares) == metrics.TOP_DIRECTIONS


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


# -- spectral measures beyond RankMe: participation ratio, NESum, W2-uniformity ---------------


def _power_law(n: int, d: int, seed: int = 0) -> torch.Tensor:
    """(n, d) Gaussian whose covariance eigenvalues fall as 1/k (singular values 1/sqrt(k))."""
    scales = torch.arange(1, d + 1, dtype=torch.float32).pow(-0.5)
    return _gaussian(n, d, seed) * scales


def _spectral(z: torch.Tensor) -> dict[str, float]:
    eigenvalues = metrics.covariance_eigenvalues(z)
    return {
        "pr": metrics.participation_ratio(eigenvalues),
        "nesum": metrics.nesum(eigenvalues),
        "w2": metrics.w2_uniformity(z),
        "rankme": metrics.effective_rank(z),
    }


def test_spectral_measures_of_a_constant_embedding() -> None:
    z = _constant(512, 64)
    eigenvalues = metrics.covariance_eigenvalues(z)
    assert metrics.participation_ratio(eigenvalues) == 0.0
    assert metrics.nesum(eigenvalues) == 0.0
    assert metrics.variance_shares(eigenvalues) == []
    # all mass at one point of the sphere, as far from N(0, I/d) as a unit vector can be
    assert metrics.w2_uniformity(z) == pytest.approx(math.sqrt(2.0), abs=1e-6)


def test_spectral_measures_of_an_isotropic_embedding() -> None:
    d = 128
    z = _gaussian(8192, d)
    values = _spectral(z)
    # sampling noise (Marchenko-Pastur, d/N = 1/64) keeps them a little under d
    assert 0.9 * d < values["pr"] <= d
    assert 0.6 * d < values["nesum"] <= d
    assert values["w2"] < 0.1
    shares = metrics.variance_shares(metrics.covariance_eigenvalues(z))
    assert len(shares) == metrics.TOP_DIRECTIONS
    assert shares == sorted(shares, reverse=True)
    assert all(share == pytest.approx(1 / d, rel=0.3) for share in shares)


@pytest.mark.parametrize(("k", "d"), [(1, 32), (4, 64), (8, 128), (16, 512)])
def test_spectral_measures_count_the_dimensions_of_a_subspace(k: int, d: int) -> None:
    z = _random_subspace(8192, k, d)
    values = _spectral(z)
    assert values["pr"] == pytest.approx(k, rel=0.05)
    assert values["nesum"] == pytest.approx(k, rel=0.15)
    # Fang et al. 2024: W2 of an isotropic k-dim subspace is sqrt(2 - 2 sqrt(k / d))
    assert values["w2"] == pytest.approx(math.sqrt(2 - 2 * math.sqrt(k / d)), abs=0.01)
    shares = metrics.variance_shares(metrics.covariance_eigenvalues(z))
    assert shares[0] == pytest.approx(1 / k, rel=0.1)
    if k < len(shares):
        assert sum(shares[:k]) == pytest.approx(1.0, abs=1e-6)
        assert shares[k] < 1e-6


def test_power_law_spectrum_fools_rankme_but_not_nesum() -> None:
    # spectrum shape: at d = 128 a 1/k eigenvalue spectrum gives RankMe about 106, NESum about 6
    values = _spectral(_power_law(8192, 128))
    assert values["rankme"] == pytest.approx(106, abs=5)
    assert values["nesum"] == pytest.approx(6, abs=1.5)
    assert values["pr"] < values["rankme"] / 3
    # W2 sees the same steepness: between isotropic (about 0.1) and 8-of-128 dims (1.22)
    assert 0.3 < values["w2"] < 1.0


def test_w2_sees_dimensional_collapse_that_wang_isola_uniformity_hardly_does() -> None:
    isotropic, collapsed = _gaussian(4096, 128), _random_subspace(4096, 8, 128)
    w2_gap = metrics.w2_uniformity(collapsed) - metrics.w2_uniformity(isotropic)
    uniformity_gap = metrics.uniformity(collapsed) - metrics.uniformity(isotropic)
    # as fractions of each metric's range: W2 in [0, sqrt 2], uniformity in [-4, 0]
    assert w2_gap / math.sqrt(2) > 0.7
    assert uniformity_gap / 4 < 0.25


def test_w2_of_a_shifted_cloud_counts_its_mean() -> None:
    # all samples near one direction: large mean, small covariance -> close to sqrt(2)
    near_constant = _constant(2048, 64) + 0.01 * _gaussian(2048, 64, seed=1)
    assert metrics.w2_uniformity(near_constant) > 1.3
    assert metrics.w2_uniformity(near_constant) <= math.sqrt(2) + 1e-9


# -- invariance lost: views that share nothing with their image ----------------------------


def test_independent_noise_per_view_loses_alignment_and_positive_cosine() -> None:
    z1, z2 = _gaussian(1024, 64, seed=1), _gaussian(1024, 64, seed=2)
    # two unrelated unit vectors: ||u - v||^2 = 2 on average, positives like random pairs
    assert metrics.alignment(z1, z2) == pytest.approx(2.0, abs=0.05)
    cos_pos, cos_rand = metrics.cosine_stats(z1, z2)
    assert cos_pos == pytest.approx(cos_rand, abs=0.02)
    # the spectrum of either view looks healthy: only the pair statistics show the loss
    assert metrics.effective_rank(z1) > 50


# -- LiDAR ------------------------------------------------------------------------------------


def _views(images: torch.Tensor, q: int, noise: float, seed: int) -> torch.Tensor:
    """(q, n, d): q noisy views of each of the n image embeddings."""
    generator = torch.Generator().manual_seed(seed)
    return images[None] + noise * torch.randn((q, *images.shape), generator=generator)


def test_lidar_of_invariant_views_counts_the_image_dimensions() -> None:
    n, q, d = 256, 8, 32
    images = _gaussian(n, d, seed=1)
    healthy = metrics.lidar(_views(images, q, noise=0.1, seed=2))
    assert healthy > 0.6 * d
    assert healthy <= d
    subspace = metrics.lidar(_views(_random_subspace(n, 4, d, seed=3), q, noise=0.05, seed=4))
    assert subspace == pytest.approx(4.0, rel=0.15)


def test_lidar_ignores_view_noise_that_rankme_counts() -> None:
    # invariance half lost: the images differ in 4 directions, their views are noisy in all 64
    n, q, d, k = 256, 8, 64, 4
    views = _views(3.0 * _random_subspace(n, k, d, seed=5), q, noise=0.5, seed=6)
    # the noise directions still add a little entropy (each LDA eigenvalue about 1/q)
    assert k <= metrics.lidar(views) < 2 * k
    assert metrics.effective_rank(views.reshape(-1, d)) > 8 * k


def test_lidar_of_constant_views_and_bad_shapes() -> None:
    constant = _constant(64, 16).expand(4, 64, 16).clone()
    assert metrics.lidar(constant) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="2 views"):
        metrics.lidar(torch.zeros(1, 10, 4))


def test_lidar_is_scale_free_and_follows_the_paper_formula() -> None:
    views = _views(_gaussian(64, 8, seed=7), 4, noise=0.3, seed=8)
    assert metrics.lidar(views * 1e3) == pytest.approx(metrics.lidar(views), rel=1e-6)
    # direct transcription of Thilak et al. (2024) on the normalised views
    e = torch.nn.functional.normalize(views.double(), dim=2)
    q, n, d = e.shape
    means = e.mean(dim=0)
    sigma_b = torch.cov(means.T, correction=1)
    centred = (e - means).reshape(-1, d)
    sigma_w = centred.T @ centred / (n * (q - 1)) + 1e-4 * torch.eye(d, dtype=torch.float64)
    values, vectors = torch.linalg.eigh(sigma_w)
    root = vectors @ torch.diag(values.rsqrt()) @ vectors.T
    lam = torch.linalg.eigvalsh(root @ sigma_b @ root).clamp_min(0)
    p = lam / lam.sum() + 1e-7
    assert metrics.lidar(views) == pytest.approx(float(torch.exp(-(p * p.log()).sum())), rel=1e-6)


# -- cluster and prototype health ------------------------------------------------------------


def test_cluster_perplexity_counts_the_clusters_used() -> None:
    k = 30
    uniform = torch.full((100, k), 1.0 / k)
    assert metrics.cluster_perplexity(uniform) == pytest.approx(k)
    one = torch.nn.functional.one_hot(torch.zeros(100, dtype=torch.long), k).double()
    assert metrics.cluster_perplexity(one) == pytest.approx(1.0)
    # confident assignments spread over 10 of the 30 clusters
    ten = torch.nn.functional.one_hot(torch.arange(1000) % 10, k).double()
    assert metrics.cluster_perplexity(ten) == pytest.approx(10.0)


def test_distinct_prototypes_groups_near_duplicates() -> None:
    d = 128
    random = _gaussian(30, d, seed=9)
    assert metrics.distinct_prototypes(random) == 30
    # partial prototype collapse: 30 prototypes that are noisy copies of 5
    copies = torch.cat([random[:5]] * 6) + 0.01 * _gaussian(30, d, seed=10)
    assert metrics.distinct_prototypes(copies) == 5
    # the threshold: cosine 0.95 is one group, cosine 0.85 two
    for cosine, groups in ((0.95, 1), (0.85, 2)):
        pair = torch.tensor([[1.0, 0.0], [cosine, math.sqrt(1 - cosine**2)]])
        assert metrics.distinct_prototypes(pair) == groups
    # no chaining: 90 prototypes 2 degrees apart along a 180-degree arc are neighbours of
    # their neighbours (cosine 0.9994) but span far more than one 26-degree group
    angles = torch.arange(90, dtype=torch.float64) * math.radians(2.0)
    arc = torch.stack([angles.cos(), angles.sin()], dim=1)
    # at least ceil(178 / 25.8) = 7 groups; the greedy merging may leave a few more
    assert 7 <= metrics.distinct_prototypes(arc) <= 10
    # the data's reference: 100 samples of a 2-D subspace of R^128 form few groups, of an
    # isotropic Gaussian all 100
    flat = _gaussian(500, 2, seed=11) @ _gaussian(2, d, seed=12)
    # (the circle needs 360 / 25.8 = 14 groups; the greedy merging may leave a few more)
    assert 14 <= metrics.distinct_samples(flat, 100) <= 20
    assert metrics.distinct_samples(_gaussian(500, d, seed=13), 100) == 100
    assert metrics.distinct_samples(flat, 10_000) == metrics.distinct_prototypes(flat)
    # all-zero rows are one group of their own
    assert metrics.distinct_prototypes(torch.cat([torch.zeros(3, d), random[:4]])) == 5


# -- augmentation-to-data variance ratio (Jing et al. 2022, mechanism 1) ----------------------


def _anisotropic(n: int, d: int, seed: int, basis_seed: int = 0) -> torch.Tensor:
    """(n, d) centred Gaussian with variances 1/k along the orthogonal directions of a fixed
    random basis (``basis_seed``): draws with different ``seed`` share one covariance."""
    basis, _ = torch.linalg.qr(
        torch.randn(d, d, generator=torch.Generator().manual_seed(basis_seed))
    )
    scales = 1.0 / torch.arange(1, d + 1).double().sqrt()
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=generator, dtype=torch.float64) * scales) @ basis.T.double()


def test_augmentation_ratio_is_zero_without_augmentation_noise() -> None:
    z = _anisotropic(2048, 32, seed=0)
    measured = metrics.augmentation_variance_ratios(z, z[:512], z[:512].clone())
    assert measured is not None
    ratio, ratios = measured
    assert ratio == 0.0 and len(ratios) == metrics.TOP_DIRECTIONS
    assert max(ratios) == 0.0


def test_augmentation_ratio_is_one_when_views_are_as_noisy_as_the_data() -> None:
    z = _anisotropic(4096, 32, seed=1)
    images = z[:2048]
    # each view adds noise with the data's own covariance: the views vary as much as the images
    noise1, noise2 = _anisotropic(2048, 32, seed=2), _anisotropic(2048, 32, seed=3)
    measured = metrics.augmentation_variance_ratios(z, images + noise1, images + noise2)
    assert measured is not None
    ratio, ratios = measured
    assert ratio == pytest.approx(1.0, abs=0.1)
    assert len(ratios) == metrics.TOP_DIRECTIONS
    assert all(r == pytest.approx(1.0, abs=0.2) for r in ratios)
    # half that noise variance: half the ratio; the same noise along the smallest directions
    # only: the top directions do not see it
    half = metrics.augmentation_variance_ratios(
        z, images + 0.5**0.5 * noise1, images + 0.5**0.5 * noise2
    )
    assert half is not None and half[0] == pytest.approx(0.5, abs=0.06)
    basis, _ = torch.linalg.qr(torch.randn(32, 32, generator=torch.Generator().manual_seed(0)))
    low = (noise1 @ basis.double())[:, -8:] @ basis.double()[:, -8:].T  # last 8 directions
    hidden = metrics.augmentation_variance_ratios(z, images + low, images)
    assert hidden is not None and hidden[0] < 0.02


def test_augmentation_ratio_in_the_record_and_undefined_for_a_point() -> None:
    z = _gaussian(512, 16, seed=4)
    labels = torch.arange(512) % 4
    record = metrics.embedding_diagnostics(z, z + 0.01, z - 0.01, labels, None, None, 4)
    assert record.augmentation_variance_ratio is not None
    assert record.augmentation_variance_ratio < 0.01
    assert record.augmentation_variance_ratios is not None
    without_views = metrics.embedding_diagnostics(z, None, None, labels, None, None, 4)
    assert without_views.augmentation_variance_ratio is None
    point = _constant(64, 16)
    assert metrics.augmentation_variance_ratios(point, point, point) is None


def test_raw_scale_is_the_top_direction_std_and_sees_a_shrinking_embedding() -> None:
    z = _gaussian(4096, 64, seed=3)
    stretched = z.clone()
    stretched[:, 0] *= 5.0
    # the std along the top principal direction: 5 for a cloud stretched 5x along one axis
    assert metrics.raw_scale(stretched) == pytest.approx(5.0, rel=0.05)
    # a shift changes nothing, a shrink towards the origin scales it and nothing else sees it
    assert metrics.raw_scale(z + 5.0) == pytest.approx(metrics.raw_scale(z), rel=1e-6)
    shrunk = 0.01 * z
    assert metrics.raw_scale(shrunk) == pytest.approx(0.01 * metrics.raw_scale(z), rel=1e-6)
    assert metrics.effective_rank(shrunk) == pytest.approx(metrics.effective_rank(z), rel=1e-4)
    # a dimensional collapse (variance leaving 60 of 64 directions) keeps it
    confined = _random_subspace(4096, 4, 64)
    assert metrics.raw_scale(confined) == pytest.approx(metrics.raw_scale(z), rel=0.2)
    assert metrics.raw_scale(_constant(512, 64)) == pytest.approx(0.0, abs=1e-6)
    labels = torch.zeros(4096, dtype=torch.long)
    record = metrics.embedding_diagnostics(z, None, None, labels, None, None, None)
    assert record.scale == pytest.approx(metrics.raw_scale(z))


def test_metrics_of_rows_near_one_point_keep_their_small_variances() -> None:
    """z = 5 + 1e-4 noise: the unit rows differ by about 1e-5, whose variances float32 rounds
    away (in float32 the spectrum's tail comes out 6,500-fold off); the metrics are float64."""
    noise = torch.randn(256, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    z = (5.0 + 1e-4 * noise).float()
    unit = z.double() / z.double().norm(dim=1, keepdim=True)
    expected = float(unit.std(dim=0).mean())
    assert metrics.std_l2(z) == pytest.approx(expected, rel=1e-6)
    eigenvalues = torch.linalg.eigvalsh(torch.cov(unit.T))
    ratio = float(eigenvalues.sum() ** 2 / eigenvalues.pow(2).sum())
    measured = metrics.participation_ratio(metrics.covariance_eigenvalues(z))
    assert measured == pytest.approx(ratio, rel=1e-6)
