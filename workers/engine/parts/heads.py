"""MLP projector / predictor heads, and the linear predictors of Tian, Chen & Ganguli."""

from __future__ import annotations

import math

import torch
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


class LinearPredictor(nn.Module):
    """A linear predictor without bias, p = W_p z (Tian, Chen & Ganguli, "Understanding
    Self-Supervised Learning Dynamics without Contrastive Pairs", ICML 2021, Sec. 3): W_p is
    the free d x d matrix W, or with ``symmetric`` its symmetric part (W + W^T)/2, the paper's
    symmetric predictor (Sec. 5, Table 3): every step's gradient reaches W through the
    symmetrisation, so W_p stays symmetric whatever W becomes. Maps (B, d) -> (B, d)."""

    def __init__(self, dim: int, symmetric: bool) -> None:
        super().__init__()
        self.symmetric = symmetric
        self.weight = nn.Parameter(torch.empty(dim, dim))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Linear's initialisation

    def matrix(self) -> torch.Tensor:
        """W_p (d, d), the map applied: p = z W_p^T."""
        return (self.weight + self.weight.T) / 2 if self.symmetric else self.weight

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.matrix().T
