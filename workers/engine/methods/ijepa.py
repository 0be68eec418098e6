"""I-JEPA: from a large context block of patches, a narrow predictor predicts the features
an EMA target encoder gives to several target blocks of the same image.

Assran, Duval, Misra, Bojanowski, Vincent, Rabbat, LeCun, Ballas. "Self-Supervised Learning
from Images with a Joint-Embedding Predictive Architecture". CVPR 2023 (Sec. 3; the loss and
layer-normed targets as in the authors' code and lightly's I-JEPA example).

The backbone is the context encoder; it must have ``forward_tokens(images,
patch_indices=None) -> (B, K or N, D)`` (the ``vit_tiny`` backbone).
"""

from __future__ import annotations

import copy
import math
from typing import Protocol, cast

import torch
import torch.nn.functional as F
from torch import nn

from contract import RunConfig
from contract.methods.ijepa import IJEPA_SPEC, IJEPAOptions
from workers.engine.mechanisms import asymmetric_signals, parameter_distance
from workers.engine.methods.base import LossOutput, Method, StepInfo, Views
from workers.engine.metrics import std_l2
from workers.engine.parts.ema import ema_update
from workers.engine.parts.multiblock import multiblock_masks
from workers.engine.vit import (
    HEAD_DIM,
    Block,
    gather_tokens,
    init_transformer_weights,
    sincos_position_embedding,
)


class TokenEncoder(Protocol):
    def forward_tokens(
        self, images: torch.Tensor, patch_indices: torch.Tensor | None = None
    ) -> torch.Tensor: ...


def encode_tokens(
    encoder: nn.Module, images: torch.Tensor, patch_indices: torch.Tensor | None = None
) -> torch.Tensor:
    """images (B, C, H, W) -> (B, K or N, D) patch tokens of a ``vit_tiny``-like encoder."""
    return cast(TokenEncoder, encoder).forward_tokens(images, patch_indices)


def linear_momentum(base_momentum: float, step: int, total_steps: int) -> float:
    """The paper's target momentum: linear from ``base_momentum`` to 1 over training; 0 (no
    EMA) and 1 (frozen target) stay constant so those ablations mean what they say."""
    if base_momentum in (0.0, 1.0):
        return base_momentum
    progress = min(max(step / max(total_steps, 1), 0.0), 1.0)
    return base_momentum + (1.0 - base_momentum) * progress


def ijepa_loss(
    predicted: torch.Tensor, target_tokens: torch.Tensor, targets: list[torch.Tensor], loss: str
) -> torch.Tensor:
    """predicted: (M B, K, D) the predictor's output for the M target blocks, block-major;
    target_tokens: (B, N, D) the target encoder's patch tokens; targets: M x (B, K) patch
    indices. The targets are the tokens layer-normed over D (no affine), gathered at each
    block. Smooth L1 (beta 1) or squared error, averaged over every element. Scalar."""
    normed = F.layer_norm(target_tokens, target_tokens.shape[-1:])
    gathered = torch.cat([gather_tokens(normed, indices) for indices in targets])
    if loss == "l2":
        return F.mse_loss(predicted, gathered)
    return F.smooth_l1_loss(predicted, gathered)


class Predictor(nn.Module):
    """The narrow transformer predictor: context tokens (B, K_c, D) at their positions,
    plus one learned mask token at each target position, through ``depth`` blocks of width
    ``width``; returns the tokens at the target positions mapped back to D."""

    def __init__(self, encoder_dim: int, width: int, depth: int) -> None:
        super().__init__()
        self.embed = nn.Linear(encoder_dim, width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, width))
        self.blocks = nn.Sequential(*(Block(width, width // HEAD_DIM) for _ in range(depth)))
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, encoder_dim)
        self.apply(init_transformer_weights)
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def forward(
        self,
        context: torch.Tensor,
        context_indices: torch.Tensor,
        targets: list[torch.Tensor],
        grid: tuple[int, int],
    ) -> torch.Tensor:
        """context (B, K_c, D), context_indices (B, K_c), targets M x (B, K_t) patch
        indices on a ``grid`` of (rows, columns) -> (M B, K_t, D), block-major (the M
        blocks of the batch one after the other)."""
        width = self.mask_token.shape[-1]
        position = sincos_position_embedding(width, *grid).to(context.device, context.dtype)
        x = self.embed(context) + position[context_indices]  # (B, K_c, w)
        x = x.repeat(len(targets), 1, 1)  # (M B, K_c, w)
        queries = torch.cat([position[indices] for indices in targets]) + self.mask_token
        out = self.norm(self.blocks(torch.cat([x, queries], dim=1)))
        predicted: torch.Tensor = self.out(out[:, context.shape[1] :])
        return predicted


class IJEPA(Method):
    """Context encoder (the backbone) on the context block, predictor to the target blocks,
    target encoder (EMA copy, or the backbone itself without EMA) on the whole image.

    Diagnostics: h is the context encoder's mean patch token, z the target encoder's; there
    is no projector. z is what the loss regresses onto: if the target features become the
    same for every image the predictor's task is trivial, so collapse shows there first.
    """

    spec = IJEPA_SPEC

    def __init__(self, backbone: nn.Module, rep_dim: int, config: RunConfig) -> None:
        super().__init__(backbone, rep_dim, config)
        self.options: IJEPAOptions
        if not hasattr(backbone, "forward_tokens"):
            raise ValueError(
                f"I-JEPA predicts patch tokens: it needs the 'vit_tiny' backbone, not "
                f"{config.backbone!r}"
            )
        opts = self.options
        self.predictor = Predictor(rep_dim, opts.predictor_width, opts.predictor_depth)
        self.target_backbone = (
            copy.deepcopy(backbone).requires_grad_(False) if opts.target_momentum > 0 else None
        )
        self.current_momentum = linear_momentum(opts.target_momentum, 0, 1)

    def views(self) -> Views:
        """One view: the paper's random resized crop of 0.3-1 of the image alone (Assran et
        al. 2023, Sec. 3; the reference's ``crop_scale: [0.3, 1.0]``, colour jitter, flip and
        blur off) with ``augmentation: crop``; by default the SimCLR recipe (README, "I-JEPA
        and LeJEPA" says why). Its context and targets are blocks of that one view."""
        if self.options.augmentation == "crop":
            return Views(count=1, global_scale=(0.3, 1.0), photometric=False)
        return Views(count=1)

    def target_encoder(self) -> nn.Module:
        return self.backbone if self.target_backbone is None else self.target_backbone

    def training_loss(
        self, views: list[torch.Tensor], indices: torch.Tensor, step: StepInfo
    ) -> LossOutput:
        images = views[0]  # its one view (:meth:`views`)
        target_tokens = self.target_tokens(images)
        side = math.isqrt(target_tokens.shape[1])  # square images: a side x side grid
        masks = multiblock_masks(
            images.shape[0], (side, side), step.step, num_targets=self.options.num_targets
        )
        return self.predict_targets(images, target_tokens, masks.context, masks.targets)

    def target_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, C, H, W) -> (B, N, D) the target encoder's patch tokens (detached
        unless ``stop_gradient`` is off)."""
        with torch.set_grad_enabled(not self.options.stop_gradient):
            return encode_tokens(self.target_encoder(), images)

    def predict_targets(
        self,
        images: torch.Tensor,
        target_tokens: torch.Tensor,
        context_indices: torch.Tensor,
        targets: list[torch.Tensor],
    ) -> LossOutput:
        """images (B, C, H, W), their target tokens (B, N, D), context_indices (B, K_c) and
        targets M x (B, K_t) row-major patch indices -> the loss of predicting the target
        blocks' tokens from the context block."""
        context_indices = context_indices.to(images.device)
        targets = [t.to(images.device) for t in targets]
        side = math.isqrt(target_tokens.shape[1])
        context = encode_tokens(self.backbone, images, context_indices)  # (B, K_c, D)
        predicted = self.predictor(context, context_indices, targets, (side, side))
        loss = ijepa_loss(predicted.float(), target_tokens.float(), targets, self.options.loss)
        # the targets' std_l2·√d across the batch's images: near 0 when the target collapsed
        pooled = target_tokens.detach().mean(dim=1)
        logs = {
            "target_std_l2_sqrt_d": std_l2(pooled) * math.sqrt(pooled.shape[1]),
            "context_patches": float(context_indices.shape[1]),
            "target_patches": float(targets[0].shape[1]),
        }
        return LossOutput(loss, logs)

    @torch.no_grad()
    def after_step(self, step: StepInfo) -> None:
        if self.target_backbone is None:
            return
        base = self.options.target_momentum
        self.current_momentum = linear_momentum(base, step.step, step.total_steps)
        ema_update(self.target_backbone, self.backbone, self.current_momentum)

    def excluded_from_weight_decay(self) -> set[str]:
        return {n for n, _ in self.named_parameters() if n.startswith("target_")}

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, C, H, W) -> (h, z): the context encoder's and the target encoder's mean
        patch token, (B, D) each; one pass when the target is the context encoder (no EMA)."""
        h = encode_tokens(self.backbone, x).mean(dim=1)
        if self.target_backbone is None:
            return h, h
        return h, encode_tokens(self.target_backbone, x).mean(dim=1)

    def monitor(self) -> dict[str, float]:
        return {"ema_momentum": self.current_momentum}

    @torch.no_grad()
    def probe_logs(self, views: list[torch.Tensor]) -> dict[str, float]:
        """The asymmetric branch's signals on the probe images (the first view), with one
        fixed set of multi-block masks (seed 0, the global RNG left as it was): per image
        and target block, the predictor's output p and the layer-normed target tokens,
        each averaged over the block's patches, against z the context encoder's mean
        context token (the predictor's input; its linear map from z to p by least squares).
        target_param_distance: the target encoder's lag (0 without EMA: the target is the
        context encoder itself)."""
        images = views[0]
        target_tokens = self.target_tokens(images).float()
        side = math.isqrt(target_tokens.shape[1])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            masks = multiblock_masks(
                images.shape[0], (side, side), 0, num_targets=self.options.num_targets
            )
        context_indices = masks.context.to(images.device)
        targets = [t.to(images.device) for t in masks.targets]
        context = encode_tokens(self.backbone, images, context_indices)  # (B, K_c, D)
        predicted = self.predictor(context, context_indices, targets, (side, side)).float()
        normed = F.layer_norm(target_tokens, target_tokens.shape[-1:])
        target = torch.cat([gather_tokens(normed, t) for t in targets]).mean(dim=1)  # (M B, D)
        z = context.float().mean(dim=1).repeat(len(targets), 1)  # (M B, D), block-major
        signals = asymmetric_signals(z, predicted.mean(dim=1), target)
        signals["target_param_distance"] = (
            0.0
            if self.target_backbone is None
            else parameter_distance(self.target_backbone.parameters(), self.backbone.parameters())
        )
        return signals
