"""The interface every SSL method implements, and the small types the trainer passes it.

A method owns its heads (projector, predictor, prototypes, EMA target...) around a shared
backbone. The trainer hands it augmented views and asks for a loss; it never needs to know
which method it is training.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from pydantic import BaseModel
from torch import nn

from contract import MethodSpec, RunConfig


@dataclass(frozen=True)
class Views:
    """How the trainer draws a method's global views from each batch
    (workers/engine/trainer.py); its local views are ``Method.n_local_views`` small crops.
    ``global_scale``: their crop area range (at augmentation strength 1); ``photometric``:
    flip, colour jitter, grayscale and blur besides the crop (workers/engine/augment.py)."""

    count: int = 2
    global_scale: tuple[float, float] = (0.2, 1.0)
    photometric: bool = True


@dataclass
class StepInfo:
    """Where training is: used for schedules such as BYOL's cosine EMA momentum."""

    epoch: int  # 1-based epoch being trained
    step: int  # global optimiser step, 0-based
    total_steps: int


@dataclass
class LossOutput:
    loss: torch.Tensor  # scalar, differentiable
    logs: dict[str, float] = field(default_factory=dict)  # extra scalars for the epoch record


class Method(nn.Module):
    """Base class. Subclasses set ``spec`` (their torch-free catalogue entry: name, paper,
    options model, preferred defaults; see :mod:`contract.methods`), build
    ``self.projector`` (the head whose output z the diagnostics measure) and implement
    :meth:`training_loss`. ``self.options`` is the run's options as the spec's model.
    """

    spec: ClassVar[MethodSpec]
    projector: nn.Module

    def __init__(self, backbone: nn.Module, rep_dim: int, config: RunConfig) -> None:
        super().__init__()
        self.backbone = backbone
        self.rep_dim = rep_dim
        self.config = config
        self.options: BaseModel = self.spec.options.model_validate(config.options)

    # -- training -------------------------------------------------------------------------
    def views(self) -> Views:
        """The global views :meth:`training_loss` gets: two SimCLR-style views by default."""
        return Views()

    def n_local_views(self) -> int:
        """Extra small crops per image (SwAV multi-crop); 0 for everyone else."""
        return 0

    def training_loss(
        self, views: list[torch.Tensor], indices: torch.Tensor, step: StepInfo
    ) -> LossOutput:
        """views: [V x (B, C, H, W)] float, the global views first (:meth:`views`), then the
        local ones; indices: (B,) dataset indices of the images (DeepCluster looks up
        pseudo-labels with them)."""
        raise NotImplementedError

    def after_step(self, step: StepInfo) -> None:
        """Called after each optimiser step (EMA update, prototype normalisation...)."""

    def on_epoch_start(self, epoch: int, encode_train_set: Callable[[], torch.Tensor]) -> None:
        """Called before each training epoch. ``encode_train_set()`` returns the projector
        outputs (N_train, d) of the un-augmented training images (DeepCluster's k-means)."""

    def sampling_weights(self) -> torch.Tensor | None:
        """Per-training-image sampling weights for the next epoch (DeepCluster's balanced
        sampling), or None for a uniform shuffle."""
        return None

    def excluded_from_weight_decay(self) -> set[str]:
        """Parameter names not decayed nor trained by the optimiser (e.g. EMA target)."""
        return set()

    # -- monitoring -----------------------------------------------------------------------
    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, C, H, W) -> (h, z): backbone representation (B, rep_dim) and projector
        output (B, d) of the online network, used for the diagnostics."""
        h = self.backbone(x)
        return h, self.projector(h)

    @torch.no_grad()
    def cluster_assignments(self, z: torch.Tensor) -> torch.Tensor | None:
        """z: (B, d) projector outputs -> (B,) hard cluster ids for the cluster-usage
        entropy, or None for methods without clusters."""
        return None

    def num_clusters(self) -> int | None:
        return None

    @torch.no_grad()
    def cluster_probabilities(self, z: torch.Tensor) -> torch.Tensor | None:
        """z: (B, d) projector outputs -> (B, K) soft assignments to the clusters (rows sum
        to 1), for the effective number of clusters used; None without clusters."""
        return None

    def prototype_vectors(self) -> torch.Tensor | None:
        """(K, d) the prototypes / centroids the clusters are defined by (for the count of
        distinct prototypes); None without clusters."""
        return None

    def monitor(self) -> dict[str, float]:
        """Scalars to log once per epoch (e.g. current EMA momentum)."""
        return {}

    @torch.no_grad()
    def probe_logs(self, views: list[torch.Tensor]) -> dict[str, float]:
        """views: two augmented views [2 x (B, C, H, W)] of the same probe images, the
        module in eval mode -> the method's mechanism signals measured on them, stored in the
        epoch record's ``logs`` under their names in ``contract.metrics.METHOD_INTERNALS``
        (docs/mechanisms.md): each family's guard (the asymmetric branch, the negatives, the
        balancing, the variance and decorrelation terms, DINO's centering and sharpening),
        computed with :mod:`workers.engine.mechanisms`; {} by default."""
        return {}

    def schedules(self) -> dict[str, float]:
        """The method's schedules that move the collapse boundary, logged every epoch under
        their names in ``METHOD_INTERNALS`` (temperatures); the trainer adds the optimiser's
        weight decay and the record has the learning rate and the EMA momentum. {} by
        default."""
        return {}
