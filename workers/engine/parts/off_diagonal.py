"""The off-diagonal entries of a square matrix, for the redundancy-reduction terms."""

from __future__ import annotations

import torch


def off_diagonal(matrix: torch.Tensor) -> torch.Tensor:
    """The d(d-1) entries of a (d, d) matrix off its diagonal, flattened: (d*(d-1),).

    Summed as they are, not as the whole matrix minus its diagonal: a diagonal far larger
    than the rest (a covariance of a few wide dimensions) would take the difference's digits
    in float32 (Zbontar et al. 2021's reference code takes them the same way)."""
    d = matrix.shape[0]
    return matrix.flatten()[:-1].view(d - 1, d + 1)[:, 1:].flatten()
