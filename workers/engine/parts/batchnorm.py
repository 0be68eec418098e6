"""Exact BatchNorm statistics for evaluation ("precise BN", Wu & Johnson 2021)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch
from torch import nn

Output = TypeVar("Output")


def has_batchnorm(module: nn.Module) -> bool:
    """Whether any submodule of ``module`` is a BatchNorm layer."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


@torch.no_grad()
def recompute_batchnorm_statistics(
    module: nn.Module,
    forward: Callable[[torch.Tensor], Output],
    images: torch.Tensor,
    batch_size: int = 256,
) -> list[Output]:
    """Replace every BatchNorm's running mean / variance in ``module`` by the exact average
    of its batch statistics over ``images`` (N, C, H, W), passed through ``forward`` in
    near-equal batches of at most ``batch_size`` in training mode, without gradients.

    Returns what ``forward`` returned for each batch, in order: outputs normalised by their
    own batch statistics, which callers may use instead of a second, eval-mode pass.

    Why: eval-mode BatchNorm uses running statistics updated with momentum 0.1 once per
    optimiser step. At initialisation they are (0, 1), and a short CPU run takes only a few
    steps per epoch, so they lag far behind the network: a random network then looks
    collapsed (every embedding shares one large mean direction) and a trained one looks
    worse than it is. Training itself never reads the running statistics, so recomputing
    them changes no training step. Momenta and the training flag are restored afterwards.
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    was_training = module.training
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the batches below
    module.train()
    # Near-equal batches: never a last batch of one sample, which BatchNorm refuses.
    n_batches = max(1, -(-len(images) // batch_size))
    outputs = [forward(chunk) for chunk in torch.tensor_split(images, n_batches)]
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
    module.train(was_training)
    return outputs
