"""SwAV: swapped prediction of online cluster codes balanced by Sinkhorn-Knopp.

Caron, Misra, Mairal, Goyal, Bojanowski, Joulin. "Unsupervised Learning of Visual Features by
Contrasting Cluster Assignments". NeurIPS 2020.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from contract import RunConfig
from contract.methods.swav import SWAV_SPEC, SwAVOptions
from workers.engine.mechanisms import balancing_signals
from workers.engine.methods.base import LossOutput, Method, StepInfo
from workers.engine.parts import mlp, sinkhorn_knopp


def swapped_prediction_loss(
    scores: list[torch.Tensor], codes: list[torch.Tensor], temperature: float
) -> torch.Tensor:
    """SwAV's swapped prediction (Caron et al. 2020, Eq. 1-2), averaged over pairs.

    scores: [V x (B, K)] view-prototype similarities (global views first); codes:
    [G x (B, K)] target codes of the G global views. For each global view g and every other
    view v, the cross-entropy -sum_k q_g,k log softmax(scores_v / T)_k is averaged over the
    batch, then over the G (V - 1) pairs.
    """
    total = scores[0].new_zeros(())
    pairs = 0
    for g, q in enumerate(codes):
        for v, s in enumerate(scores):
            if v == g:
                continue
            total = total - (q * F.log_softmax(s / temperature, dim=1)).sum(dim=1).mean()
            pairs += 1
    return total / pairs


class SwAV(Method):
    """Backbone -> 2-layer projector -> ℓ2-normalised z -> scores z C^T against normalised
    prototypes C. Codes of each global view (Sinkhorn, no gradient) are predicted from the
    other views."""

    spec = SWAV_SPEC
    prototypes: nn.Linear
    queue: torch.Tensor  # buffer (2, L, d)

    def __init__(self, backbone: nn.Module, rep_dim: int, config: RunConfig) -> None:
        super().__init__(backbone, rep_dim, config)
        self.options: SwAVOptions
        opts = self.options
        self.projector = mlp(rep_dim, config.proj_hidden_dim, config.proj_dim, 2)
        self.prototypes = nn.Linear(config.proj_dim, opts.num_prototypes, bias=False)
        self.normalize_prototypes()
        # (2, L, d) past embeddings of both global views; all-zero rows are not yet filled
        self.register_buffer("queue", torch.zeros(2, opts.queue_length, config.proj_dim))

    def n_local_views(self) -> int:
        return self.options.local_crops

    @torch.no_grad()
    def normalize_prototypes(self) -> None:
        """Project the prototypes back onto the unit sphere (SwAV does this every step)."""
        self.prototypes.weight.copy_(F.normalize(self.prototypes.weight, dim=1))

    def with_queue(self, scores: torch.Tensor, view: int) -> torch.Tensor:
        """scores: (B, K) of one global view -> (B + L, K) with the queued embeddings' scores
        appended once the queue is full, else unchanged."""
        queue = self.queue[view]
        if queue.shape[0] == 0 or not bool(queue[-1].any()):
            return scores
        return torch.cat([scores, self.prototypes(queue)])

    def codes(self, scores: torch.Tensor) -> torch.Tensor:
        """scores: (B', K) -> codes (B', K) rows summing to 1, without gradient."""
        opts = self.options
        if opts.sinkhorn:
            return sinkhorn_knopp(scores.detach(), opts.epsilon, opts.sinkhorn_iterations)
        return F.softmax(scores.detach() / opts.epsilon, dim=1)

    def training_loss(
        self, views: list[torch.Tensor], indices: torch.Tensor, step: StepInfo
    ) -> LossOutput:
        batch = views[0].shape[0]
        h = self.backbone(torch.cat(views[:2]))  # (2B, rep_dim)
        z_all = [F.normalize(self.projector(h), dim=1)]
        if len(views) > 2:  # local crops: a smaller resolution, encoded as a second group
            z_all.append(F.normalize(self.projector(self.backbone(torch.cat(views[2:]))), dim=1))
        z = torch.cat(z_all)  # (V B, d)
        scores = self.prototypes(z).split(batch)  # V x (B, K)

        with torch.no_grad():
            codes = [self.codes(self.with_queue(scores[g], g))[:batch] for g in range(2)]
            if self.queue.shape[1] > 0:
                self.push_to_queue(z[: 2 * batch].view(2, batch, -1))

        loss = swapped_prediction_loss(list(scores), codes, self.options.temperature)
        with torch.no_grad():
            usage = torch.bincount(scores[0].argmax(dim=1), minlength=self.options.num_prototypes)
            p = usage.float() / usage.sum()
            entropy = -(p[p > 0] * p[p > 0].log()).sum().item()
        logs = {"prototype_entropy": entropy, "prototype_entropy_max": math.log(len(p))}
        return LossOutput(loss, logs)

    @torch.no_grad()
    def push_to_queue(self, fresh: torch.Tensor) -> None:
        """fresh: (2, B, d) embeddings of the global views; newest first, oldest dropped."""
        length = self.queue.shape[1]
        self.queue.copy_(torch.cat([fresh, self.queue], dim=1)[:, :length])

    @torch.no_grad()
    def after_step(self, step: StepInfo) -> None:
        self.normalize_prototypes()

    @torch.no_grad()
    def cluster_assignments(self, z: torch.Tensor) -> torch.Tensor | None:
        """z: (B, d) projector outputs -> (B,) index of the most similar prototype."""
        scores: torch.Tensor = self.prototypes(F.normalize(z, dim=1))
        return scores.argmax(dim=1)

    def num_clusters(self) -> int | None:
        return self.options.num_prototypes

    @torch.no_grad()
    def cluster_probabilities(self, z: torch.Tensor) -> torch.Tensor | None:
        """z: (B, d) -> (B, K) the predicted assignment softmax(z C^T / temperature)."""
        scores = self.prototypes(F.normalize(z, dim=1))
        return F.softmax(scores.float() / self.options.temperature, dim=1)

    def prototype_vectors(self) -> torch.Tensor | None:
        return self.prototypes.weight.detach()

    def schedules(self) -> dict[str, float]:
        """Sinkhorn's ε and the prediction's temperature τ, drawn beside the assignments'
        usage and sharpness they set (a large ε is a weakened balancing)."""
        return {
            "sinkhorn_epsilon": self.options.epsilon,
            "prediction_temperature": self.options.temperature,
        }

    @torch.no_grad()
    def probe_logs(self, views: list[torch.Tensor]) -> dict[str, float]:
        """What Sinkhorn does on the probe (both global views, no queue): the codes'
        sharpness and the prototypes' usage with it (the run's ε and iterations) and without
        it (softmax(scores / ε)); without Sinkhorn the two are the same codes."""
        z = F.normalize(self.projector(self.backbone(torch.cat(views[:2]))).float(), dim=1)
        scores = self.prototypes(z).float()  # (2B, K)
        before = F.softmax(scores / self.options.epsilon, dim=1)
        return balancing_signals(before, self.codes(scores))
