"""Diagnostics of embeddings sent by an external loop (workers/engine/probe.py): the same
metrics and verdict as a built-in run, with what an external run lacks left out."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from contract import EpochRecord
from workers.engine.probe import (
    ProbeError,
    probe_diagnostics,
    probe_epoch_record,
    verdicts_revised_by,
)


def _history(scales: list[float], **extra: Any) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    base = rng.standard_normal((256, 32)).astype(np.float32)
    history: list[EpochRecord] = []
    for epoch, scale in enumerate(scales):
        z = base * scale + 3.0  # a shrinking spread around one point: collapse
        history.append(probe_epoch_record(epoch, z, history=history, **extra))
    return [record.model_dump(mode="json") for record in history]


def test_a_shrinking_embedding_is_complete_collapse_without_views_labels_or_h() -> None:
    history = _history([1.0, 0.3, 0.05, 0.01])
    last = history[-1]
    assert [r["verdict"]["kind"] for r in history][-1] == "complete_collapse"
    assert last["verdict"]["onset_epoch"] is not None
    assert last["backbone"] is None
    projector = last["projector"]
    assert projector["alignment"] is None and projector["cos_pos"] is None
    assert projector["knn_top1"] is None and projector["cos_rand"] > 0.99


def test_a_steady_embedding_stays_healthy_and_its_verdict_needs_no_backbone() -> None:
    history = _history([1.0, 1.0, 1.0], labels=np.arange(256) % 4)
    assert history[-1]["verdict"]["kind"] == "healthy"
    assert "backbone" not in history[-1]["verdict"]["reason"]


def test_an_epoch_arriving_late_revises_the_verdicts_judged_without_it() -> None:
    """Epochs 3-5 of a run whose raw z shrank to a tenth of epoch 0's, uploaded before
    epoch 0 (a sync of the offline part): judged over themselves they look healthy (epoch 3
    is their baseline); once epoch 0 is in, every later verdict is complete collapse from
    epoch 3, and a record whose verdict stays the same is not returned."""
    rng = np.random.default_rng(2)
    base = rng.standard_normal((256, 32)).astype(np.float32)
    history: list[EpochRecord] = []
    for epoch in (3, 4, 5):
        history.append(probe_epoch_record(epoch, base * 0.1, history=history))
    assert [r.verdict.kind for r in history if r.verdict] == ["healthy"] * 3
    first = probe_epoch_record(0, base, history=history)
    assert first.verdict is not None and first.verdict.kind == "healthy"
    revised = verdicts_revised_by([*history, first], 0)
    assert [r.epoch for r in revised] == [3, 4, 5]
    for record in revised:
        assert record.verdict is not None and record.verdict.kind == "complete_collapse"
        assert record.verdict.onset_epoch == 3
        assert "shrank towards a single point" in record.verdict.reason
    assert history[0].verdict is not None and history[0].verdict.kind == "healthy"  # copies
    # with every epoch in, nothing later than the last changes
    assert verdicts_revised_by([first, *revised], 5) == []
    assert verdicts_revised_by([first, *revised], 4) == []


def test_knn_is_leave_one_out_over_the_probe() -> None:
    """Every sample in its own place, labels at random: a sample is its own nearest
    neighbour, so kNN would be 1.0 if it voted for itself; leave-one-out is about chance."""
    rng = np.random.default_rng(1)
    z = rng.standard_normal((400, 64)).astype(np.float32)
    labels = rng.integers(0, 4, 400)
    _, projector = probe_diagnostics(z, labels=labels)
    assert projector.knn_top1 is not None and projector.knn_top1 < 0.45
    clustered = np.repeat(rng.standard_normal((4, 64)), 100, axis=0) + 0.01 * z
    _, separated = probe_diagnostics(clustered.astype(np.float32), labels=np.repeat(range(4), 100))
    assert separated.knn_top1 == 1.0


def test_views_and_h_add_alignment_and_a_backbone() -> None:
    rng = np.random.default_rng(2)
    z = rng.standard_normal((128, 16)).astype(np.float32)
    backbone, projector = probe_diagnostics(z, h=z * 2, views=(z[:64], z[:64] + 0.01))
    assert backbone is not None and backbone.dim == 16
    assert projector.alignment is not None and projector.alignment < 0.01
    assert projector.cos_pos is not None and projector.cos_pos > 0.99
    with pytest.raises(ProbeError, match="at least 2 rows"):
        probe_diagnostics(z[:1])
    with pytest.raises(ProbeError, match="NaN"):
        probe_diagnostics(np.full((8, 4), np.nan, dtype=np.float32))
