"""Exact BatchNorm statistics for evaluation ("precise BN", Wu & Johnson 2021)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


@torch.no_grad()
def recompute_batchnorm_statistics(
    module: nn.Module,
    forward: Callable[[torch.Tensor], object],
    images: torch.Tensor,
    batch_size: int = 256,
) -> None:
    """Replace every BatchNorm's running mean / variance in ``module`` by the exact average
    of its batch statistics over ``images`` (N, C, H, W), passed through ``forward`` in
    batches of ``batch_size`` in training mode, without gradients.

    Why: eval-mode BatchNorm uses running statistics updated with momentum 0.1 once per
    optimiser step. At initialisation they are (0, 1), and a short CPU run takes only a few
    steps per epoch, so they lag far behind the network: a random network then looks
    collapsed (every embedding shares one large mean direction) and a trained one looks
    worse than it is. Training itself never reads the running statistics, so recomputing
    them changes no training step. Momenta and the training flag are restored afterwards.
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    was_training = module.training
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the batches below
    module.train()
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        if len(chunk) > 1:  # BatchNorm needs two samples in training mode
            forward(chunk)
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
    module.train(was_training)
