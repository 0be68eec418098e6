"""Offline runs on disk (no server at all) and the same-data rule both ends share."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from collapse_lab import CollapseLabWarning, Monitor, local, wire


def _z(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((32, 4))


def test_an_offline_monitor_writes_a_run_directory_that_a_requeued_job_continues(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLLAPSE_LAB_MODE", "offline")
    monkeypatch.setenv("COLLAPSE_LAB_DIR", str(tmp_path))
    monkeypatch.setenv("SLURM_JOB_ID", "777")
    monkeypatch.delenv("COLLAPSE_LAB_URL", raising=False)
    first = Monitor(name="job", config={"lr": 0.1})
    for epoch in range(3):
        first.log_epoch(epoch, _z(epoch), loss=0.5)
    assert first.finish(timeout=10) and first.offline and first.verdict is None
    run_dir = first.run_dir
    assert run_dir is not None and run_dir.parent == tmp_path
    meta = local.read_meta(run_dir)
    assert meta["registration"]["config"] == {"lr": 0.1}
    assert meta["registration"]["resume_key"] == "slurm::777:job"
    assert sorted(local.stored_epochs(run_dir)) == [0, 1, 2]
    assert wire.decode_epoch(local.epoch_path(run_dir, 2).read_bytes()).loss == 0.5
    assert json.loads((run_dir / local.FINISH_FILE).read_text())["status"] == "succeeded"
    assert not [p for p in run_dir.rglob("*") if p.name.endswith(".tmp")]

    # The requeued job: same directory, finish.json gone until it finishes; epoch 1 again
    # with the same data is kept once, epoch 2 with other data refused, epoch 3 new.
    second = Monitor(name="job")
    assert second.run_dir == run_dir and second.resumed and second.last_stored_epoch == 2
    assert not (run_dir / local.FINISH_FILE).exists()
    before = local.epoch_path(run_dir, 2).read_bytes()
    second.log_epoch(1, _z(1), loss=0.5)
    with pytest.warns(CollapseLabWarning, match="already in .* with other data"):
        second.log_epoch(2, _z(99), loss=0.5)
        second.log_epoch(3, _z(3))
        assert second.finish(timeout=10)
    assert second.stats.delivered == [1, 3] and second.stats.dropped == [2]
    assert local.epoch_path(run_dir, 2).read_bytes() == before
    assert local.read_meta(run_dir)["idempotency_key"] == meta["idempotency_key"]


def test_not_a_run_directory_is_named() -> None:
    with pytest.raises(local.NotARunError, match=r"no run\.json"):
        local.read_meta(Path(__file__).parent)


def test_same_data_ignores_the_time_it_was_logged() -> None:
    a = wire.encode_epoch(4, {"z": _z(0)}, loss=1.0, logged_at=1.0)
    b = wire.encode_epoch(4, {"z": _z(0)}, loss=1.0, logged_at=2.0)
    assert a != b and wire.same_data(a, b)
    assert not wire.same_data(a, wire.encode_epoch(4, {"z": _z(1)}, loss=1.0))
    assert not wire.same_data(a, wire.encode_epoch(4, {"z": _z(0)}, loss=1.5))
    assert not wire.same_data(a, a[:-8])
