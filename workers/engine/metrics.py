"""Collapse diagnostics computed on a fixed held-out probe set, once per epoch.

Every function takes torch tensors on any device (CPU or CUDA) and returns plain Python
numbers; :func:`embedding_diagnostics` gathers them into the typed record
(:class:`contract.EmbeddingMetrics`; each metric is declared in contract/metrics.py).
Everything but the kNN vote is computed in float64 (float32 loses the small singular values
and variances that tell a collapsed embedding from a healthy one).

Shapes: ``N`` probe samples, ``d`` embedding dimensions, ``M`` bank (training) samples.
Definitions follow ``docs/design.md`` (Collapse diagnostics); none of them loops over samples
in Python.
"""

from __future__ import annotations

import math
from typing import TypeGuard

import torch
import torch.nn.functional as F

from contract import EmbeddingMetrics
from workers.engine.parts import off_diagonal

RANKME_EPS = 1e-7  # added to p_k inside the log, as in Garrido et al. (2023)
SPECTRUM_FLOOR = 1e-20  # eigenvalues below this are clamped before the log (exact zeros)
UNIFORMITY_MAX_SAMPLES = 1024  # pairwise distances on a fixed subsample: O(n^2) stays cheap
KNN_TEMPERATURE = 0.07  # InstDisc / solo-learn weighted kNN temperature
KNN_QUERY_CHUNK = 512  # queries per similarity matmul, bounds memory to chunk x M floats
TOP_DIRECTIONS = 10  # principal directions whose variance shares the record keeps
LIDAR_DELTA = 1e-4  # ridge on the within-class scatter (Thilak et al. 2024, Sec. 3)
LIDAR_EPS = 1e-7  # added to p_k inside the log, as in RankMe
# A principal direction whose data variance is below this fraction of the largest one carries
# no variance to compare the views' with (a collapsed direction): the ratio leaves it out.
DIRECTION_FLOOR = 1e-9
# Two prototypes whose cosine is at least this are one "distinct prototype" (see
# distinct_prototypes for the evidence behind the value).
PROTOTYPE_DUPLICATE_COSINE = 0.9
_FIXED_SEED = 0  # the random-pair permutation and the uniformity subsample never change


def _unit_rows(z: torch.Tensor) -> torch.Tensor:
    """(N, d) -> (N, d) float64 rows scaled to unit l2 norm (all-zero rows stay zero). The
    rows are first divided by the largest entry, so that an embedding of any magnitude gets
    the same directions: in float32 the squares of entries above about 1e19 overflow, rows
    below F.normalize's eps (1e-12) would not be scaled up, and the small variances of rows
    near one point (z = 5 + 1e-4 noise) round away. The kNN vote alone goes back to float32
    (a large bank)."""
    rows = z.double()
    rows = rows / rows.abs().max().clamp_min(torch.finfo(torch.float64).tiny)
    return F.normalize(rows, dim=1, eps=1e-300)


def _fixed_generator() -> torch.Generator:
    return torch.Generator(device="cpu").manual_seed(_FIXED_SEED)


def std_l2(z: torch.Tensor) -> float:
    """Mean over dimensions of the standard deviation over samples of z/||z|| (SimSiam,
    Chen & He 2021, Sec. 4.1).

    z: (N, d). Healthy, isotropic embeddings give about 1/sqrt(d); complete collapse gives 0.
    The std is taken over the sample axis (dim 0): identical samples give 0 however much the
    features differ from one another.
    """
    if z.shape[0] < 2:
        return 0.0
    return float(_unit_rows(z).std(dim=0).mean())


class NonFiniteEmbeddingError(ValueError):
    """The embeddings contain NaN or infinity: training diverged, nothing can be measured."""


def _check_finite(z: torch.Tensor, name: str) -> None:
    if not bool(torch.isfinite(z).all()):
        raise NonFiniteEmbeddingError(f"{name} embeddings contain NaN or infinity")


def _symmetric_eigenvalues(matrix: torch.Tensor) -> torch.Tensor:
    """Eigenvalues of a symmetric PSD float64 matrix (k, k), descending, clamped >= 0.

    Scaled to unit largest entry first (eigen-solvers fail on huge dynamic ranges); if the
    solver still does not converge, the slower but sturdier SVD gives the same values.
    """
    scale = matrix.abs().max()
    if scale == 0:
        return torch.zeros(matrix.shape[0], dtype=matrix.dtype, device=matrix.device)
    try:
        eigenvalues = torch.linalg.eigvalsh(matrix / scale).flip(0)
    except torch.linalg.LinAlgError:  # type: ignore[attr-defined]  # exported at runtime
        eigenvalues = torch.linalg.svdvals(matrix / scale)
    clamped: torch.Tensor = eigenvalues.clamp_min(0.0) * scale
    return clamped


def singular_values(z: torch.Tensor) -> torch.Tensor:
    """Singular values of the raw embedding matrix z: (N, d) -> (min(N, d),) float64,
    descending.

    Computed as square roots of the eigenvalues of the smaller Gram matrix (X^T X or X X^T,
    whose nonzero eigenvalues coincide): cheaper than an SVD of X.
    """
    x = z.double()
    scale = x.abs().max().clamp_min(1e-300)  # unit largest entry: the Gram cannot overflow
    x = x / scale
    gram = x.T @ x if x.shape[1] <= x.shape[0] else x @ x.T
    return _symmetric_eigenvalues(gram).sqrt() * scale


def raw_scale(z: torch.Tensor) -> float:
    """Std of the raw embedding along its top principal direction, (N, d) -> float, in z's
    own units: sqrt of the largest eigenvalue of its covariance.

    Every other measure here divides z by its norm, so an embedding whose rows all shrink
    towards the origin keeps its spread and rank; this is the one that sees it. That is the
    trivial solution of a loss on raw distances: LeJEPA without SIGReg (Balestriero & LeCun,
    arXiv 2511.08544), where the prediction term alone is minimised by z = 0. The top
    direction, not the total variance, so that a dimensional collapse (variance leaving
    most directions while the remaining ones keep theirs) does not read as shrinking.
    """
    centred = z.double() - z.double().mean(dim=0, keepdim=True)
    return float(singular_values(centred)[0] / math.sqrt(z.shape[0]))


def raw_total_scale(z: torch.Tensor) -> float:
    """RMS distance of the raw embedding from its mean, (N, d) -> float, in z's own units:
    sqrt of the trace of its covariance. With :func:`raw_scale` it tells a cloud shrinking
    to a point (both fall) from variance spreading out of the top direction (this holds)."""
    centred = z.double() - z.double().mean(dim=0, keepdim=True)
    return float(centred.pow(2).sum(dim=1).mean().sqrt())


def effective_rank(z: torch.Tensor) -> float:
    """RankMe (Garrido et al., ICML 2023): exp(-sum_k p_k log p_k) with
    p_k = sigma_k / sum(sigma) + 1e-7, sigma the singular values of the (N, d) embedding
    matrix (not centred, not normalised, as in the paper).

    z: (N, d). Ranges from 1 (all samples on one line, e.g. a constant embedding) to
    min(N, d). Meaningful when N >> d.
    """
    sigma = singular_values(z)
    total = sigma.sum()
    if total <= 0:
        return 1.0
    p = sigma / total + RANKME_EPS
    return float(torch.exp(-(p * torch.log(p)).sum()))


def covariance_eigenvalues(z: torch.Tensor) -> torch.Tensor:
    """Eigenvalues of the covariance of the l2-normalised embeddings z/||z||: (N, d) -> (d,)
    float64, descending, >= 0 (unbiased covariance, divided by N - 1).

    Every spectral diagnostic below (spectrum, participation ratio, NESum, W2-uniformity,
    variance shares) is a function of these d numbers; the trainer computes them once per
    embedding. They sum to the total variance of z/||z||, which is 1 - ||mean||^2 (up to
    the N/(N-1) factor): 0 for complete collapse.
    """
    n = z.shape[0]
    unit = _unit_rows(z)
    centred = unit - unit.mean(dim=0, keepdim=True)
    covariance = centred.T @ centred / max(n - 1, 1)
    return _symmetric_eigenvalues(covariance)


def singular_spectrum(z: torch.Tensor) -> list[float]:
    """Log singular values of the covariance of the l2-normalised embeddings, descending
    (Jing et al., "Understanding Dimensional Collapse in Contrastive SSL", ICLR 2022).

    z: (N, d) -> list of d floats. The covariance is symmetric positive semi-definite, so
    its singular values are its eigenvalues; they are clamped at 1e-20 before the log (a
    collapsed embedding has exact zeros). Rows are normalised first so spectra compare
    across methods whose raw output scales differ; exp(spectrum) sums to the total variance
    of z/||z||, which is 0 for complete collapse and 1 - ||mean||^2 in general.
    """
    return _log_spectrum(covariance_eigenvalues(z))


def _log_spectrum(eigenvalues: torch.Tensor) -> list[float]:
    return torch.log(eigenvalues.clamp_min(SPECTRUM_FLOOR)).tolist()


def _has_variance(eigenvalues: torch.Tensor) -> bool:
    """False for a constant embedding (every eigenvalue at the clamping floor or below)."""
    return bool(eigenvalues.numel()) and float(eigenvalues[0]) > SPECTRUM_FLOOR


def participation_ratio(eigenvalues: torch.Tensor) -> float:
    """Participation ratio (sum lambda)^2 / sum lambda^2 of covariance eigenvalues lambda
    (e.g. :func:`covariance_eigenvalues`); a standard count of the dimensions a
    representation occupies (Gao, Trautmann, Yu et al., "A theory of multineuronal
    dimensionality, dynamics and measurement", bioRxiv 2017).

    1 when one direction carries all the variance, k when k directions carry equal shares
    (d for an isotropic embedding), 0 for a constant embedding. Dominated by the large
    eigenvalues: a noise floor spread thinly over many small ones barely moves it (it does
    move RankMe), which is why the verdict uses it for redundant-dimension collapse.
    """
    if not _has_variance(eigenvalues):
        return 0.0
    return float(eigenvalues.sum() ** 2 / eigenvalues.pow(2).sum())


def nesum(eigenvalues: torch.Tensor) -> float:
    """NESum, sum_k lambda_k / lambda_1 over the covariance eigenvalues (He & Ozay,
    "Exploring the Gap between Collapsed and Whitened Features in Self-Supervised Learning",
    ICML 2022, Sec. 4: the "normalised eigenvalue sum").

    1 when one direction carries all the variance, d for an isotropic (whitened) embedding,
    0 for a constant one. Unlike RankMe, which takes the entropy of the singular values and so
    counts many small directions, NESum is governed by how much the largest eigenvalue
    dominates: a power-law spectrum lambda_k ~ 1/k at d = 128 has RankMe about 107 but NESum
    about 5.4 (H_128, the harmonic number).
    """
    if not _has_variance(eigenvalues):
        return 0.0
    return float(eigenvalues.sum() / eigenvalues[0])


def w2_uniformity(z: torch.Tensor, eigenvalues: torch.Tensor | None = None) -> float:
    """Wasserstein-2 distance between the l2-normalised embeddings, approximated as a
    Gaussian N(mu, Sigma), and the uniform-on-the-sphere proxy N(0, I/d) (Fang, Zhang, Li,
    Zhu, Wang and Yan, "Rethinking the Uniformity Metric in Self-Supervised Learning",
    ICLR 2024, Eq. 8; their uniformity metric is the negative of this distance).

    Closed form for Gaussians: W2^2 = ||mu||^2 + tr(Sigma) + tr(I/d)
    - 2 tr((Sigma^{1/2} (I/d) Sigma^{1/2})^{1/2}) = ||mu||^2 + tr(Sigma) + 1
    - (2 / sqrt(d)) sum_k sqrt(lambda_k), lambda_k the eigenvalues of Sigma.

    z: (N, d). 0 for an isotropic embedding, sqrt(2) for a constant one, and
    sqrt(2 - 2 sqrt(k / d)) for an isotropic embedding confined to k of d dimensions: it sees
    dimensional collapse, which Wang & Isola's uniformity hardly does (k = 8 of d = 128:
    W2 0.09 -> 1.22 of its range [0, 1.41], uniformity only -3.9 -> -3.1 of [-4, 0]).
    ``eigenvalues``: :func:`covariance_eigenvalues` of z, if already computed.
    """
    unit = _unit_rows(z)
    if eigenvalues is None:
        eigenvalues = covariance_eigenvalues(z)
    d = unit.shape[1]
    mean_sq = float(unit.mean(dim=0).pow(2).sum())
    squared = mean_sq + float(eigenvalues.sum()) + 1.0
    squared -= 2.0 / math.sqrt(d) * float(eigenvalues.clamp_min(0.0).sqrt().sum())
    return math.sqrt(max(squared, 0.0))


def variance_shares(eigenvalues: torch.Tensor, top: int = TOP_DIRECTIONS) -> list[float]:
    """Share of the total variance of z/||z|| carried by each of its ``top`` principal
    directions, descending: the picture of dimensional collapse that the run page, the compare
    page and the report draw (``varianceSharesFigure`` in frontend/js/plots.js: one bar per
    direction at the epoch shown; isotropic: each about 1/d, k-dim collapse: k bars of about
    1/k). Empty for a constant embedding."""
    total = float(eigenvalues.sum())
    if not _has_variance(eigenvalues) or total <= 0:
        return []
    return (eigenvalues[:top] / total).tolist()


def alignment(z1: torch.Tensor, z2: torch.Tensor) -> float:
    """Alignment, E ||f(x) - f(x+)||^2 on l2-normalised embeddings (Wang & Isola, ICML 2020,
    alpha = 2).

    z1, z2: (N, d) embeddings of two augmented views; row i of each is a positive pair.
    0 when the views map to the same point; at most 4.
    """
    return float((_unit_rows(z1) - _unit_rows(z2)).pow(2).sum(dim=1).mean())


def uniformity(z: torch.Tensor, max_samples: int = UNIFORMITY_MAX_SAMPLES) -> float:
    """Uniformity, log E_{x != y} exp(-2 ||f(x) - f(y)||^2) on l2-normalised embeddings
    (Wang & Isola, ICML 2020, t = 2).

    z: (N, d). 0 for a constant embedding; strongly negative (down to about -4 on a
    high-dimensional sphere) when spread out. Uses a fixed random subsample of at most
    ``max_samples`` rows so the O(N^2) pairwise distances stay cheap.
    """
    unit = _unit_rows(z)
    n = unit.shape[0]
    if n < 2:
        return 0.0
    if n > max_samples:
        keep = torch.randperm(n, generator=_fixed_generator())[:max_samples]
        unit = unit[keep.to(unit.device)]
    # ||u_i - u_j||^2 = |u_i|^2 + |u_j|^2 - 2 u_i.u_j: one matmul instead of a pdist (rows
    # are unit, or zero for an all-zero embedding).
    gram = unit @ unit.T
    norms = gram.diagonal()
    squared = (norms[:, None] + norms[None, :] - 2.0 * gram).clamp_min(0.0)
    values = off_diagonal(squared)
    return float(torch.logsumexp(-2.0 * values, dim=0) - math.log(values.numel()))


def _derangement(n: int) -> torch.Tensor:
    """A fixed permutation of range(n) with no fixed point (n >= 2): a seeded shuffle,
    each element paired with the next one in the shuffled order."""
    order = torch.randperm(n, generator=_fixed_generator())
    partner = torch.empty_like(order)
    partner[order] = order.roll(-1)
    return partner


def cosine_stats(z1: torch.Tensor, z2: torch.Tensor) -> tuple[float, float]:
    """Mean cosine similarity of positive pairs and of random pairs.

    z1, z2: (N, d), row i of each a positive pair. Positives: cos(z1_i, z2_i). Random pairs:
    cos(z1_i, z2_pi(i)) for a fixed permutation pi without fixed points (never a sample with
    itself). Returns (cos_pos, cos_rand); both tend to 1 under complete collapse, while a
    healthy embedding has cos_pos well above cos_rand.
    """
    u1, u2 = _unit_rows(z1), _unit_rows(z2)
    cos_pos = float((u1 * u2).sum(dim=1).mean())
    if u1.shape[0] < 2:
        return cos_pos, cos_pos
    partner = _derangement(u1.shape[0]).to(u1.device)
    cos_rand = float((u1 * u2[partner]).sum(dim=1).mean())
    return cos_pos, cos_rand


def knn_top1(
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    query: torch.Tensor,
    query_labels: torch.Tensor,
    num_classes: int,
    k: int = 20,
    temperature: float = KNN_TEMPERATURE,
    exclude_self: bool = False,
) -> float:
    """Top-1 accuracy of a weighted cosine k-nearest-neighbour classifier.

    bank: (M, d) training features, bank_labels: (M,) int; query: (N, d) probe features,
    query_labels: (N,) int. Each query takes its k most cosine-similar bank samples; each
    neighbour votes for its label with weight exp(cos / temperature) (Wu et al. 2018,
    InstDisc; the same classifier as solo-learn's WeightedKNNClassifier and lightly's
    knn_predict, temperature 0.07). Labels are used for monitoring only. Returns the
    fraction of queries whose top-voted class equals their label; chance is about
    1/num_classes, and a collapsed embedding scores about chance (or the majority class).

    ``exclude_self``: the bank *is* the query set (same rows, same order) and each query
    ignores itself: leave-one-out kNN, for runs that have no separate training bank
    (external runs send only their probe).
    """
    bank_unit = _unit_rows(bank).float()
    bank_labels = bank_labels.to(bank_unit.device).long()
    k = min(k, bank_unit.shape[0] - int(exclude_self))
    if k < 1:
        return 0.0
    correct = 0
    for start in range(0, query.shape[0], KNN_QUERY_CHUNK):
        chunk = _unit_rows(query[start : start + KNN_QUERY_CHUNK].to(bank_unit.device)).float()
        similarity = chunk @ bank_unit.T  # (n, M)
        if exclude_self:
            rows = torch.arange(chunk.shape[0], device=chunk.device)
            similarity[rows, rows + start] = -math.inf
        top_similarity, top_index = similarity.topk(k, dim=1)
        weights = torch.exp(top_similarity / temperature)  # (n, k)
        votes = torch.zeros(chunk.shape[0], num_classes, device=chunk.device)
        votes.scatter_add_(1, bank_labels[top_index], weights)
        predicted = votes.argmax(dim=1)
        truth = query_labels[start : start + KNN_QUERY_CHUNK].to(chunk.device).long()
        correct += int((predicted == truth).sum())
    return correct / max(query.shape[0], 1)


def cluster_entropy(assignments: torch.Tensor, num_clusters: int) -> float:
    """Entropy (nats) of cluster / prototype usage.

    assignments: (N,) int cluster index of each sample. 0 when every sample is in one
    cluster; log(num_clusters) when the clusters are used equally.
    """
    counts = torch.bincount(assignments.long().flatten().cpu(), minlength=num_clusters)
    p = counts.double() / max(int(counts.sum()), 1)
    p = p[p > 0]
    return float(-(p * p.log()).sum())


def cluster_perplexity(probabilities: torch.Tensor) -> float:
    """Effective number of clusters used: exp of the entropy of the mean soft assignment,
    p_bar = mean_i p(k | x_i) (the perplexity of p_bar). As used by Govindarajan, Sidén, Roll
    and Lindsten ("On Partial Prototype Collapse in the DINO Family of Self-Supervised
    Methods", arXiv 2410.14060, 2024) to show that clustering methods use far fewer
    prototypes than they have.

    probabilities: (N, K) rows summing to 1. K when every cluster gets the same total mass,
    1 when all samples go to one cluster. Unlike the entropy of hard assignments it also
    counts clusters that get mass but are never any sample's top choice.
    """
    mean = probabilities.double().mean(dim=0)
    mean = mean / mean.sum().clamp_min(1e-300)
    positive = mean[mean > 0]
    return float(torch.exp(-(positive * positive.log()).sum()))


def distinct_prototypes(
    prototypes: torch.Tensor, threshold: float = PROTOTYPE_DUPLICATE_COSINE
) -> int:
    """Number of distinct prototypes: the fewest groups found by complete-linkage clustering
    in which every two prototypes of a group have cosine similarity >= ``threshold``. Partial
    prototype collapse (Govindarajan et al., arXiv 2410.14060, 2024) is many prototypes
    converging to near-identical vectors; it shows neither in the loss nor in std or RankMe.

    Complete, not single linkage: joining any two prototypes closer than the threshold
    (connected components) chains a dense cover of a wide cone into one group, which called
    healthy DeepCluster centroids on photographs "1 of 100 distinct".

    prototypes: (K, d) (SwAV's learnt prototypes, DeepCluster's k-means centroids); all-zero
    rows count as one group together. K when no two are near-duplicates, 1 when all are.
    Threshold 0.9 (an angle of 26 degrees): independent random directions in d >= 16 stay
    below 0.9 with overwhelming probability (cosine std 1/sqrt(d) <= 0.25), while the
    prototypes of a collapsed SwAV or the duplicated centroids of DeepCluster have cosine
    above 0.99; between the two the count does not depend much on the value.
    """
    # scipy is imported here, not at the top: only the cluster methods need it
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    unit = _unit_rows(prototypes.detach()).cpu()
    zero = unit.abs().sum(dim=1) == 0
    nonzero = unit[~zero]
    groups = int(zero.any())
    if len(nonzero) <= 1:
        return groups + len(nonzero)
    distance = (1.0 - nonzero @ nonzero.T).clamp_(min=0.0).numpy()
    tree = linkage(squareform(distance, checks=False), method="complete")
    labels = fcluster(tree, t=1.0 - threshold, criterion="distance")
    return groups + int(labels.max())


def distinct_samples(z: torch.Tensor, count: int) -> int:
    """The reference for :func:`distinct_prototypes`: how many distinct groups ``count``
    embeddings of the data itself form (evenly spaced probe rows, at most all of them).

    z: (N, d). K prototypes cannot be more distinct than the directions the embeddings offer:
    in a low-dimensional embedding (photographs of few objects, participation ratio 3) even
    healthy DeepCluster's 100 k-means centroids form only ~25 groups, and so do 100 of its
    samples; prototype collapse is prototypes much less distinct than the samples."""
    count = min(count, len(z))
    rows = torch.linspace(0, len(z) - 1, count).round().long()
    return distinct_prototypes(z[rows])


def lidar(views: torch.Tensor, delta: float = LIDAR_DELTA, eps: float = LIDAR_EPS) -> float:
    """LiDAR (Thilak, Huang, Saremi, Dinh, Goh, Susskind, Littwin and Littwin, "LiDAR: Sensing
    Linear Probing Performance in Joint Embedding SSL Architectures", ICLR 2024): the effective
    rank of the linear discriminant analysis matrix of a surrogate classification task in
    which each image is a class and its augmented views are the class's samples.

    views: (q, n, d), q >= 2 augmented views of each of n images. With class means mu_i,
    grand mean mu:
      Sigma_b = 1/(n-1) sum_i (mu_i - mu)(mu_i - mu)^T,
      Sigma_w = 1/(n(q-1)) sum_ij (e_ij - mu_i)(e_ij - mu_i)^T + delta I,
      Sigma_lidar = Sigma_w^{-1/2} Sigma_b Sigma_w^{-1/2},
    and LiDAR = exp(-sum_k p_k log p_k), p_k = lambda_k / sum(lambda) + eps over the
    eigenvalues of Sigma_lidar (delta = 1e-4, eps = 1e-7 as in the paper). It counts the
    directions along which images differ more than their views do: directions of pure
    view noise (which RankMe counts) do not count. Between 1 and min(n - 1, d).

    The embeddings are l2-normalised first, so delta means the same for every method (raw
    output scales differ by orders of magnitude between methods); the paper uses raw outputs.
    """
    q, n, d = views.shape
    if q < 2 or n < 2:
        raise ValueError(f"LiDAR needs at least 2 views of 2 images, got {q} of {n}")
    e = _unit_rows(views.reshape(q * n, d)).reshape(q, n, d)
    class_means = e.mean(dim=0)  # (n, d)
    between = class_means - class_means.mean(dim=0, keepdim=True)
    sigma_b = between.T @ between / (n - 1)
    within = (e - class_means[None]).reshape(q * n, d)
    sigma_w = within.T @ within / (n * (q - 1))
    sigma_w = sigma_w + delta * torch.eye(d, dtype=sigma_w.dtype, device=sigma_w.device)
    w_values, w_vectors = torch.linalg.eigh(sigma_w)
    inverse_sqrt = (w_vectors * w_values.clamp_min(delta).rsqrt()) @ w_vectors.T
    eigenvalues = _symmetric_eigenvalues(inverse_sqrt @ sigma_b @ inverse_sqrt)
    total = eigenvalues.sum()
    # identical class means differ by float64 rounding of unit rows (about eps per entry):
    # a between-class scatter at that level is none
    if total <= 100 * d * torch.finfo(torch.float64).eps ** 2 / delta:
        return 1.0
    p = eigenvalues / total + eps
    return float(torch.exp(-(p * torch.log(p)).sum()))


def augmentation_variance_ratios(
    z: torch.Tensor, z_view1: torch.Tensor, z_view2: torch.Tensor, top: int = TOP_DIRECTIONS
) -> tuple[float, list[float]] | None:
    """Augmentation-to-data variance ratio along the embedding's top principal directions:
    Jing, Vincent, LeCun and Tian, "Understanding Dimensional Collapse in Contrastive
    Self-supervised Learning" (ICLR 2022), mechanism 1: where the augmentation varies an
    embedding direction about as much as the data does, gradient descent shrinks that
    direction until it collapses.

    z: (N, d) clean probe embeddings; z_view1, z_view2: (P, d) two augmented views of P probe
    images, row i of each the same image. With u_k the k-th eigenvector of the covariance of
    z (raw, centred: a ratio of two variances along one direction needs no normalisation) and
    lambda_k its eigenvalue (the data's variance along u_k), the views' within-image variance
    along u_k is a_k = mean_i (u_k . (v1_i - v2_i))^2 / 2 (the unbiased variance of two
    values), and r_k = a_k / lambda_k. Returns (sum_k a_k / sum_k lambda_k, [r_1 .. r_top]):
    the scalar is the variance-weighted mean of the r_k. 0 when the views of an image embed
    identically; about 1 when the views vary as much as the images do (the direction says
    nothing about which image it is); above 1 when augmentation dominates. Directions with
    no data variance (below ``DIRECTION_FLOOR`` of the largest) are left out; None when none
    is left (complete collapse).
    """
    x = z.double()
    centred = x - x.mean(dim=0, keepdim=True)
    covariance = centred.T @ centred / max(x.shape[0] - 1, 1)
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)  # ascending
    eigenvalues, eigenvectors = eigenvalues.flip(0)[:top], eigenvectors.flip(1)[:, :top]
    if eigenvalues.numel() == 0 or float(eigenvalues[0]) <= 0:
        return None
    kept = eigenvalues > DIRECTION_FLOOR * eigenvalues[0]
    data_variance, directions = eigenvalues[kept], eigenvectors[:, kept]  # (k,), (d, k)
    difference = (z_view1.double() - z_view2.double()).to(directions.device) @ directions
    view_variance = difference.pow(2).mean(dim=0) / 2  # (k,)
    ratios = (view_variance / data_variance).tolist()
    return float(view_variance.sum() / data_variance.sum()), ratios


def _several_classes(labels: torch.Tensor | None) -> TypeGuard[torch.Tensor]:
    """Whether ``labels`` hold two classes or more: over one, every kNN vote is right."""
    return labels is not None and labels.numel() > 0 and bool((labels != labels[0]).any())


def embedding_diagnostics(
    z: torch.Tensor,
    z_view1: torch.Tensor | None,
    z_view2: torch.Tensor | None,
    labels: torch.Tensor | None,
    bank: torch.Tensor | None,
    bank_labels: torch.Tensor | None,
    num_classes: int | None,
    k: int = 20,
    assignments: torch.Tensor | None = None,
    num_clusters: int | None = None,
    cluster_probabilities: torch.Tensor | None = None,
    prototypes: torch.Tensor | None = None,
    lidar_views: torch.Tensor | None = None,
) -> EmbeddingMetrics:
    """All diagnostics of one embedding (backbone h or projector z), as its typed record.

    z: (N, d) clean probe embeddings; z_view1, z_view2: (P, d) embeddings of two augmented
    views of (a subset of) the probe images, row i of each a positive pair; labels: (N,)
    probe labels; bank: (M, d) training-set embeddings with bank_labels (M,) for the kNN
    classifier; assignments: optional (N,) cluster / prototype index per probe sample
    (SwAV, DeepCluster) with num_clusters clusters; cluster_probabilities: optional (N, K)
    soft assignments and prototypes (K, d) for the cluster-health fields; lidar_views:
    optional (q, n, d) embeddings of q augmented views of n probe images for LiDAR.

    Without views (None), alignment, cos_pos and the augmentation ratios are None and
    cos_rand pairs probe rows with each other; without a bank, kNN is leave-one-out over the
    probe itself; without labels, or with voters of one class only (an image folder of one
    class folder: every vote is right), knn_top1 is None (external runs may send neither). The
    cluster fields are None without assignments / prototypes, lidar without lidar_views.
    Raises :class:`NonFiniteEmbeddingError` when an embedding holds NaN or infinity.
    """
    for name, tensor in (("probe", z), ("view", z_view1), ("view", z_view2), ("bank", bank)):
        if tensor is not None:
            _check_finite(tensor, name)
    if lidar_views is not None:
        _check_finite(lidar_views, "LiDAR view")
    with torch.no_grad():
        dim = int(z.shape[1])
        std = std_l2(z)
        if z_view1 is not None and z_view2 is not None:
            cos_pos, cos_rand = cosine_stats(z_view1, z_view2)
            align: float | None = alignment(z_view1, z_view2)
        else:
            cos_rand = cosine_stats(z, z)[1]
            cos_pos, align = None, None
        knn: float | None = None
        if bank is None or bank_labels is None:  # the probe votes for itself, leave-one-out
            voters, voter_labels, leave_one_out = z, labels, True
        else:
            voters, voter_labels, leave_one_out = bank, bank_labels, False
        if labels is not None and num_classes and _several_classes(voter_labels):
            knn = knn_top1(
                voters, voter_labels, z, labels, num_classes, k=k, exclude_self=leave_one_out
            )
        eigenvalues = covariance_eigenvalues(z)
        entropy: float | None = None
        entropy_max: float | None = None
        if assignments is not None:
            if num_clusters is None:
                raise ValueError("num_clusters is required with assignments")
            entropy = cluster_entropy(assignments, num_clusters)
            entropy_max = math.log(num_clusters)
        augmentation = None
        if z_view1 is not None and z_view2 is not None:
            augmentation = augmentation_variance_ratios(z, z_view1, z_view2)
        return EmbeddingMetrics(
            dim=dim,
            std_l2=std,
            std_l2_sqrt_d=std * math.sqrt(dim),
            effective_rank=effective_rank(z),
            scale=raw_scale(z),
            total_scale=raw_total_scale(z),
            spectrum=_log_spectrum(eigenvalues),
            participation_ratio=participation_ratio(eigenvalues),
            nesum=nesum(eigenvalues),
            w2_uniformity=w2_uniformity(z, eigenvalues),
            variance_shares=variance_shares(eigenvalues),
            alignment=align,
            uniformity=uniformity(z),
            cos_pos=cos_pos,
            cos_rand=cos_rand,
            knn_top1=knn,
            cluster_entropy=entropy,
            cluster_entropy_max=entropy_max,
            cluster_perplexity=(
                None if cluster_probabilities is None else cluster_perplexity(cluster_probabilities)
            ),
            distinct_prototypes=None if prototypes is None else distinct_prototypes(prototypes),
            distinct_samples=None if prototypes is None else distinct_samples(z, len(prototypes)),
            num_prototypes=None if prototypes is None else int(prototypes.shape[0]),
            lidar=None if lidar_views is None else lidar(lidar_views),
            augmentation_variance_ratio=None if augmentation is None else augmentation[0],
            augmentation_variance_ratios=None if augmentation is None else augmentation[1],
        )
