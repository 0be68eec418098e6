"""DINO's training half (imported by Collapse Lab's workers only): student and EMA teacher,
each a backbone and a head (MLP -> l2-normalised bottleneck -> weight-normalised linear
layer to K logits); the student's softmax matches the teacher's centred, sharpened one.

Caron et al. "Emerging Properties in Self-Supervised Vision Transformers". ICCV 2021,
Algorithm 1 (two global views, no multi-crop here).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from contract import RunConfig
from dino_plugin.spec import METHOD_SPEC, DINOOptions
from workers.engine.methods.base import LossOutput, Method, StepInfo
from workers.engine.parts import cosine_momentum, ema_update, mlp


class _Normalise(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1)


def dino_head(rep_dim: int, hidden_dim: int, bottleneck_dim: int, out_dim: int) -> nn.Sequential:
    """MLP to the bottleneck, l2 normalisation, then a weight-normalised linear layer to K."""
    last = nn.utils.parametrizations.weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))
    return nn.Sequential(mlp(rep_dim, hidden_dim, bottleneck_dim, 3), _Normalise(), last)


class DINO(Method):
    """The projector is the student's whole head: the diagnostics measure its K logits, the
    distribution that collapses onto one dimension without centering."""

    spec = METHOD_SPEC

    def __init__(self, backbone: nn.Module, rep_dim: int, config: RunConfig) -> None:
        super().__init__(backbone, rep_dim, config)
        self.options: DINOOptions
        self.projector = dino_head(
            rep_dim, config.proj_hidden_dim, config.proj_dim, self.options.out_dim
        )
        self.teacher_backbone = copy.deepcopy(backbone).requires_grad_(False)
        self.teacher_head = copy.deepcopy(self.projector).requires_grad_(False)
        self.register_buffer("center", torch.zeros(self.options.out_dim))
        self.current_momentum = self.options.teacher_momentum

    def training_loss(
        self, views: list[torch.Tensor], indices: torch.Tensor, step: StepInfo
    ) -> LossOutput:
        options = self.options
        x = torch.cat(views[:2])
        student = (self.projector(self.backbone(x)).float() / options.student_temperature).chunk(2)
        with torch.no_grad():
            teacher_logits = self.teacher_head(self.teacher_backbone(x)).float()
            centred = teacher_logits - self.center if options.centering else teacher_logits
            teacher = F.softmax(centred / options.teacher_temperature, dim=-1).chunk(2)
        loss = (
            sum(
                -(teacher[j] * F.log_softmax(student[i], dim=-1)).sum(dim=-1).mean()
                for i in range(2)
                for j in range(2)
                if i != j
            )
            / 2
        )
        if options.centering:
            with torch.no_grad():
                rate = options.center_momentum
                self.center.mul_(rate).add_(teacher_logits.mean(dim=0), alpha=1 - rate)
        entropy = -(teacher[0] * teacher[0].clamp_min(1e-12).log()).sum(dim=-1).mean()
        return LossOutput(loss, {"teacher_entropy": float(entropy)})  # type: ignore[arg-type]

    @torch.no_grad()
    def after_step(self, step: StepInfo) -> None:
        base = self.options.teacher_momentum
        self.current_momentum = cosine_momentum(base, step.step, step.total_steps)
        ema_update(self.teacher_backbone, self.backbone, self.current_momentum)
        ema_update(self.teacher_head, self.projector, self.current_momentum)

    def excluded_from_weight_decay(self) -> set[str]:
        return {n for n, _ in self.named_parameters() if n.startswith("teacher_")}

    def monitor(self) -> dict[str, float]:
        return {"ema_momentum": self.current_momentum}
