"""Optimisers and the learning-rate schedule shared by every method."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from contract import RunConfig


class LARS(torch.optim.Optimizer):
    """SGD with layer-wise adaptive rate scaling (You et al. 2017), as used by BYOL and
    Barlow Twins. Biases and normalisation parameters (1-D tensors) skip both weight decay
    and the trust ratio, following the BYOL paper's appendix."""

    def __init__(
        self,
        params: Iterable[nn.Parameter],
        lr: float,
        weight_decay: float = 0.0,
        momentum: float = 0.9,
        eta: float = 0.02,
    ) -> None:
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay, "momentum": momentum})
        self.eta = eta

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]  # no closure
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if p.ndim > 1:
                    grad = grad.add(p, alpha=group["weight_decay"])
                    param_norm, grad_norm = torch.linalg.norm(p), torch.linalg.norm(grad)
                    trust = torch.where(
                        (param_norm > 0) & (grad_norm > 0),
                        self.eta * param_norm / grad_norm,
                        torch.ones_like(param_norm),
                    )
                    grad = grad.mul(trust)
                buf = self.state[p].get("momentum_buffer")
                if buf is None:
                    buf = self.state[p]["momentum_buffer"] = grad.clone()
                else:
                    buf.mul_(group["momentum"]).add_(grad)
                p.add_(buf, alpha=-group["lr"])


def build_optimizer(model: nn.Module, config: RunConfig, frozen: set[str]) -> torch.optim.Optimizer:
    """The optimiser over every trainable parameter except those named in ``frozen``.
    The base lr is scaled linearly with batch size (Goyal et al. 2017): lr * batch / 256."""
    params = [p for n, p in model.named_parameters() if p.requires_grad and n not in frozen]
    lr = scaled_lr(config)
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=config.weight_decay)
    return LARS(params, lr=lr, weight_decay=config.weight_decay, momentum=config.momentum)


def scaled_lr(config: RunConfig) -> float:
    return config.lr * config.batch_size / 256


def lr_at(config: RunConfig, step: int, steps_per_epoch: int) -> float:
    """Linear warm-up for ``warmup_epochs``, then cosine decay to 0 (or constant)."""
    base = scaled_lr(config)
    warmup = config.warmup_epochs * steps_per_epoch
    if step < warmup:
        return base * (step + 1) / warmup
    if config.schedule == "constant":
        return base
    total = max(config.epochs * steps_per_epoch - warmup, 1)
    return base * 0.5 * (1 + math.cos(math.pi * (step - warmup) / total))
