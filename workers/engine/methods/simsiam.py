"""SimSiam: a siamese network kept from collapsing by a predictor and a stop-gradient.

Chen, He. "Exploring Simple Siamese Representation Learning". CVPR 2021.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from contract import RunConfig
from contract.methods.simsiam import SIMSIAM_SPEC, SimSiamOptions
from workers.engine.mechanisms import asymmetric_signals
from workers.engine.methods.base import LossOutput, Method, StepInfo
from workers.engine.parts import mlp


def negative_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """SimSiam's D(p, z) = -mean_i cos(p_i, z_i) (Chen & He 2021, Eq. 1). p, z: (B, d).
    The stop-gradient, when wanted, is applied by the caller (z.detach())."""
    return -F.cosine_similarity(p, z, dim=1).mean()


class SimSiam(Method):
    """Backbone -> 3-layer projector -> bottleneck predictor;
    L = D(p1, sg(z2)) / 2 + D(p2, sg(z1)) / 2.

    One deviation from the paper: its projector ends with a BatchNorm, which at evaluation
    rescales every output dimension to unit variance and so would hide a collapsed output
    from the diagnostics this lab is about. The paper's own ablation (Chen & He 2021,
    Table 4) credits that layer with 0.7 points of accuracy, not with preventing collapse.
    """

    spec = SIMSIAM_SPEC

    def __init__(self, backbone: nn.Module, rep_dim: int, config: RunConfig) -> None:
        super().__init__(backbone, rep_dim, config)
        self.options: SimSiamOptions
        self.projector = mlp(rep_dim, config.proj_hidden_dim, config.proj_dim, 3)
        self.predictor = (
            mlp(config.proj_dim, config.pred_hidden_dim, config.proj_dim, 2)
            if self.options.predictor
            else nn.Identity()
        )

    def training_loss(
        self, views: list[torch.Tensor], indices: torch.Tensor, step: StepInfo
    ) -> LossOutput:
        h = self.backbone(torch.cat(views[:2]))  # (2B, rep_dim)
        z = self.projector(h)
        p1, p2 = self.predictor(z).chunk(2)
        z1, z2 = z.chunk(2)
        if self.options.stop_gradient:
            z1, z2 = z1.detach(), z2.detach()
        loss = negative_cosine(p1, z2) / 2 + negative_cosine(p2, z1) / 2
        return LossOutput(loss, {})

    @torch.no_grad()
    def probe_logs(self, views: list[torch.Tensor]) -> dict[str, float]:
        """The asymmetric branch's signals (:func:`mechanisms.asymmetric_signals`): each
        view's z and prediction p against the other view's z, the stop-gradient branch (the
        target is the online network itself, so no target_param_distance); the predictor
        studied through its least-squares linear map (the identity without a predictor)."""
        z = self.projector(self.backbone(torch.cat(views[:2]))).float()  # (2B, d)
        p = self.predictor(z).float()
        z1, z2 = z.chunk(2)
        identity = None if self.options.predictor else torch.eye(z.shape[1], device=z.device)
        return asymmetric_signals(z, p, torch.cat([z2, z1]), identity)
