"""LeJEPA: every view's embedding is pulled to the mean of the global views' embeddings,
and SIGReg keeps the embeddings an isotropic Gaussian, with no predictor, teacher or
stop-gradient.

Balestriero, LeCun. "LeJEPA: Provable and Scalable Self-Supervised Learning Without the
Heuristics". arXiv 2511.08544, 2025 (Algorithm 1; the Epps-Pulley integral as in the
authors' repository and lightly's ``lightly/loss/lejepa_loss.py``).
"""

from __future__ import annotations

import torch
from torch import nn

from contract import RunConfig
from contract.methods.lejepa import LEJEPA_SPEC, LeJEPAOptions
from workers.engine.mechanisms import off_diagonal_energy
from workers.engine.methods.base import LossOutput, Method, StepInfo
from workers.engine.parts import mlp

# SIGReg's slices on the probe: one fixed set, so epochs are compared on the same directions.
PROBE_DIRECTIONS_SEED = 0
# The Epps-Pulley statistic integrates over frequencies t in [-T_MAX, T_MAX]; its integrand
# is even in t, so it is evaluated on KNOTS points of [0, T_MAX] with doubled weights.
KNOTS = 17
T_MAX = 3.0


def random_directions(dim: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """(dim, count) unit columns drawn uniformly on the sphere: SIGReg's 1-D slices."""
    directions = torch.randn(dim, count, generator=generator, device=generator.device)
    unit: torch.Tensor = directions / directions.norm(dim=0)
    return unit


def epps_pulley_weights(
    dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(t, phi, w), each (KNOTS,): frequencies on [0, T_MAX], the standard Gaussian's
    characteristic function exp(-t^2 / 2), and the trapezoidal weights of the integral over
    [-T_MAX, T_MAX] times the Epps-Pulley weighting phi(t)."""
    t = torch.linspace(0, T_MAX, KNOTS, dtype=dtype, device=device)
    step = T_MAX / (KNOTS - 1)
    trapezoid = torch.full((KNOTS,), 2 * step, dtype=dtype, device=device)
    trapezoid[[0, -1]] = step
    phi = torch.exp(-t.square() / 2)
    return t, phi, trapezoid * phi


def sigreg(z: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """SIGReg (Balestriero & LeCun 2025, Sec. 4): the Epps-Pulley statistic of each 1-D
    projection of the embeddings against N(0, 1), averaged over directions and views.

    z: (V, N, d) embeddings of V views of N images; directions: (d, M) unit columns.
    For each view and direction, with x_n the projected samples and
    ecf(t) = mean_n exp(i t x_n), the statistic is
    N * integral |ecf(t) - exp(-t^2/2)|^2 exp(-t^2/2) dt. Scalar; 0 for an exact Gaussian
    in the limit of many samples, growing with N when the embedding is not Gaussian.
    """
    n = z.shape[-2]
    t, phi, weights = epps_pulley_weights(z.dtype, z.device)
    x_t = (z @ directions).unsqueeze(-1) * t  # (V, N, M, KNOTS)
    cos_mean = x_t.cos().mean(dim=-3)  # (V, M, KNOTS): real part of the empirical CF
    sin_mean = x_t.sin().mean(dim=-3)
    error = (cos_mean - phi).square() + sin_mean.square()
    return (error @ weights * n).mean()


def prediction_loss(z: torch.Tensor, num_global: int) -> torch.Tensor:
    """LeJEPA's prediction term (Algorithm 1): the mean squared distance of every view's
    embedding to the centre, the mean of the global views' embeddings.
    z: (V, N, d) with the ``num_global`` global views first. Scalar."""
    centres = z[:num_global].mean(dim=0)
    return (centres - z).square().mean()


def lejepa_loss(
    z: torch.Tensor, num_global: int, directions: torch.Tensor, sigreg_weight: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """(1 - lambda) * prediction + lambda * SIGReg (the paper's and lightly's LeJEPALoss).
    z: (V, N, d), global views first; directions: (d, M). Returns the loss and both terms."""
    prediction = prediction_loss(z, num_global)
    statistic = sigreg(z, directions)
    loss = (1 - sigreg_weight) * prediction + sigreg_weight * statistic
    return loss, {"prediction": prediction.item(), "sigreg": statistic.item()}


class LeJEPA(Method):
    """Backbone -> 3-layer projector -> z for every view; loss on the stack (V, N, d).
    The global views are encoded together, the local crops (half resolution) together."""

    spec = LEJEPA_SPEC

    def __init__(self, backbone: nn.Module, rep_dim: int, config: RunConfig) -> None:
        super().__init__(backbone, rep_dim, config)
        self.options: LeJEPAOptions
        self.projector = mlp(rep_dim, config.proj_hidden_dim, config.proj_dim, 3)

    def n_local_views(self) -> int:
        return self.options.views - 2

    def training_loss(
        self, views: list[torch.Tensor], indices: torch.Tensor, step: StepInfo
    ) -> LossOutput:
        batch = views[0].shape[0]
        z = [self.projector(self.backbone(torch.cat(views[:2])))]
        if len(views) > 2:
            z.append(self.projector(self.backbone(torch.cat(views[2:]))))
        stacked = torch.cat(z).float().view(len(views), batch, -1)  # (V, N, d)
        # slices seeded by the step, as in the paper's listing (the same on every device)
        generator = torch.Generator(device=stacked.device).manual_seed(step.step)
        directions = random_directions(stacked.shape[-1], self.options.num_projections, generator)
        loss, terms = lejepa_loss(stacked, 2, directions, self.options.sigreg_weight)
        return LossOutput(loss, terms)

    @torch.no_grad()
    def probe_logs(self, views: list[torch.Tensor]) -> dict[str, float]:
        """SIGReg's statistic of the probe's two views (fixed slices, the run's number of
        them) and the off-diagonal correlation energy of each view, averaged."""
        z1, z2 = self.projector(self.backbone(torch.cat(views[:2]))).float().chunk(2)
        stacked = torch.stack([z1, z2])  # (2, N, d)
        generator = torch.Generator(device=stacked.device).manual_seed(PROBE_DIRECTIONS_SEED)
        directions = random_directions(stacked.shape[-1], self.options.num_projections, generator)
        return {
            "sigreg_statistic": float(sigreg(stacked, directions)),
            "off_diagonal_energy": (off_diagonal_energy(z1) + off_diagonal_energy(z2)) / 2,
        }
