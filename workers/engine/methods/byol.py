"""BYOL: an online network with a predictor regresses an EMA target network's projection.

Grill et al. "Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning".
NeurIPS 2020. The linear and symmetric predictors (``predictor_kind``): Tian, Chen & Ganguli,
"Understanding Self-Supervised Learning Dynamics without Contrastive Pairs", ICML 2021.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from contract import RunConfig
from contract.methods.byol import BYOL_SPEC, BYOLOptions
from workers.engine.mechanisms import asymmetric_signals, parameter_distance
from workers.engine.methods.base import LossOutput, Method, StepInfo
from workers.engine.parts import LinearPredictor, cosine_momentum, ema_update, mlp


def regression_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """BYOL's normalised MSE (Grill et al. 2020, Eq. 2): ||p/|p| - z/|z|||^2 = 2 - 2 cos(p, z),
    averaged over the batch. p, z: (B, d). The caller detaches the target z."""
    return (2 - 2 * F.cosine_similarity(p, z, dim=1)).mean()


def momentum_at(base_momentum: float, step: int, total_steps: int) -> float:
    """BYOL's cosine schedule from ``base_momentum`` to 1; the endpoints 0 (no EMA) and 1
    (frozen target) are kept constant so those ablations mean what they say."""
    if base_momentum in (0.0, 1.0):
        return base_momentum
    return cosine_momentum(base_momentum, step, total_steps)


class BYOL(Method):
    """Online: backbone -> projector -> predictor. Target: EMA copy of backbone + projector,
    never trained by gradients. Symmetrised loss over the two views."""

    spec = BYOL_SPEC

    def __init__(self, backbone: nn.Module, rep_dim: int, config: RunConfig) -> None:
        super().__init__(backbone, rep_dim, config)
        self.options: BYOLOptions
        self.projector = mlp(rep_dim, config.proj_hidden_dim, config.proj_dim, 2)
        self.predictor: nn.Module
        if not self.options.predictor:
            self.predictor = nn.Identity()
        elif self.options.predictor_kind == "mlp":
            self.predictor = mlp(config.proj_dim, config.pred_hidden_dim, config.proj_dim, 2)
        else:
            symmetric = self.options.predictor_kind == "symmetric"
            self.predictor = LinearPredictor(config.proj_dim, symmetric)
        self.target_backbone = copy.deepcopy(backbone).requires_grad_(False)
        self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)
        self.current_momentum = momentum_at(self.options.base_momentum, 0, 1)

    def training_loss(
        self, views: list[torch.Tensor], indices: torch.Tensor, step: StepInfo
    ) -> LossOutput:
        x = torch.cat(views[:2])
        h = self.backbone(x)  # (2B, rep_dim)
        p1, p2 = self.predictor(self.projector(h)).chunk(2)
        with torch.no_grad():
            t1, t2 = self.target_projector(self.target_backbone(x)).chunk(2)
        loss = (regression_loss(p1, t2) + regression_loss(p2, t1)) / 2
        return LossOutput(loss, {})

    @torch.no_grad()
    def after_step(self, step: StepInfo) -> None:
        """EMA update of the target with tau for the step just taken."""
        self.current_momentum = momentum_at(self.options.base_momentum, step.step, step.total_steps)
        ema_update(self.target_backbone, self.backbone, self.current_momentum)
        ema_update(self.target_projector, self.projector, self.current_momentum)

    def predictor_matrix(self, device: torch.device) -> torch.Tensor | None:
        """W_p (d, d) of a linear predictor (the identity without one); None for the MLP,
        which has no single matrix."""
        if isinstance(self.predictor, LinearPredictor):
            return self.predictor.matrix().detach().float().to(device)
        if isinstance(self.predictor, nn.Identity):
            return torch.eye(self.config.proj_dim, device=device)
        return None

    def excluded_from_weight_decay(self) -> set[str]:
        return {n for n, _ in self.named_parameters() if n.startswith("target_")}

    def monitor(self) -> dict[str, float]:
        return {"ema_momentum": self.current_momentum}

    @torch.no_grad()
    def probe_logs(self, views: list[torch.Tensor]) -> dict[str, float]:
        """The asymmetric branch's signals (:func:`mechanisms.asymmetric_signals`): each
        view's online z and prediction p against the target's projection of the other view,
        both directions stacked; the predictor studied through its matrix W_p where it is
        linear (the identity without a predictor), else through its least-squares linear map;
        and the target's lag behind the online network."""
        x = torch.cat(views[:2])
        z = self.projector(self.backbone(x)).float()  # (2B, d)
        p = self.predictor(z).float()
        t1, t2 = self.target_projector(self.target_backbone(x)).float().chunk(2)
        signals = asymmetric_signals(z, p, torch.cat([t2, t1]), self.predictor_matrix(z.device))
        signals["target_param_distance"] = parameter_distance(
            [*self.target_backbone.parameters(), *self.target_projector.parameters()],
            [*self.backbone.parameters(), *self.projector.parameters()],
        )
        return signals
