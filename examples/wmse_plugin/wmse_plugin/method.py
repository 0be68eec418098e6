"""W-MSE's training half (imported by Collapse Lab's workers only): backbone -> projector
-> per-sub-batch Cholesky whitening -> MSE of the normalised positives.

Ermolov, Siarohin, Sangineto, Sebe. "Whitening for Self-Supervised Representation
Learning". ICML 2021, Sec. 3 and Eq. 5-7 (the two-view W-MSE 2 of the authors' code).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from contract import RunConfig
from wmse_plugin.spec import METHOD_SPEC, WMSEOptions
from workers.engine.methods.base import LossOutput, Method, StepInfo
from workers.engine.parts import mlp

# Shrinkage of the covariance towards the identity before its Cholesky factorisation: keeps
# a nearly singular sub-batch (a collapsing run) factorisable; the authors' default is 0.
COVARIANCE_SHRINKAGE = 1e-4


def whiten(z: torch.Tensor) -> torch.Tensor:
    """Cholesky whitening (Eq. 6-7): z (n, d) -> W (z - mean) with W = L^-1, L the Cholesky
    factor of the (shrunk) sample covariance: the result has zero mean and identity
    covariance. n must exceed d."""
    n, d = z.shape
    centred = z - z.mean(dim=0)
    covariance = centred.T @ centred / (n - 1)
    eye = torch.eye(d, dtype=z.dtype, device=z.device)
    shrunk = (1 - COVARIANCE_SHRINKAGE) * covariance + COVARIANCE_SHRINKAGE * eye
    factor = torch.linalg.cholesky(shrunk)
    return torch.linalg.solve_triangular(factor, centred.T, upper=False).T


def normalised_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """||a/|a| - b/|b|||^2 = 2 - 2 cos(a, b), averaged over rows. a, b: (n, d). Scalar."""
    return (2 - 2 * F.cosine_similarity(a, b, dim=1)).mean()


def wmse_loss(
    z1: torch.Tensor, z2: torch.Tensor, whitening_size: int, partitions: list[torch.Tensor]
) -> torch.Tensor:
    """z1, z2: (B, d) the two views' embeddings; ``partitions``: random orders of range(B),
    each cut into sub-batches of ``whitening_size`` (a remainder is left out). Each view of
    each sub-batch is whitened on its own, then the MSE of the positives is averaged over
    the partitions."""
    total = z1.new_zeros(())
    for order in partitions:
        usable = len(order) - len(order) % whitening_size
        chunks = order[:usable].split(whitening_size)
        w1 = torch.cat([whiten(z1[chunk]) for chunk in chunks])
        w2 = torch.cat([whiten(z2[chunk]) for chunk in chunks])
        total = total + normalised_mse(w1, w2)
    return total / len(partitions)


class WMSE(Method):
    """The projector's output z is what the diagnostics measure (before whitening, which
    only the loss applies)."""

    spec = METHOD_SPEC

    def __init__(self, backbone: nn.Module, rep_dim: int, config: RunConfig) -> None:
        super().__init__(backbone, rep_dim, config)
        self.options: WMSEOptions
        if self.options.whitening and self.options.whitening_size <= config.proj_dim:
            raise ValueError(
                f"whitening_size {self.options.whitening_size} must exceed proj_dim "
                f"{config.proj_dim}: the covariance of a sub-batch would be singular"
            )
        self.projector = mlp(rep_dim, config.proj_hidden_dim, config.proj_dim, 2)

    def training_loss(
        self, views: list[torch.Tensor], indices: torch.Tensor, step: StepInfo
    ) -> LossOutput:
        z1, z2 = self.projector(self.backbone(torch.cat(views[:2]))).float().chunk(2)
        options = self.options
        unwhitened = normalised_mse(z1, z2)
        logs = {"unwhitened_mse": unwhitened.item()}  # what whitening keeps from reaching 0
        if not options.whitening:
            return LossOutput(unwhitened, logs)
        batch = z1.shape[0]
        if batch < options.whitening_size:
            raise ValueError(
                f"a batch of {batch} images is smaller than whitening_size {options.whitening_size}"
            )
        partitions = [
            torch.randperm(batch, device=z1.device) for _ in range(options.whitening_iterations)
        ]
        return LossOutput(wmse_loss(z1, z2, options.whitening_size, partitions), logs)
