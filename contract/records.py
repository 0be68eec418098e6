"""The records every layer shares: run statuses, verdicts and the per-epoch record.

The trainer builds an :class:`EpochRecord` after every epoch; the store keeps its JSON, the
API serves it (``GET /api/runs/{id}/epochs`` and the ``epoch`` events), ``collapse-lab train
--jsonl`` writes it and the reports draw it. This module is its one definition.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from contract.strict import StrictModel

RunStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
RUN_STATUSES: tuple[RunStatus, ...] = ("queued", "running", "succeeded", "failed", "cancelled")
TERMINAL_STATUSES: tuple[RunStatus, ...] = ("succeeded", "failed", "cancelled")
ACTIVE_STATUSES: tuple[RunStatus, ...] = ("queued", "running")

VerdictKind = Literal["healthy", "dimensional_collapse", "complete_collapse"]
VERDICT_KINDS: tuple[VerdictKind, ...] = ("healthy", "dimensional_collapse", "complete_collapse")


class EmbeddingMetrics(StrictModel):
    """The diagnostics of one embedding (backbone h or projector z) on the probe set; see
    :func:`workers.engine.metrics.embedding_diagnostics` for each formula and its paper."""

    dim: int = Field(description="Embedding dimension d.")
    std_l2: float = Field(description="Mean over dims of the std of z/||z|| (SimSiam paper).")
    std_l2_sqrt_d: float = Field(description="std_l2 * sqrt(d): about 1 when healthy, 0 collapsed.")
    effective_rank: float = Field(description="RankMe (Garrido et al. 2023): 1 .. min(N, d).")
    spectrum: list[float] = Field(
        description="Sorted log eigenvalues of the covariance of z/||z|| (Jing et al. 2022)."
    )
    alignment: float | None = Field(
        description="E||f(x)-f(x+)||^2 of l2-normalised positive pairs."
    )
    uniformity: float = Field(description="log E exp(-2||f(x)-f(y)||^2) (Wang & Isola 2020).")
    cos_pos: float | None = Field(description="Mean cosine of positive pairs.")
    cos_rand: float = Field(description="Mean cosine of random pairs.")
    knn_top1: float | None = Field(description="k-NN top-1 accuracy of the probe against the bank.")
    cluster_entropy: float | None = Field(
        None, description="Entropy (nats) of cluster / prototype usage (SwAV, DeepCluster)."
    )
    cluster_entropy_max: float | None = Field(None, description="log K: the entropy's maximum.")
    # the spectrum-shape metrics (participation ratio, NESum, W2 uniformity, variance shares,
    # LiDAR): None in records written before they existed (and where a metric does not apply)
    participation_ratio: float | None = Field(
        None, description="(sum λ)^2 / sum λ^2 of the covariance of z/||z||: directions used."
    )
    nesum: float | None = Field(
        None, description="NESum, sum λ / λ_1 (He & Ozay 2022): 1 one direction, d isotropic."
    )
    w2_uniformity: float | None = Field(
        None,
        description="W2 distance of z/||z|| to N(0, I/d) (Fang et al. 2024): 0 isotropic, "
        "sqrt(2) constant.",
    )
    variance_shares: list[float] | None = Field(
        None, description="Share of the variance of z/||z|| on each top principal direction."
    )
    cluster_perplexity: float | None = Field(
        None, description="Effective number of clusters used (SwAV, DeepCluster): 1 .. K."
    )
    distinct_prototypes: int | None = Field(
        None, description="Prototype groups with cosine < 0.9 to each other: 1 .. K."
    )
    distinct_samples: int | None = Field(
        None,
        description="The same count for K probe embeddings: how distinct the data lets K "
        "prototypes be.",
    )
    num_prototypes: int | None = Field(None, description="K, the number of prototypes.")
    lidar: float | None = Field(
        None,
        description="LiDAR (Thilak et al. 2024), every lidar_every epochs: 1 .. min(n-1, d).",
    )


class Trend(StrictModel):
    """Relative changes per epoch of the projector's effective rank and std_l2·√d over the
    last few epochs (-0.3 = falling 30 % per epoch), and a warning before a collapse."""

    effective_rank_change_per_epoch: float | None = None
    std_change_per_epoch: float | None = None
    warning: str | None = None


class Verdict(StrictModel):
    """One epoch's or one run's verdict: the kind, when that state began, and why."""

    kind: VerdictKind
    onset_epoch: int | None = Field(
        None, description="First epoch of the final streak in this state; None when healthy."
    )
    reason: str = Field(description="One sentence citing the numbers behind the kind.")
    trend: Trend = Field(default_factory=Trend)
    findings: list[str] = Field(
        default_factory=list,
        description="What the kind does not say, one sentence with its numbers each: partial "
        "prototype collapse, backbone kNN below epoch 0, collapse coming, backbone vs projector.",
    )
    stopped_early: str | None = Field(
        None,
        description="Why the run stopped before its last epoch (stop_after_settled_epochs), "
        "one sentence; None when it trained every epoch.",
    )


class Placement(StrictModel):
    """Where an epoch was trained (a resumed run may move between workers and cards)."""

    host: str
    worker: str | None = Field(None, description="The Celery worker; None outside the service.")
    device: str = Field(description="'cpu' or the card's name, e.g. 'NVIDIA H200'.")
    device_memory_gib: float | None = None
    torch: str
    cuda: str | None = None
    peak_memory_mib: float | None = Field(
        None, description="Peak GPU memory allocated during the epoch (None on the CPU)."
    )


class EpochRecord(StrictModel):
    """Everything measured after one epoch (epoch 0 = the untrained network, the baseline)."""

    epoch: int = Field(ge=0)
    loss: float | None = Field(None, description="Mean training loss; None at epoch 0.")
    lr: float | None = None
    ema_momentum: float | None = Field(None, description="BYOL's current EMA momentum.")
    epoch_time_s: float = 0.0
    train_time_s: float = 0.0
    diagnostics_time_s: float = 0.0
    lidar_time_s: float = Field(0.0, description="Part of diagnostics_time_s spent on LiDAR.")
    images_per_s: float | None = None
    logs: dict[str, float] = Field(
        default_factory=dict, description="Method-specific scalars (loss terms...)."
    )
    # None for an external run that logs only z (no backbone representation h)
    backbone: EmbeddingMetrics | None
    projector: EmbeddingMetrics
    verdict: Verdict | None = Field(None, description="The verdict at this epoch.")
    placement: Placement | None = None
