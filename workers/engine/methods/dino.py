"""DINO: self-distillation of a momentum teacher's centred, sharpened softmax, with multi-crop.

Caron, Touvron, Misra, Jégou, Mairal, Bojanowski, Joulin. "Emerging Properties in
Self-Supervised Vision Transformers". ICCV 2021 (arXiv 2104.14294), Algorithm 1, Sec. 3.1
and 5.3. The loss follows the authors' code as lightly's ``DINOLoss`` does
(``lightly/loss/dino_loss.py``; ``tests/test_dino.py`` checks values and gradients against it).
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from contract import RunConfig
from contract.methods.dino import DINO_SPEC, DINOOptions
from workers.engine.mechanisms import balancing_signals, mean_entropy, mean_kl, parameter_distance
from workers.engine.methods.base import LossOutput, Method, StepInfo, Views
from workers.engine.parts import cosine_momentum, ema_update


class DINOHead(nn.Module):
    """DINO's projection head (paper Sec. 3.1 and appendix; lightly's DINOProjectionHead):
    a 3-layer MLP with GELU (no BatchNorm) to a ``bottleneck_dim`` vector, ℓ2-normalised, then
    a weight-normalised linear layer without bias to the K prototype logits.
    (B, in_dim) -> (B, K). With ``norm_last_layer`` every prototype's norm is fixed at 1.
    The MLP's weights start from a truncated normal of standard deviation ``init_std``
    (0.02 and truncation at ±2 in the authors' ``DINOHead._init_weights``, as lightly's)."""

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int,
        bottleneck_dim: int,
        num_prototypes: int,
        norm: bool,
        init_std: float,
    ) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, bottleneck_dim),
        )
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                nn.init.trunc_normal_(layer.weight, std=init_std)
                nn.init.zeros_(layer.bias)
        self.last_layer = nn.utils.parametrizations.weight_norm(
            nn.Linear(bottleneck_dim, num_prototypes, bias=False)
        )
        self.norm_last_layer = norm
        with torch.no_grad():
            self.last_layer.parametrizations.weight.original0.fill_(1.0)
        self.last_layer.parametrizations.weight.original0.requires_grad_(not norm)

    def bottleneck(self, h: torch.Tensor) -> torch.Tensor:
        """(B, in_dim) -> (B, bottleneck_dim) the ℓ2-normalised bottleneck."""
        return F.normalize(self.mlp(h), dim=-1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.last_layer(self.bottleneck(h))
        return logits

    def train_last_layer(self, trainable: bool) -> None:
        """Freeze (False) or train (True) the last layer: a frozen parameter gets no gradient,
        and the optimisers skip parameters without one (DINO's ``cancel_gradients_last_layer``
        sets the gradient to None)."""
        weight = self.last_layer.parametrizations.weight
        weight.original1.requires_grad_(trainable)
        weight.original0.requires_grad_(trainable and not self.norm_last_layer)

    def prototypes(self) -> torch.Tensor:
        """(K, bottleneck_dim) the unit prototype directions of the last layer."""
        return F.normalize(self.last_layer.weight.detach(), dim=1)


def teacher_temperature_at(options: DINOOptions, epoch: int) -> float:
    """The teacher temperature at 0-based ``epoch``: linear from the warm-up temperature to the
    final one over the warm-up epochs (both ends included), then constant. The authors'
    ``teacher_temp_schedule`` (``np.linspace(warmup, final, warmup_epochs)``), as lightly's."""
    warmup = options.warmup_teacher_temperature_epochs
    if epoch >= warmup:
        return options.teacher_temperature
    if warmup == 1:
        return options.warmup_teacher_temperature
    start, end = options.warmup_teacher_temperature, options.teacher_temperature
    return start + (end - start) * epoch / (warmup - 1)


def dino_loss(
    teacher: torch.Tensor,
    student: torch.Tensor,
    center: torch.Tensor,
    teacher_temperature: float,
    student_temperature: float,
) -> torch.Tensor:
    """DINO's multi-crop cross-entropy (Caron et al. 2021, Eq. 3 and Algorithm 1).

    teacher: (T, B, K) the teacher's logits of the T global views; student: (S, B, K) the
    student's logits of all S >= T views, the same global views first; center: (K,).
    P_t = softmax((teacher - center) / teacher_temperature), log P_s =
    log_softmax(student / student_temperature); the cross-entropy -sum_k P_t log P_s is
    averaged over the batch and over the T S - T pairs of different views (a view is never
    compared with itself). The caller passes the teacher without gradient.
    """
    t_views, batch = teacher.shape[0], teacher.shape[1]
    teacher_probs = F.softmax((teacher - center) / teacher_temperature, dim=-1)
    student_log_probs = F.log_softmax(student / student_temperature, dim=-1)
    cross = -torch.einsum("tbk,sbk->ts", teacher_probs, student_log_probs)  # (T, S)
    same_view = torch.eye(t_views, student.shape[0], dtype=torch.bool, device=cross.device)
    pairs = cross.numel() - t_views
    return cross.masked_fill(same_view, 0.0).sum() / (pairs * batch)


@torch.no_grad()
def updated_center(center: torch.Tensor, teacher: torch.Tensor, momentum: float) -> torch.Tensor:
    """The centre's EMA (Caron et al. 2021, Eq. 4): m c + (1 - m) mean of the teacher's
    logits over views and batch. center: (K,); teacher: (T, B, K) -> (K,)."""
    return center * momentum + teacher.mean(dim=(0, 1)) * (1 - momentum)


class DINO(Method):
    """Student: backbone -> DINO head (``self.projector``). Teacher: a momentum (EMA) copy of
    both, never trained by gradients, sees the two global views only; the student sees every
    view (multi-crop).

    The z the diagnostics measure is the student's ℓ2-normalised bottleneck, the embedding
    the K prototypes score: the K logits themselves share a large common offset (the centre
    the teacher subtracts grows to norm ~2 in a few epochs) that makes every row of the
    normalised logits nearly the same even in a healthy run (std·√d 0.06 at epoch 0 on
    digits). The distribution over the K prototypes is measured by :meth:`probe_logs` and
    the cluster fields (the last layer applied to z)."""

    spec = DINO_SPEC
    center: torch.Tensor  # buffer (K,)
    projector: DINOHead

    def __init__(self, backbone: nn.Module, rep_dim: int, config: RunConfig) -> None:
        super().__init__(backbone, rep_dim, config)
        self.options: DINOOptions
        opts = self.options
        self.projector = DINOHead(
            rep_dim,
            config.proj_hidden_dim,
            config.proj_dim,
            opts.num_prototypes,
            opts.norm_last_layer,
            opts.head_init_std,
        )
        self.teacher_backbone = copy.deepcopy(backbone).requires_grad_(False)
        self.teacher_head = copy.deepcopy(self.projector).requires_grad_(False)
        self.register_buffer("center", torch.zeros(opts.num_prototypes))
        self.current_momentum = self.momentum_at(0, 1)
        self.current_teacher_temperature = teacher_temperature_at(opts, 0)

    def n_local_views(self) -> int:
        return self.options.local_views

    def views(self) -> Views:
        """Two global views; with local views, crops of 0.4-1 of the image (the reference's
        ``global_crops_scale``, main_dino.py), so that no global crop is smaller than a local
        one (0.05-0.4); without, the SimCLR range 0.2-1 (the reference advises 0.14-1 for two
        crops alone)."""
        return Views(global_scale=(0.4, 1.0) if self.n_local_views() else (0.2, 1.0))

    def momentum_at(self, step: int, total_steps: int) -> float:
        """The teacher's EMA rate: a cosine from the base to 1 (DINO Sec. 3.1, as BYOL);
        the endpoints 0 (student copy) and 1 (frozen teacher) stay constant."""
        base = self.options.teacher_momentum
        if base in (0.0, 1.0):
            return base
        return cosine_momentum(base, step, total_steps)

    def training_loss(
        self, views: list[torch.Tensor], indices: torch.Tensor, step: StepInfo
    ) -> LossOutput:
        opts = self.options
        batch = views[0].shape[0]
        self.projector.train_last_layer(step.epoch > opts.freeze_last_layer_epochs)
        global_x = torch.cat(views[:2])
        student = [self.projector(self.backbone(global_x))]  # (2B, K)
        if len(views) > 2:  # local crops: a smaller resolution, encoded as a second group
            student.append(self.projector(self.backbone(torch.cat(views[2:]))))
        student_logits = torch.cat(student).float().view(-1, batch, opts.num_prototypes)
        with torch.no_grad():
            teacher_logits = self.teacher_head(self.teacher_backbone(global_x)).float()
            teacher_logits = teacher_logits.view(2, batch, opts.num_prototypes)
        self.current_teacher_temperature = teacher_temperature_at(opts, step.epoch - 1)
        center = self.center if opts.centering else torch.zeros_like(self.center)
        loss = dino_loss(
            teacher_logits,
            student_logits,
            center,
            self.current_teacher_temperature,
            opts.student_temperature,
        )
        if opts.centering:
            self.center.copy_(updated_center(self.center, teacher_logits, opts.center_momentum))
        return LossOutput(loss, {})

    @torch.no_grad()
    def after_step(self, step: StepInfo) -> None:
        """EMA update of the teacher with the rate for the step just taken."""
        self.current_momentum = self.momentum_at(step.step, step.total_steps)
        ema_update(self.teacher_backbone, self.backbone, self.current_momentum)
        ema_update(self.teacher_head, self.projector, self.current_momentum)

    def excluded_from_weight_decay(self) -> set[str]:
        return {n for n, _ in self.named_parameters() if n.startswith("teacher_")}

    # -- monitoring -----------------------------------------------------------------------
    @torch.no_grad()
    def probe_logs(self, views: list[torch.Tensor]) -> dict[str, float]:
        """DINO's mechanism signals (Sec. 5.3, Fig. 7) on two augmented views of the probe
        images: the teacher sees one view, the student the other (both ways), as in training.

        teacher_entropy: h(P_t), the mean per-sample entropy of the teacher's centred,
        sharpened softmax (-> 0 without centering: one prototype takes all; -> ln K without
        sharpening: uniform). teacher_student_kl: KL(P_t || P_s) (-> 0 in both collapses: the
        student equals the teacher). Their sum is the loss on these views. center_norm: the
        centre's ℓ2 norm. log_k: ln K, the ceiling of the entropy. The prototypes' usage
        before and after balancing is the teacher's without and with the centre
        (:func:`mechanisms.balancing_signals`); target_param_distance: the teacher's lag
        behind the student (0 with momentum 0, DINO Fig. 6)."""
        opts = self.options
        center = self.center if opts.centering else torch.zeros_like(self.center)
        first, second = views[0], views[1]
        teacher = [self.teacher_head(self.teacher_backbone(v)).float() for v in (first, second)]
        student = [self.projector(self.backbone(v)).float() for v in (second, first)]
        temperature = self.current_teacher_temperature
        teacher_probs = torch.cat(
            [F.softmax((t - center).double() / temperature, dim=-1) for t in teacher]
        )
        uncentred = torch.cat([F.softmax(t.double() / temperature, dim=-1) for t in teacher])
        student_probs = torch.cat(
            [F.softmax(s.double() / opts.student_temperature, dim=-1) for s in student]
        )
        return {
            "teacher_entropy": float(mean_entropy(teacher_probs)),
            "teacher_student_kl": float(mean_kl(teacher_probs, student_probs)),
            "center_norm": float(self.center.norm()),
            "log_k": math.log(opts.num_prototypes),
            **balancing_signals(uncentred, teacher_probs),
            "target_param_distance": parameter_distance(
                [*self.teacher_backbone.parameters(), *self.teacher_head.parameters()],
                [*self.backbone.parameters(), *self.projector.parameters()],
            ),
        }

    def schedules(self) -> dict[str, float]:
        """The teacher's temperature (its warm-up) and the student's, every epoch."""
        return {
            "teacher_temperature": self.current_teacher_temperature,
            "student_temperature": self.options.student_temperature,
        }

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, C, H, W) -> (h (B, rep_dim) the CLS token, z (B, proj_dim) the student's
        ℓ2-normalised bottleneck)."""
        h = self.backbone(x)
        return h, self.projector.bottleneck(h)

    @torch.no_grad()
    def cluster_assignments(self, z: torch.Tensor) -> torch.Tensor | None:
        """z: (B, proj_dim) bottleneck -> (B,) the student's most probable prototype."""
        logits: torch.Tensor = self.projector.last_layer(z.float())
        return logits.argmax(dim=1)

    def num_clusters(self) -> int | None:
        return self.options.num_prototypes

    @torch.no_grad()
    def cluster_probabilities(self, z: torch.Tensor) -> torch.Tensor | None:
        """z: (B, proj_dim) bottleneck -> (B, K) the student's softmax at its temperature."""
        logits = self.projector.last_layer(z.float())
        return F.softmax(logits / self.options.student_temperature, dim=1)

    def prototype_vectors(self) -> torch.Tensor | None:
        return self.projector.prototypes()

    def monitor(self) -> dict[str, float]:
        return {"ema_momentum": self.current_momentum}
