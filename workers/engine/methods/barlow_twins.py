"""Barlow Twins: drive the cross-correlation matrix of the two views' embeddings to identity.

Zbontar, Jing, Misra, LeCun, Deny. "Barlow Twins: Self-Supervised Learning via Redundancy
Reduction". ICML 2021.
"""

from __future__ import annotations

import torch
from torch import nn

from contract import RunConfig
from contract.methods.barlow_twins import BARLOW_TWINS_SPEC, BarlowTwinsOptions
from workers.engine.mechanisms import off_diagonal_energy
from workers.engine.methods.base import LossOutput, Method, StepInfo
from workers.engine.parts import mlp, off_diagonal

STANDARDIZE_EPS = 1e-5  # as BatchNorm1d(affine=False) in the reference implementation


def cross_correlation(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """C_ij = sum_b ẑ1_bi ẑ2_bj / B with each dimension standardised over the batch.
    z1, z2: (B, d) -> (d, d)."""

    def standardize(z: torch.Tensor) -> torch.Tensor:
        return (z - z.mean(dim=0)) / torch.sqrt(z.var(dim=0, unbiased=False) + STANDARDIZE_EPS)

    return standardize(z1).t() @ standardize(z2) / z1.shape[0]


def barlow_twins_loss(
    z1: torch.Tensor, z2: torch.Tensor, lambda_offdiag: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Barlow Twins (Zbontar et al. 2021, Eq. 1):
    L = sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2. z1, z2: (B, d).
    Returns (loss, invariance term, redundancy term), scalars."""
    c = cross_correlation(z1, z2)
    diagonal = torch.diagonal(c)
    on_diag = (1 - diagonal).pow(2).sum()
    off_diag = off_diagonal(c).pow(2).sum()
    return on_diag + lambda_offdiag * off_diag, on_diag, off_diag


class BarlowTwins(Method):
    """Backbone -> 3-layer projector -> Barlow Twins loss between the two views."""

    spec = BARLOW_TWINS_SPEC

    def __init__(self, backbone: nn.Module, rep_dim: int, config: RunConfig) -> None:
        super().__init__(backbone, rep_dim, config)
        self.options: BarlowTwinsOptions
        self.projector = mlp(rep_dim, config.proj_hidden_dim, config.proj_dim, 3)

    def training_loss(
        self, views: list[torch.Tensor], indices: torch.Tensor, step: StepInfo
    ) -> LossOutput:
        h = self.backbone(torch.cat(views[:2]))  # (2B, rep_dim)
        z1, z2 = self.projector(h).chunk(2)
        loss, on_diag, off_diag = barlow_twins_loss(z1, z2, self.options.lambda_offdiag)
        logs = {"invariance": on_diag.item(), "redundancy": off_diag.item()}
        return LossOutput(loss, logs)

    @torch.no_grad()
    def probe_logs(self, views: list[torch.Tensor]) -> dict[str, float]:
        """The on- and off-diagonal terms of the probe's cross-correlation matrix
        (unweighted) and the off-diagonal correlation energy of each view, averaged."""
        z1, z2 = self.projector(self.backbone(torch.cat(views[:2]))).float().chunk(2)
        _, on_diag, off_diag = barlow_twins_loss(z1, z2, 1.0)
        return {
            "loss_on_diagonal": float(on_diag),
            "loss_off_diagonal": float(off_diag),
            "off_diagonal_energy": (off_diagonal_energy(z1) + off_diagonal_energy(z2)) / 2,
        }
