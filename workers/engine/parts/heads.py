"""MLP projector / predictor heads."""

from __future__ import annotations

from torch import nn


def mlp(
    in_dim: int,
    hidden_dim: int,
    out_dim: int,
    num_layers: int,
) -> nn.Sequential:
    """A projector or predictor: ``num_layers`` linear layers, each hidden one followed by
    BatchNorm and ReLU, as in SimCLR / BYOL / SimSiam / Barlow Twins / VICReg heads.

    Maps (B, in_dim) -> (B, out_dim). Linear layers followed by BatchNorm have no bias (the
    BatchNorm shift makes it redundant); the output layer keeps its bias and has no
    BatchNorm, so a collapsed output is not rescaled into a spread-out one at evaluation.
    """
    if num_layers < 1:
        raise ValueError("an MLP head needs at least one layer")
    layers: list[nn.Module] = []
    dim = in_dim
    for _ in range(num_layers - 1):
        layers += [nn.Linear(dim, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim), nn.ReLU()]
        dim = hidden_dim
    layers.append(nn.Linear(dim, out_dim))
    return nn.Sequential(*layers)
