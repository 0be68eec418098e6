"""VICReg: variance, invariance and covariance regularisation of the two views' embeddings.

Bardes, Ponce, LeCun. "VICReg: Variance-Invariance-Covariance Regularization for
Self-Supervised Learning". ICLR 2022.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from contract import RunConfig
from contract.methods.vicreg import VICREG_SPEC, VICRegOptions
from workers.engine.mechanisms import dims_under_variance_hinge, off_diagonal_energy
from workers.engine.methods.base import LossOutput, Method, StepInfo
from workers.engine.parts import mlp, off_diagonal

VARIANCE_EPS = 1e-4  # epsilon inside the square root of the variance term (paper: 1e-4)
TARGET_STD = 1.0  # gamma, the hinge's target standard deviation


def variance_term(z: torch.Tensor) -> torch.Tensor:
    """v(Z) = mean_j max(0, gamma - sqrt(Var(z_j) + eps)) (Bardes et al. 2022, Eq. 1).
    z: (B, d), unbiased variance over the batch. Scalar."""
    std = torch.sqrt(z.var(dim=0) + VARIANCE_EPS)
    return F.relu(TARGET_STD - std).mean()


def covariance_term(z: torch.Tensor) -> torch.Tensor:
    """c(Z) = sum_{i != j} C(Z)_ij^2 / d with C the (d, d) sample covariance (Eq. 3-4).
    z: (B, d). Scalar."""
    b, d = z.shape
    centred = z - z.mean(dim=0)
    cov = centred.t() @ centred / (b - 1)
    return off_diagonal(cov).pow(2).sum() / d


def vicreg_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    invariance_weight: float,
    variance_weight: float,
    covariance_weight: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """VICReg (Bardes et al. 2022, Eq. 6), weighted as in the authors' reference code:
    lambda * MSE(z1, z2) + mu * (v(z1) + v(z2)) / 2 + nu * (c(z1) + c(z2)).
    z1, z2: (B, d). Returns the loss and its three unweighted terms."""
    invariance = F.mse_loss(z1, z2)
    variance = (variance_term(z1) + variance_term(z2)) / 2
    covariance = covariance_term(z1) + covariance_term(z2)
    loss = invariance_weight * invariance + variance_weight * variance
    loss = loss + covariance_weight * covariance
    terms = {
        "invariance": invariance.item(),
        "variance": variance.item(),
        "covariance": covariance.item(),
    }
    return loss, terms


class VICReg(Method):
    """Backbone -> 3-layer projector (expander) -> VICReg loss between the two views."""

    spec = VICREG_SPEC

    def __init__(self, backbone: nn.Module, rep_dim: int, config: RunConfig) -> None:
        super().__init__(backbone, rep_dim, config)
        self.options: VICRegOptions
        self.projector = mlp(rep_dim, config.proj_hidden_dim, config.proj_dim, 3)

    def training_loss(
        self, views: list[torch.Tensor], indices: torch.Tensor, step: StepInfo
    ) -> LossOutput:
        h = self.backbone(torch.cat(views[:2]))  # (2B, rep_dim)
        z1, z2 = self.projector(h).chunk(2)
        opts = self.options
        loss, terms = vicreg_loss(
            z1, z2, opts.invariance_weight, opts.variance_weight, opts.covariance_weight
        )
        return LossOutput(loss, terms)

    @torch.no_grad()
    def probe_logs(self, views: list[torch.Tensor]) -> dict[str, float]:
        """The three unweighted loss terms on the probe's two views, the fraction of
        dimensions under the variance hinge (target std γ = TARGET_STD) and the off-diagonal
        correlation energy, each view's averaged."""
        z1, z2 = self.projector(self.backbone(torch.cat(views[:2]))).float().chunk(2)
        _, terms = vicreg_loss(z1, z2, 1.0, 1.0, 1.0)
        under_hinge = [dims_under_variance_hinge(z, TARGET_STD) for z in (z1, z2)]
        return {
            "loss_invariance": terms["invariance"],
            "loss_variance": terms["variance"],
            "loss_covariance": terms["covariance"],
            "dims_under_variance_hinge": sum(under_hinge) / 2,
            "off_diagonal_energy": (off_diagonal_energy(z1) + off_diagonal_energy(z2)) / 2,
        }
