"""Diagnostics of probe embeddings computed elsewhere: an external training loop sends, each
epoch, its probe set's projector output z (and optionally the backbone representation h,
two views of positive pairs and labels), and this module turns them into the same epoch
record a built-in run gets, with the same code (:func:`metrics.embedding_diagnostics`,
:func:`verdict.epoch_verdict`).

What differs from a built-in run, because an external run sends only its probe:
- no kNN bank of training images: kNN top-1 is leave-one-out over the probe (k = 20), and
  absent without labels;
- alignment and positive cosine need the two views; without them they are absent and the
  random-pair cosine pairs probe rows;
- no LiDAR (it needs many views of each image) and no cluster fields (no prototypes).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from contract import EmbeddingMetrics, EpochRecord
from workers.engine.metrics import NonFiniteEmbeddingError, embedding_diagnostics
from workers.engine.verdict import epoch_verdict


class ProbeError(ValueError):
    """The arrays cannot be measured (NaN, too few rows); the text says why."""


def _dense_labels(labels: np.ndarray | None) -> tuple[torch.Tensor | None, int | None]:
    """Any integer labels as 0..C-1 (the kNN votes index a C-wide table) and C."""
    if labels is None:
        return None, None
    classes, dense = np.unique(np.asarray(labels), return_inverse=True)
    return torch.from_numpy(dense.astype(np.int64).reshape(-1)), len(classes)


def probe_diagnostics(
    z: np.ndarray,
    h: np.ndarray | None = None,
    views: tuple[np.ndarray, np.ndarray] | None = None,
    labels: np.ndarray | None = None,
) -> tuple[EmbeddingMetrics | None, EmbeddingMetrics]:
    """(backbone metrics or None without h, projector metrics) of one epoch's probe.

    z: (N, d) float; h: (N, d_h); views: two (M, d) arrays, row i of each a positive pair;
    labels: (N,) ints (monitoring only)."""
    if z.shape[0] < 2:
        raise ProbeError(f"the probe needs at least 2 rows, z has {z.shape[0]}")
    label_tensor, num_classes = _dense_labels(labels)
    z_tensor = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32))
    view1 = view2 = None
    if views is not None:
        view1, view2 = (torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for v in views)
    try:
        projector = embedding_diagnostics(
            z_tensor, view1, view2, label_tensor, None, None, num_classes
        )
        backbone = None
        if h is not None:
            h_tensor = torch.from_numpy(np.ascontiguousarray(h, dtype=np.float32))
            backbone = embedding_diagnostics(
                h_tensor, None, None, label_tensor, None, None, num_classes
            )
    except NonFiniteEmbeddingError as exc:
        raise ProbeError(str(exc)) from exc
    return backbone, projector


def probe_epoch_record(
    epoch: int,
    z: np.ndarray,
    *,
    history: list[EpochRecord],
    h: np.ndarray | None = None,
    views: tuple[np.ndarray, np.ndarray] | None = None,
    labels: np.ndarray | None = None,
    loss: float | None = None,
    scalars: dict[str, float | None] | None = None,
    configuration: Mapping[str, Any] | None = None,
) -> EpochRecord:
    """The epoch record of one external epoch, its verdict computed over ``history`` (the
    run's earlier records, in epoch order; its first one is the baseline) plus this one;
    ``configuration``: the researcher's config, for the cause (see ``verdict.epoch_verdict``)."""
    started = time.perf_counter()
    backbone, projector = probe_diagnostics(z, h, views, labels)
    logs = {name: value for name, value in (scalars or {}).items() if value is not None}
    record = EpochRecord(
        epoch=epoch,
        loss=loss,
        lr=logs.get("lr"),
        diagnostics_time_s=time.perf_counter() - started,
        logs=logs,
        backbone=backbone,
        projector=projector,
    )
    before = [r for r in history if r.epoch < epoch]
    record.verdict = epoch_verdict([*before, record], configuration=configuration)
    return record
