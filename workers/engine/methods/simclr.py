"""SimCLR: contrastive learning with the NT-Xent loss.

Chen, Kornblith, Norouzi, Hinton. "A Simple Framework for Contrastive Learning of Visual
Representations". ICML 2020.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from contract import RunConfig
from contract.methods.simclr import SIMCLR_SPEC, SimCLROptions
from workers.engine.mechanisms import infonce_split, projector_layer_alignment
from workers.engine.methods.base import LossOutput, Method, StepInfo
from workers.engine.parts import mlp


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent (SimCLR, Chen et al. 2020, Eq. 1), averaged over all 2N anchors.

    z1, z2: (N, d) projections of two views of the same N images. Each of the 2N views is an
    anchor whose positive is the other view of its image and whose negatives are the other
    2N - 2 views: l_i = -log exp(s_ip / T) / sum_{k != i} exp(s_ik / T), s = cosine similarity.
    Returns a scalar.
    """
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = z1.shape[0]
    logits = z @ z.t() / temperature
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, positives)


def positive_alignment(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """The positive term of NT-Xent alone: -mean_i cos(z1_i, z2_i) / T, from (N, d) x 2.
    Minimised by any constant map, so it collapses (docs/design.md, contrastive family)."""
    return -F.cosine_similarity(z1, z2, dim=1).mean() / temperature


class SimCLR(Method):
    """Backbone -> 2-layer MLP projector -> NT-Xent between the two views."""

    spec = SIMCLR_SPEC

    def __init__(self, backbone: nn.Module, rep_dim: int, config: RunConfig) -> None:
        super().__init__(backbone, rep_dim, config)
        self.options: SimCLROptions
        self.projector = mlp(rep_dim, config.proj_hidden_dim, config.proj_dim, 2)

    def training_loss(
        self, views: list[torch.Tensor], indices: torch.Tensor, step: StepInfo
    ) -> LossOutput:
        h = self.backbone(torch.cat(views[:2]))  # both views in one pass: (2B, rep_dim)
        z1, z2 = self.projector(h).chunk(2)
        temperature = self.options.temperature
        if self.options.negatives:
            loss = nt_xent(z1, z2, temperature)
        else:
            loss = positive_alignment(z1, z2, temperature)
        with torch.no_grad():
            cos_pos = F.cosine_similarity(z1, z2, dim=1).mean().item()
        return LossOutput(loss, {"cos_pos": cos_pos})

    def schedules(self) -> dict[str, float]:
        """The temperature, drawn beside the InfoNCE split it scales."""
        return {"temperature": self.options.temperature}

    @torch.no_grad()
    def probe_logs(self, views: list[torch.Tensor]) -> dict[str, float]:
        """The negatives' signals on the probe's two views (:func:`mechanisms.infonce_split`,
        also without negatives: the repulsion the loss leaves out) and the alignment of the
        projector's adjacent linear layers (Jing et al. 2022, mechanism 2)."""
        z1, z2 = self.projector(self.backbone(torch.cat(views[:2]))).float().chunk(2)
        signals = infonce_split(z1, z2, self.options.temperature)
        linear = [m.weight for m in self.projector.modules() if isinstance(m, nn.Linear)]
        alignment = projector_layer_alignment(linear)
        if alignment is not None:
            signals["projector_layer_alignment"] = alignment
        return signals
