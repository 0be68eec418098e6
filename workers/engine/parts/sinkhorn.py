"""Sinkhorn-Knopp equipartition of samples over prototypes, as in SwAV."""

from __future__ import annotations

import torch


@torch.no_grad()
def sinkhorn_knopp(scores: torch.Tensor, epsilon: float, iterations: int) -> torch.Tensor:
    """Soft codes with equal prototype usage (Caron et al. 2020, SwAV, Sec. 3.1 and Alg. 1).

    scores: (B, K) similarities between B samples and K prototypes.
    Returns codes (B, K): each row sums to 1 (a distribution over prototypes) and, after
    enough iterations, each column sums to B / K (every prototype used equally). Computes
    Q = exp(scores / epsilon), then alternately normalises prototype (row of Q^T) and
    sample marginals ``iterations`` times, ending with the sample marginal so rows are exact.
    """
    logits = scores.float() / epsilon
    q = torch.exp(logits - logits.max()).t()  # (K, B)
    num_prototypes, batch = q.shape
    q /= q.sum()
    for _ in range(iterations):
        q /= q.sum(dim=1, keepdim=True)
        q /= num_prototypes
        q /= q.sum(dim=0, keepdim=True)
        q /= batch
    return (q * batch).t()
