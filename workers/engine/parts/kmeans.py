"""Spherical k-means in torch, with DeepCluster's empty-cluster reassignment."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

PERTURBATION = 1e-3  # size of the nudge that splits a centroid in two (relative, unit vectors)


@dataclass
class KMeansStats:
    """What a k-means run did, filled in by :func:`kmeans`: empty clusters reassigned (split
    off a non-empty one) over all its iterations."""

    reassigned: int = 0


@torch.no_grad()
def kmeans(
    x: torch.Tensor,
    k: int,
    iters: int,
    generator: torch.Generator,
    reassign_empty: bool,
    init: torch.Tensor | None = None,
    stats: KMeansStats | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cluster ℓ2-normalised features by cosine similarity (spherical k-means, as in
    DeepCluster-v2, Caron et al. 2020).

    x: (N, d) features (normalised here). k: number of clusters. iters: Lloyd iterations.
    generator: seeds the k-means++ initialisation and the reassignment choices.
    init: optional (k, d) starting centroids instead of k-means++ (Arthur & Vassilvitskii 2007).
    Returns centroids (k, d), unit norm, and assignments (N,) int64 in [0, k).

    ``reassign_empty`` applies DeepCluster's fix (Caron et al. 2018, Sec. 3.3): when a cluster
    is empty, pick a random non-empty cluster, use its centroid with a small random
    perturbation as the new centroid (the original is nudged the opposite way) and split that
    cluster's points between the two by proximity. Without it an empty cluster keeps its old
    centroid and stays empty. ``stats``, when given, counts the reassignments.
    """
    x = F.normalize(x.float(), dim=1)
    centroids = _kmeans_plus_plus(x, k, generator) if init is None else init.float().to(x.device)
    centroids = F.normalize(centroids, dim=1)
    assignments = _assign(x, centroids)
    for _ in range(iters):
        centroids = _update(x, assignments, centroids)
        assignments = _assign(x, centroids)
        if reassign_empty:
            centroids, assignments, count = _reassign_empty(x, centroids, assignments, generator)
            if stats is not None:
                stats.reassigned += count
    return centroids, assignments


def _kmeans_plus_plus(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding with the cosine distance: x (N, d) unit norm -> (k, d) samples, each
    drawn with probability proportional to its squared distance to the nearest one so far
    (uniformly when every sample coincides with a chosen one, e.g. a collapsed embedding)."""
    n = x.shape[0]
    first = int(torch.randint(n, (1,), generator=generator))
    chosen = [first]
    nearest = (1 - x @ x[first]).clamp_min(0)  # (N,) cosine distance to the closest centroid
    for _ in range(k - 1):
        weights = nearest.pow(2).cpu().double()
        if weights.sum() <= 0:
            weights = torch.ones(n, dtype=torch.double)
        pick = int(torch.multinomial(weights, 1, generator=generator))
        chosen.append(pick)
        nearest = torch.minimum(nearest, (1 - x @ x[pick]).clamp_min(0))
    return x[chosen]


def _assign(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """x: (N, d), centroids: (k, d), both unit norm -> (N,) index of the most similar."""
    return (x @ centroids.t()).argmax(dim=1)


def _update(x: torch.Tensor, assignments: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """New centroids (k, d): normalised mean of each cluster; empty clusters keep theirs."""
    k = centroids.shape[0]
    sums = torch.zeros_like(centroids).index_add_(0, assignments, x)
    counts = torch.bincount(assignments, minlength=k)
    updated = F.normalize(sums, dim=1)
    return torch.where((counts > 0).unsqueeze(1), updated, centroids)


def _reassign_empty(
    x: torch.Tensor,
    centroids: torch.Tensor,
    assignments: torch.Tensor,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Split a random non-empty cluster for every empty one (see :func:`kmeans`); also
    returns how many were split."""
    k, d = centroids.shape
    centroids, assignments = centroids.clone(), assignments.clone()
    counts = torch.bincount(assignments, minlength=k)
    reassigned = 0
    for empty in torch.nonzero(counts == 0).flatten().tolist():
        splittable = torch.nonzero(counts > 1).flatten()
        if splittable.numel() == 0:
            break
        choice = torch.randint(splittable.numel(), (1,), generator=generator, device="cpu")
        donor = int(splittable[int(choice.item())])
        noise = torch.randn(d, generator=generator, device="cpu").to(x.device) * PERTURBATION
        base = centroids[donor]
        centroids[empty] = F.normalize(base + noise, dim=0)
        centroids[donor] = F.normalize(base - noise, dim=0)
        members = torch.nonzero(assignments == donor).flatten()
        pair = centroids[[donor, empty]]
        closer_to_new = (x[members] @ pair.t()).argmax(dim=1) == 1
        if not closer_to_new.any():  # identical points: hand half of them to the new cluster
            closer_to_new[: members.numel() // 2] = True
        elif closer_to_new.all():
            closer_to_new[0] = False
        assignments[members[closer_to_new]] = empty
        counts[empty] = int(closer_to_new.sum())
        counts[donor] -= counts[empty]
        reassigned += 1
    return centroids, assignments, reassigned
