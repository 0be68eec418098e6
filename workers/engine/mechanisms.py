"""Mechanism signals: how each family's guard against collapse is doing, on the probe.

Every family keeps its embedding from collapsing with a specific guard, and each guard has a
measurable signature (docs/mechanisms.md): the asymmetric branch (predictor, stop-gradient,
momentum target), negatives (InfoNCE), balanced assignments (Sinkhorn, empty-cluster
reassignment, DINO's centering), decorrelation and variance terms. The functions here compute
those signatures from tensors; the built-in methods call them from their
:meth:`~workers.engine.methods.base.Method.probe_logs` hook on the fixed probe, and the
external ingest (:mod:`workers.engine.probe`) calls the same functions on the internals an
external loop sends. Each signal is declared once, under the name of the dict key returned
here, in ``contract.metrics.METHOD_INTERNALS``.

Everything is computed in float64 on small matrices (d x d, K-wide rows): cheap beside an
epoch (bench/bench_monitoring.py prints the share).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F

from workers.engine.metrics import effective_rank
from workers.engine.parts import off_diagonal

# How many of the leading eigenvectors of F the predictor's alignment averages over (Tian et
# al. plot the leading ones; past the top few the eigenvalues of a small probe are noise).
TOP_EIGENVECTORS = 8
# How many leading singular vectors of adjacent projector layers are compared (Jing et al.).
TOP_SINGULAR_VECTORS = 8
# Eigenvalues below this fraction of the largest are no direction (a collapsed input).
RELATIVE_EIGEN_FLOOR = 1e-6
VARIANCE_EPS = 1e-4  # VICReg's epsilon inside the standard deviation (Bardes et al. 2022)


# ---------------------------------------------------------------- asymmetric branch


def _cosines(a: torch.Tensor, b: torch.Tensor, dim: int) -> torch.Tensor:
    """Cosine of a and b along ``dim`` in float64, each scaled by its largest entry first:
    F.cosine_similarity floors each norm at 1e-8, which reads rows of size 1e-10 (an
    embedding shrunk towards the origin) as nearly orthogonal. A zero vector gives 0."""

    def unit(x: torch.Tensor) -> torch.Tensor:
        x = x.double()
        x = x / x.abs().max().clamp_min(torch.finfo(torch.float64).tiny)
        return F.normalize(x, dim=dim, eps=1e-300)

    return (unit(a) * unit(b)).sum(dim=dim)


def online_target_cosine(online: torch.Tensor, target: torch.Tensor) -> float:
    """Mean cosine between the online branch's output (the predictor's p, or the projection
    where there is no predictor) and the target branch's projection of the same image.
    online, target: (N, d). 1: the online branch reproduces the target (nothing left to
    learn: collapsed or converged); a healthy BYOL / SimSiam stays below it while it learns
    (Grill et al., NeurIPS 2020; Chen & He, CVPR 2021)."""
    return float(_cosines(online, target, dim=1).mean())


def parameter_distance(target: Iterable[torch.Tensor], online: Iterable[torch.Tensor]) -> float:
    """||θ_target − θ_online|| / ||θ_online|| over matching parameter lists: 0 when the target
    is the online network (EMA momentum 0: BYOL Table 5, DINO Fig. 6 collapse there), larger
    the further the momentum target lags behind."""
    difference = 0.0
    norm = 0.0
    for t, o in zip(target, online, strict=True):
        difference += float((t.detach().double() - o.detach().double()).pow(2).sum())
        norm += float(o.detach().double().pow(2).sum())
    return math.sqrt(difference) / math.sqrt(norm) if norm > 0 else 0.0


def least_squares_predictor(z: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """The linear map W (d_p, d_z) that best predicts p from z on the probe, both centred:
    argmin_W ||(p - p̄) - (z - z̄) W^T||_F (minimum-norm where z is rank-deficient). A
    non-linear predictor is studied through this map, as Tian et al.'s analysis is of a
    linear one. Singular values of the centred z under 1e-9 of z's own norm are no direction
    (a collapsed z centres to rounding noise, which a tolerance relative to the noise would
    fit): a z without variance gives the zero map. z: (N, d_z), p: (N, d_p)."""
    zc = z.double() - z.double().mean(dim=0)
    pc = p.double() - p.double().mean(dim=0)
    tolerance = 1e-9 * float(torch.linalg.matrix_norm(z.double(), ord=2))
    weight: torch.Tensor = (torch.linalg.pinv(zc, atol=tolerance, rtol=0.0) @ pc).T
    return weight


def input_correlation(z: torch.Tensor) -> torch.Tensor:
    """F = E[z z^T] (d, d): the correlation of the predictor's inputs over the probe, as in
    Tian, Chen & Ganguli (ICML 2021, Eq. 3). z: (N, d)."""
    x = z.double()
    return x.T @ x / x.shape[0]


def predictor_commutator(correlation: torch.Tensor, weight: torch.Tensor) -> float:
    """||F W_p − W_p F||_F / (||F||_F ||W_p||_F) (Tian, Chen & Ganguli, ICML 2021, arXiv
    2102.06810, Sec. 4: in a non-collapsed BYOL / SimSiam the predictor comes to commute with
    F, sharing its eigenbasis). 0: aligned (W_p a function of F); at most 2; a random W_p
    against an F with spread eigenvalues sits well above 0. 0 also when F or W_p is zero."""
    w = weight.double()
    norms = float(correlation.norm() * w.norm())
    if norms <= 0:
        return 0.0
    return float((correlation @ w - w @ correlation).norm()) / norms


def predictor_eigen_alignment(
    correlation: torch.Tensor, weight: torch.Tensor, top: int = TOP_EIGENVECTORS
) -> float:
    """Mean over the top eigenvectors u_j of F of cos(W_p u_j, u_j) (Tian, Chen & Ganguli,
    ICML 2021, Fig. 3): 1 when each leading eigenvector of the inputs' correlation is an
    eigenvector of the predictor with a positive eigenvalue (DirectPred sets W_p this way),
    about 0 for a random predictor, negative when W_p reverses them. Eigenvectors with an
    eigenvalue under 1e-6 of the largest are left out (no direction); 0 when none is left."""
    eigenvalues, eigenvectors = torch.linalg.eigh(correlation)
    order = torch.argsort(eigenvalues, descending=True)
    floor = RELATIVE_EIGEN_FLOOR * float(eigenvalues.abs().max().clamp_min(1e-300))
    kept = [int(j) for j in order[:top] if float(eigenvalues[j]) > floor]
    if not kept:
        return 0.0
    u = eigenvectors[:, kept]  # (d, k)
    mapped = weight.double() @ u
    return float(_cosines(mapped, u, dim=0).mean())


def predictor_symmetry(weight: torch.Tensor) -> float:
    """||(W_p + W_p^T) / 2||_F / ||W_p||_F: 1 symmetric (DirectPred's predictor; Tian et al.
    show a symmetric predictor suffices), 1/√2 for a random square matrix, 0 antisymmetric.
    0 for a zero predictor."""
    w = weight.double()
    norm = float(w.norm())
    return float(((w + w.T) / 2).norm()) / norm if norm > 0 else 0.0


def rank_differential(target: torch.Tensor, prediction: torch.Tensor) -> float:
    """erank(target) − erank(prediction) (Zhuo, Wang, Ma, Wang, ICLR 2023, "Towards a Unified
    Theoretical Understanding of Non-contrastive Learning via Rank Differential Mechanism"):
    the asymmetric branch keeps learning while the target's effective rank (RankMe, the same
    measure as the embedding's) stays above the prediction's; about 0 when the predictor no
    longer lifts the rank. target, prediction: (N, d)."""
    return effective_rank(target) - effective_rank(prediction)


def predictor_signals(z: torch.Tensor, weight: torch.Tensor) -> dict[str, float]:
    """The predictor's commutator, eigen-alignment and symmetry against F, the correlation
    of its inputs z (N, d); weight (d, d) the predictor (or its least-squares map). {} for a
    map that is not square on z's space (the commutator needs one)."""
    if not weight.shape[0] == weight.shape[1] == z.shape[1]:
        return {}
    correlation = input_correlation(z)
    return {
        "predictor_commutator": predictor_commutator(correlation, weight),
        "predictor_eigen_alignment": predictor_eigen_alignment(correlation, weight),
        "predictor_symmetry": predictor_symmetry(weight),
    }


def asymmetric_signals(
    z: torch.Tensor,
    p: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
) -> dict[str, float]:
    """The asymmetric branch's signals on one view of the probe. z: (N, d) the predictor's
    inputs (the online projection), p: (N, d) its outputs, target: (N, d) the target branch's
    projection of the other view; weight: (d, d) a linear predictor's matrix, or None to use
    the least-squares map from z to p. With no predictor pass p = z: the predictor signals
    are then those of the identity. ``online_target_cosine`` compares p with the target,
    ``projection_target_cosine`` z (the online projection) where it has the target's shape."""
    w = least_squares_predictor(z, p) if weight is None else weight.double()
    gap = (
        {"projection_target_cosine": online_target_cosine(z, target)}
        if z.shape == target.shape
        else {}
    )
    return {
        "online_target_cosine": online_target_cosine(p, target),
        **gap,
        "rank_differential": rank_differential(target, p),
        **predictor_signals(z, w),
    }


# ---------------------------------------------------------------- contrastive


def infonce_split(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> dict[str, float]:
    """NT-Xent split into its two parts (Wang & Isola, ICML 2020, Eq. 1 written as alignment
    plus uniformity), on the 2N anchors of two views z1, z2: (N, d):
    l_i = −s_ip/τ + log Σ_{k≠i} exp(s_ik/τ), s the cosine similarity.

    infonce_alignment: mean of −s_ip/τ (−1/τ when the two views agree exactly);
    infonce_repulsion: mean of the log-sum-exp (their sum is the loss);
    effective_negatives: the perplexity exp(H(w_i)) of the softmax weights w_ik over the
    2N − 2 negatives of anchor i (positive and self left out), averaged over anchors: 2N − 2
    when every negative pushes equally (a random or a collapsed embedding), a handful when a
    few hard negatives carry all the repulsion. {} for N < 2 (no negatives)."""
    if z1.shape[0] < 2:
        return {}
    z = F.normalize(torch.cat([z1, z2]).double(), dim=1)
    n = z1.shape[0]
    logits = z @ z.T / temperature
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    anchors = torch.arange(2 * n, device=z.device)
    positive_logits = logits[anchors, positives]
    repulsion = torch.logsumexp(logits.masked_fill(self_mask, -math.inf), dim=1)
    negative_mask = self_mask.clone()
    negative_mask[anchors, positives] = True
    weights = F.softmax(logits.masked_fill(negative_mask, -math.inf), dim=1)
    entropy = -torch.special.xlogy(weights, weights).sum(dim=1)
    return {
        "infonce_alignment": float(-positive_logits.mean()),
        "infonce_repulsion": float(repulsion.mean()),
        "effective_negatives": float(entropy.exp().mean()),
    }


def top_singular_vectors(matrix: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The left (m, k) and right (n, k) singular vectors of the k largest singular values of
    an (m, n) matrix, from the eigen-decomposition of its smaller Gram matrix (a projector's
    2048-wide layer needs a 128 x 128 or 512 x 512 one, not a full SVD). Directions with no
    singular value are returned as zero vectors."""
    m = matrix.detach().double()
    small_left = m.shape[0] <= m.shape[1]
    gram = m @ m.T if small_left else m.T @ m
    eigenvalues, eigenvectors = torch.linalg.eigh(gram)
    order = torch.argsort(eigenvalues, descending=True)[:k]
    sigma = eigenvalues[order].clamp_min(0).sqrt()
    found = eigenvectors[:, order]
    scale = torch.where(sigma > 0, 1 / sigma.clamp_min(1e-300), torch.zeros_like(sigma))
    other = (m.T @ found if small_left else m @ found) * scale
    return (found, other) if small_left else (other, found)


def projector_layer_alignment(
    weights: list[torch.Tensor], top: int = TOP_SINGULAR_VECTORS
) -> float | None:
    """Alignment of adjacent projector layers' singular vectors (Jing, Vincent, LeCun, Tian,
    ICLR 2022, "Understanding Dimensional Collapse in Contrastive Self-supervised Learning",
    mechanism 2: implicit regularisation aligns the left singular vectors of W_a with the right
    ones of the next layer W_b, V_b^T U_a -> I, and collapses the small ones). For each
    adjacent pair W_a (h, in), W_b (out, h): mean over the top ``top`` singular pairs i of
    |<u_a,i, v_b,i>|; averaged over pairs. 1: aligned; about sqrt(2 / (π h)) at random
    initialisation. None with fewer than two layers."""
    pairs = list(itertools.pairwise(weights))
    if not pairs:
        return None
    scores = []
    for first, second in pairs:
        k = min(top, *first.shape, *second.shape)
        u_first = top_singular_vectors(first, k)[0]  # (h, k)
        v_second = top_singular_vectors(second, k)[1]  # (h, k)
        scores.append(float((u_first * v_second).sum(dim=0).abs().mean()))
    return sum(scores) / len(scores)


# ---------------------------------------------------------------- clustering and DINO


def mean_entropy(probs: torch.Tensor) -> torch.Tensor:
    """Mean per-sample entropy -sum_k p_k ln p_k of (N, K) probabilities (0 ln 0 = 0): 0 for
    one-hot rows, ln K for uniform ones. DINO Sec. 5.3's h(P_t)."""
    entropy: torch.Tensor = -torch.special.xlogy(probs, probs).sum(dim=-1).mean()
    return entropy


def mean_kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Mean per-sample KL(p || q) = sum_k p_k (ln p_k - ln q_k) of (N, K) probabilities.
    DINO Sec. 5.3: the cross-entropy is H(P_t, P_s) = h(P_t) + KL(P_t || P_s), and KL -> 0
    means the student has nothing left to learn from the teacher: collapse.

    q is floored at float32's smallest normal number (a float32 softmax rounds smaller
    probabilities to 0): a student that gives the teacher's prototype no mass has a KL of
    about 87 nats, not an infinite one the store could not keep."""
    floor = torch.finfo(torch.float32).tiny
    kl = torch.special.xlogy(p, p) - torch.special.xlogy(p, q.clamp_min(floor))
    mean: torch.Tensor = kl.sum(dim=-1).clamp_min(0).mean()  # >= 0 but for rounding
    return mean


def usage_entropy(probs: torch.Tensor) -> float:
    """Entropy (nats) of the clusters' usage, the mean assignment p̄ = mean_i p(k | x_i) of
    (N, K) soft (or one-hot) assignments: ln K when every cluster gets the same mass, 0 when
    one cluster takes everything (Caron et al. 2020, SwAV Sec. 3.1: the equipartition
    constraint)."""
    mean = probs.double().mean(dim=0)
    mean = mean / mean.sum().clamp_min(1e-300)
    return float(-torch.special.xlogy(mean, mean).sum())


def balancing_signals(before: torch.Tensor, after: torch.Tensor) -> dict[str, float]:
    """What balancing did to one probe's assignments: before (N, K) the assignments without
    it (SwAV: softmax(scores / ε) without Sinkhorn; DINO: the teacher's softmax without
    centering), after (N, K) those the loss uses (Sinkhorn's codes; the centred teacher).
    assignment_entropy: the mean per-sample entropy of the balanced assignments (0: one-hot,
    sharp; ln K: uniform, no sharpening); usage_entropy_before/after_balancing."""
    return {
        "assignment_entropy": float(mean_entropy(after.double())),
        "usage_entropy_before_balancing": usage_entropy(before),
        "usage_entropy_after_balancing": usage_entropy(after),
    }


def one_hot_usage(assignments: torch.Tensor, num_clusters: int) -> torch.Tensor:
    """(N,) hard cluster ids -> (N, K) one-hot rows, for :func:`usage_entropy`."""
    return F.one_hot(assignments.long(), num_clusters).double()


# ---------------------------------------------------------------- redundancy reduction


def dims_under_variance_hinge(z: torch.Tensor, target_std: float = 1.0) -> float:
    """Fraction of the d dimensions whose standard deviation over the probe,
    sqrt(Var(z_j) + ε), is below the variance hinge's target γ (VICReg, Bardes et al., ICLR
    2022, Eq. 1): those are the dimensions the variance term still pushes. 0 healthy, 1
    when every dimension has shrunk (collapse). z: (N, d)."""
    std = torch.sqrt(z.double().var(dim=0) + VARIANCE_EPS)
    return float((std < target_std).double().mean())


def off_diagonal_energy(z: torch.Tensor) -> float:
    """Σ_{i≠j} C_ij² / d with C the (d, d) correlation matrix of z over the probe (Zbontar et
    al., ICML 2021, the redundancy-reduction term; Bardes et al., ICLR 2022, the covariance
    term on standardised dimensions). 0: decorrelated dimensions; d − 1 when every dimension
    is the same variable (dimensional collapse onto one direction). Dimensions without
    variance (under 1e-12 of their own mean's size: a constant column at 1e6 keeps rounding
    noise that would correlate perfectly) count as uncorrelated. z: (N, d)."""
    mean = z.double().mean(dim=0)
    x = z.double() - mean
    std = x.pow(2).mean(dim=0).sqrt()
    live = std > 1e-12 * torch.maximum(mean.abs(), torch.ones_like(mean))
    x = x[:, live] / std[live]
    correlation = x.T @ x / x.shape[0]
    return float(off_diagonal(correlation).pow(2).sum()) / z.shape[1]
