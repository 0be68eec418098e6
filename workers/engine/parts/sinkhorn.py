"""Sinkhorn-Knopp equipartition of samples over prototypes, as in SwAV."""

from __future__ import annotations

import math

import torch


@torch.no_grad()
def sinkhorn_knopp(scores: torch.Tensor, epsilon: float, iterations: int) -> torch.Tensor:
    """Soft codes with equal prototype usage (Caron et al. 2020, SwAV, Sec. 3.1 and Alg. 1).

    scores: (B, K) similarities between B samples and K prototypes.
    Returns codes (B, K): each row sums to 1 (a distribution over prototypes) and, after
    enough iterations, each column sums to B / K (every prototype used equally). Computes
    Q = exp(scores / epsilon), then alternately normalises prototype (row of Q^T) and
    sample marginals ``iterations`` times, ending with the sample marginal so rows are exact.
    Computed in the log domain (at float32 or the scores' wider precision): exp(scores /
    epsilon) neither overflows at a small epsilon nor underflows to a row or column of
    zeros (0 / 0), where the plain iteration gives NaN; the codes are the same where it
    does not.
    """
    logits = scores.to(torch.promote_types(scores.dtype, torch.float32)).t() / epsilon
    num_prototypes, batch = logits.shape  # (K, B)
    log_q = logits - torch.logsumexp(logits.flatten(), dim=0)
    for _ in range(iterations):
        log_q = log_q - torch.logsumexp(log_q, dim=1, keepdim=True) - math.log(num_prototypes)
        log_q = log_q - torch.logsumexp(log_q, dim=0, keepdim=True) - math.log(batch)
    return (log_q + math.log(batch)).exp().t()
