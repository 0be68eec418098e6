"""Collapse diagnostics computed on a fixed held-out probe set, once per epoch.

Every function takes torch tensors on any device (CPU or CUDA) and returns plain Python
numbers, so the result of :func:`embedding_diagnostics` can go straight into the JSON epoch
record. Spectral quantities are computed in float64 (float32 eigen-solvers lose the small
singular values that tell a collapsed embedding from a healthy one).

Shapes: ``N`` probe samples, ``d`` embedding dimensions, ``M`` bank (training) samples.
Definitions follow ``DESIGN.md``; none of them loops over samples in Python.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

RANKME_EPS = 1e-7  # added to p_k inside the log, as in Garrido et al. (2023)
SPECTRUM_FLOOR = 1e-20  # eigenvalues below this are clamped before the log (exact zeros)
UNIFORMITY_MAX_SAMPLES = 1024  # pairwise distances on a fixed subsample: O(n^2) stays cheap
KNN_TEMPERATURE = 0.07  # InstDisc / solo-learn weighted kNN temperature
KNN_QUERY_CHUNK = 512  # queries per similarity matmul, bounds memory to chunk x M floats
_FIXED_SEED = 0  # the random-pair permutation and the uniformity subsample never change


def _unit_rows(z: torch.Tensor) -> torch.Tensor:
    """(N, d) -> (N, d) float32 rows scaled to unit l2 norm (all-zero rows stay zero)."""
    return F.normalize(z.float(), dim=1, eps=1e-12)


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
    return float(_unit_rows(z).double().std(dim=0).mean())


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
    except torch.linalg.LinAlgError:
        eigenvalues = torch.linalg.svdvals(matrix / scale)
    return eigenvalues.clamp_min(0.0) * scale


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


def singular_spectrum(z: torch.Tensor) -> list[float]:
    """Log singular values of the covariance of the l2-normalised embeddings, descending
    (Jing et al., "Understanding Dimensional Collapse in Contrastive SSL", ICLR 2022).

    z: (N, d) -> list of d floats. The covariance is symmetric positive semi-definite, so
    its singular values are its eigenvalues; they are clamped at 1e-20 before the log (a
    collapsed embedding has exact zeros). Rows are normalised first so spectra compare
    across methods whose raw output scales differ; exp(spectrum) sums to the total variance
    of z/||z||, which is 0 for complete collapse and 1 - ||mean||^2 in general.
    """
    n = z.shape[0]
    unit = _unit_rows(z).double()
    centred = unit - unit.mean(dim=0, keepdim=True)
    covariance = centred.T @ centred / max(n - 1, 1)
    eigenvalues = _symmetric_eigenvalues(covariance)
    return torch.log(eigenvalues.clamp_min(SPECTRUM_FLOOR)).tolist()


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
    off_diagonal = ~torch.eye(len(unit), dtype=torch.bool, device=unit.device)
    values = squared[off_diagonal].double()
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
) -> float:
    """Top-1 accuracy of a weighted cosine k-nearest-neighbour classifier.

    bank: (M, d) training features, bank_labels: (M,) int; query: (N, d) probe features,
    query_labels: (N,) int. Each query takes its k most cosine-similar bank samples; each
    neighbour votes for its label with weight exp(cos / temperature) (Wu et al. 2018,
    InstDisc; the same classifier as solo-learn's WeightedKNNClassifier and lightly's
    knn_predict, temperature 0.07). Labels are used for monitoring only. Returns the
    fraction of queries whose top-voted class equals their label; chance is about
    1/num_classes, and a collapsed embedding scores about chance (or the majority class).
    """
    bank_unit = _unit_rows(bank)
    bank_labels = bank_labels.to(bank_unit.device).long()
    k = min(k, bank_unit.shape[0])
    correct = 0
    for start in range(0, query.shape[0], KNN_QUERY_CHUNK):
        chunk = _unit_rows(query[start : start + KNN_QUERY_CHUNK].to(bank_unit.device))
        similarity = chunk @ bank_unit.T  # (n, M)
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


def embedding_diagnostics(
    z: torch.Tensor,
    z_view1: torch.Tensor,
    z_view2: torch.Tensor,
    labels: torch.Tensor,
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    num_classes: int,
    k: int = 20,
    assignments: torch.Tensor | None = None,
    num_clusters: int | None = None,
) -> dict[str, Any]:
    """All diagnostics of one embedding (backbone h or projector z) as a JSON-ready dict.

    z: (N, d) clean probe embeddings; z_view1, z_view2: (P, d) embeddings of two augmented
    views of (a subset of) the probe images, row i of each a positive pair; labels: (N,)
    probe labels; bank: (M, d) training-set embeddings with bank_labels (M,) for the kNN
    classifier; assignments: optional (N,) cluster / prototype index per probe sample
    (SwAV, DeepCluster) with num_clusters clusters.

    Returns {"dim", "std_l2", "std_l2_sqrt_d", "effective_rank", "spectrum", "alignment",
    "uniformity", "cos_pos", "cos_rand", "knn_top1", "cluster_entropy",
    "cluster_entropy_max"}; the two cluster fields are None without assignments.
    Raises :class:`NonFiniteEmbeddingError` when an embedding holds NaN or infinity.
    """
    for name, tensor in (("probe", z), ("view", z_view1), ("view", z_view2), ("bank", bank)):
        _check_finite(tensor, name)
    with torch.no_grad():
        dim = int(z.shape[1])
        std = std_l2(z)
        cos_pos, cos_rand = cosine_stats(z_view1, z_view2)
        entropy: float | None = None
        entropy_max: float | None = None
        if assignments is not None:
            if num_clusters is None:
                raise ValueError("num_clusters is required with assignments")
            entropy = cluster_entropy(assignments, num_clusters)
            entropy_max = math.log(num_clusters)
        return {
            "dim": dim,
            "std_l2": std,
            "std_l2_sqrt_d": std * math.sqrt(dim),
            "effective_rank": effective_rank(z),
            "spectrum": singular_spectrum(z),
            "alignment": alignment(z_view1, z_view2),
            "uniformity": uniformity(z),
            "cos_pos": cos_pos,
            "cos_rand": cos_rand,
            "knn_top1": knn_top1(bank, bank_labels, z, labels, num_classes, k=k),
            "cluster_entropy": entropy,
            "cluster_entropy_max": entropy_max,
        }
