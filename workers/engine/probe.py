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

The method internals an external loop may send on the same probe rows (``target``, ``p``,
``predictor_weight``, ``teacher``, ``student``; loss terms and schedules as scalars) give the
same mechanism signals as a built-in run's, from the same functions
(:func:`mechanism_signals`, :mod:`workers.engine.mechanisms`; docs/mechanisms.md).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from contract import EmbeddingMetrics, EpochRecord
from workers.engine import mechanisms
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


# Loss terms of the redundancy-reduction family: an external run that logs one of them gets
# that family's geometry of z (the variance hinge's only with VICReg's variance term, whose
# scale it assumes).
_REDUNDANCY_TERMS = frozenset(
    {
        "loss_invariance",
        "loss_variance",
        "loss_covariance",
        "loss_on_diagonal",
        "loss_off_diagonal",
        "sigreg_statistic",
    }
)


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float64))


def _probabilities(array: np.ndarray) -> torch.Tensor:
    """(N, K) probabilities as sent (float32): rounding's negatives clipped, rows renormalised."""
    probs = _tensor(array).clamp_min(0)
    return probs / probs.sum(dim=1, keepdim=True).clamp_min(1e-300)


def _assignment_signals(probs: torch.Tensor) -> dict[str, float]:
    """The sharpness and usage of (N, K) assignment probabilities (a DINO teacher's, or a
    clustering loop's codes) and ln K, by their names in METHOD_INTERNALS."""
    return {
        "assignment_entropy": float(mechanisms.mean_entropy(probs)),
        "usage_entropy_after_balancing": mechanisms.usage_entropy(probs),
        "log_k": float(np.log(probs.shape[1])),
    }


def mechanism_signals(
    z: np.ndarray,
    internals: dict[str, np.ndarray],
    logged: dict[str, float],
    views: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, float]:
    """The mechanism signals of an external epoch, by their names in METHOD_INTERNALS.

    z: (N, d) the probe's projector output (the predictor's input); internals: the arrays
    the client sent on the same rows, ``target`` (N, d_t) the target branch's output,
    ``p`` (N, d_t) the predictor's output, ``predictor_weight`` (d_t, d) a linear
    predictor, ``teacher`` and ``student`` (N, K) a DINO-style loop's probabilities, ``codes``
    (N, K) a clustering loop's assignments after balancing; logged: the epoch's scalars
    (loss terms among them); views: the probe's two augmented views, split into InfoNCE's
    alignment and repulsion when the loop logs its ``temperature``. Only the signals the
    internals determine are returned: the prototypes' usage before balancing and the centre
    are the loop's own business (a centre's norm travels as a scalar)."""
    # the wire format carries only matrices; an in-process caller could pass more (lightly
    # keeps DINO's centre as (1, 1, K), which broadcasts a teacher to (1, N, K))
    for name, array in internals.items():
        if array.ndim != 2:
            raise ProbeError(f"{name} must be a matrix (N, K or d), got shape {array.shape}")
    z_tensor = _tensor(z)
    target, p = internals.get("target"), internals.get("p")
    weight = internals.get("predictor_weight")
    weight_tensor = None if weight is None else _tensor(weight)
    signals: dict[str, float] = {}
    if target is not None and p is not None:  # p shaped as target (checked by the wire)
        signals |= mechanisms.asymmetric_signals(
            z_tensor, _tensor(p), _tensor(target), weight_tensor
        )
    elif target is not None and target.shape == z.shape:  # no predictor: z against the target
        signals["online_target_cosine"] = mechanisms.online_target_cosine(z_tensor, _tensor(target))
    if "predictor_commutator" not in signals:
        if weight_tensor is not None:
            signals |= mechanisms.predictor_signals(z_tensor, weight_tensor)
        elif p is not None and p.shape == z.shape:
            # p without a target (lightly's SimSiam names: no target branch to send): the
            # predictor is still measured, through the least-squares map from z to p
            least_squares = mechanisms.least_squares_predictor(z_tensor, _tensor(p))
            signals |= mechanisms.predictor_signals(z_tensor, least_squares)
    teacher = internals.get("teacher")
    if teacher is not None:
        teacher_probs = _probabilities(teacher)
        signals |= _assignment_signals(teacher_probs)
        signals["teacher_entropy"] = signals["assignment_entropy"]
        student = internals.get("student")
        if student is not None:
            signals["teacher_student_kl"] = float(
                mechanisms.mean_kl(teacher_probs, _probabilities(student))
            )
    codes = internals.get("codes")
    if codes is not None:  # never with teacher= (the wire refuses both)
        signals |= _assignment_signals(_probabilities(codes))
    temperature = logged.get("temperature")
    if views is not None and temperature is not None and temperature > 0:
        signals |= mechanisms.infonce_split(_tensor(views[0]), _tensor(views[1]), temperature)
    if _REDUNDANCY_TERMS & logged.keys():
        signals["off_diagonal_energy"] = mechanisms.off_diagonal_energy(z_tensor)
        if "loss_variance" in logged:
            signals["dims_under_variance_hinge"] = mechanisms.dims_under_variance_hinge(z_tensor)
    return signals


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
    internals: dict[str, np.ndarray] | None = None,
    configuration: Mapping[str, Any] | None = None,
) -> EpochRecord:
    """The epoch record of one external epoch, its verdict computed over ``history`` (the
    run's earlier records, in epoch order; its first one is the baseline) plus this one.
    ``internals``: the method's arrays on the probe rows (:func:`mechanism_signals`); the
    signals computed from them take precedence over scalars of the same names.
    ``configuration``: the researcher's config, for the cause (see ``verdict.epoch_verdict``)."""
    started = time.perf_counter()
    backbone, projector = probe_diagnostics(z, h, views, labels)
    logs = {name: value for name, value in (scalars or {}).items() if value is not None}
    try:
        logs |= mechanism_signals(z, internals or {}, logs, views)
    except (RuntimeError, ValueError) as exc:  # e.g. an eigen-solver that does not converge
        raise ProbeError(f"the method internals cannot be measured: {exc}") from exc
    # the store keeps finite numbers only (json_safe): an infinite signal (a diverged loop's)
    # would come back as null and stop the run's later epochs
    logs = {name: value for name, value in logs.items() if math.isfinite(value)}
    record = EpochRecord(
        epoch=epoch,
        loss=loss,
        lr=logs.get("lr"),
        ema_momentum=logs.get("ema_momentum"),
        diagnostics_time_s=time.perf_counter() - started,
        logs=logs,
        backbone=backbone,
        projector=projector,
    )
    before = [r for r in history if r.epoch < epoch]
    record.verdict = epoch_verdict([*before, record], configuration=configuration)
    return record


def verdicts_revised_by(
    history: Sequence[EpochRecord], epoch: int, configuration: Mapping[str, Any] | None = None
) -> list[EpochRecord]:
    """The records after ``epoch`` whose verdict changes now that ``epoch`` is in
    ``history`` (the run's records, this one included), each a copy with its new verdict, in
    epoch order. An epoch that arrives after later ones (a sync of the offline part a job
    wrote before it was requeued on a node that reached the server) changes the history each
    later verdict was computed over, its baseline above all when it is epoch 0."""
    ordered = sorted(history, key=lambda record: record.epoch)
    revised = []
    for index, record in enumerate(ordered):
        if record.epoch <= epoch:
            continue
        verdict = epoch_verdict(ordered[: index + 1], configuration=configuration)
        if verdict != record.verdict:
            revised.append(record.model_copy(update={"verdict": verdict}))
    return revised
