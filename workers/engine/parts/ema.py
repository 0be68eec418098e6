"""Exponential moving average target network with BYOL's cosine momentum schedule."""

from __future__ import annotations

import math

import torch
from torch import nn


def cosine_momentum(base_momentum: float, step: int, total_steps: int) -> float:
    """BYOL (Grill et al. 2020, Sec. 3.2): tau_k = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2,
    rising from ``base_momentum`` at step 0 to 1 at step K = ``total_steps``."""
    progress = min(max(step / max(total_steps, 1), 0.0), 1.0)
    return 1.0 - (1.0 - base_momentum) * (math.cos(math.pi * progress) + 1.0) / 2.0


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """In place: theta_target <- momentum * theta_target + (1 - momentum) * theta_online.

    Parameters are averaged; buffers (BatchNorm running statistics) are copied from the
    online network. ``momentum`` = 0 makes the target an exact copy, 1 leaves it frozen.
    """
    for t, o in zip(target.parameters(), online.parameters(), strict=True):
        t.mul_(momentum).add_(o.detach(), alpha=1.0 - momentum)
    for buffer, source in zip(target.buffers(), online.buffers(), strict=True):
        buffer.copy_(source)
