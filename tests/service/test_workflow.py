"""The lab's workflow against the real stack (uvicorn, the database, the ingest worker):
offline runs synced later with ``python -m collapse_lab sync`` (the client package alone),
a preempted SLURM job that continues its run, and bad sync input reported line by line with
nothing stored changed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import lightning
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from collapse_lab import Monitor, local, wire
from collapse_lab.lightning import CollapseLabCallback
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tests.service.stack import (
    REPO,
    ServiceStack,
    collect_until,
    wait_until,
)

JOB = Path(__file__).with_name("preemptible_job.py")
SYNC = [sys.executable, "-m", "collapse_lab", "sync"]


def _client_only_env(**extra: str) -> dict[str, str]:
    """The environment of a cluster node: the client package on the path, not the server
    (run from a temporary directory, so the repository is not importable either)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "COLLAPSE_LAB_"))}
    return {**env, "PYTHONPATH": str(REPO / "client"), **extra}


def _sync(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SYNC, *args],
        cwd=cwd,
        env=_client_only_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )


def _collapsing(epoch: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed * 10_000 + epoch)
    return 1.0 + 0.5**epoch * rng.standard_normal((128, 16))


def _run(api: httpx.Client, run_id: str) -> dict[str, Any]:
    return api.get(f"/api/runs/{run_id}").json()


def _ended(api: httpx.Client, run_id: str) -> dict[str, Any] | None:
    run = _run(api, run_id)
    return run if run["status"] in ("succeeded", "failed") else None


def _records(api: httpx.Client, run_id: str) -> dict[int, dict[str, Any]]:
    return {r["epoch"]: r for r in api.get(f"/api/runs/{run_id}/epochs").json()}


def _offline_run(
    root: Path, name: str, epochs: range, killed: bool = False, resume: str | bool = False
) -> Path:
    """A run directory as an offline Monitor writes it; ``killed``: the job died before
    its finish call (no finish.json)."""
    monitor = Monitor(name=name, offline=True, run_dir=root, resume=resume)
    for epoch in epochs:
        monitor.log_epoch(epoch, _collapsing(epoch), loss=1.0 / (1 + epoch))
    assert monitor.finish(timeout=30) and monitor.run_dir is not None
    if killed:
        (monitor.run_dir / local.FINISH_FILE).unlink()
    return monitor.run_dir


def test_an_offline_run_syncs_later_whole_and_a_second_sync_continues(
    stack: ServiceStack, api: httpx.Client, tmp_path: Path
) -> None:
    root = tmp_path / "collapse-lab-runs"
    run_dir = _offline_run(root, "offline-simsiam", range(6))
    assert sorted(local.stored_epochs(run_dir)) == list(range(6))
    assert not list(run_dir.rglob("*.tmp"))  # written through renames, nothing left over
    assert local.read_finish(run_dir)["status"] == "succeeded"  # type: ignore[index]
    # A second run whose job was preempted after epoch 2 (no finish.json); requeued later.
    key = f"partial-{uuid.uuid4().hex[:8]}"
    partial_dir = _offline_run(root, "offline-partial", range(3), killed=True, resume=key)

    first = _sync(str(root), stack.base_url, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "6 epochs uploaded" in first.stdout and "3 epochs uploaded" in first.stdout
    state = json.loads((run_dir / local.SYNC_FILE).read_text())["servers"][stack.base_url]
    run = wait_until(lambda: _ended(api, state["run_id"]), 120, what="the synced run to end")
    assert run["status"] == "succeeded" and run["name"] == "offline-simsiam"
    assert sorted(_records(api, state["run_id"])) == list(range(6))
    assert run["verdict"]["kind"] == "complete_collapse"

    # The requeued job (same resume key) writes on into the same directory; the sync state
    # is rewound as if the first sync had been killed before saving it (the server has 0-2).
    partial_state = json.loads((partial_dir / local.SYNC_FILE).read_text())
    partial_id = partial_state["servers"][stack.base_url]["run_id"]
    assert _run(api, partial_id)["status"] == "running"
    assert _offline_run(root, "offline-partial", range(3, 6), resume=key) == partial_dir
    partial_state["servers"][stack.base_url]["uploaded"] = [0]
    (partial_dir / local.SYNC_FILE).write_text(json.dumps(partial_state))
    again = _sync(str(partial_dir), stack.base_url, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "3 epochs uploaded, 2 already there" in again.stdout, again.stdout
    run = wait_until(lambda: _ended(api, partial_id), 120, what="the partial run to end")
    assert run["status"] == "succeeded"
    assert sorted(_records(api, partial_id)) == list(range(6))  # each epoch once

    # Synced again: nothing to do, nothing changes.
    third = _sync(str(root), stack.base_url, cwd=tmp_path)
    assert third.returncode == 0 and third.stderr.count("already synced") == 2, third.stderr


def test_sync_reports_bad_input_line_by_line_and_changes_nothing_stored(
    stack: ServiceStack, api: httpx.Client, tmp_path: Path
) -> None:
    root = tmp_path / "runs"
    good = _offline_run(root, "conflicting", range(4), killed=True)
    first = _sync(str(good), stack.base_url, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    run_id = json.loads((good / local.SYNC_FILE).read_text())["servers"][stack.base_url]["run_id"]
    before = wait_until(
        lambda: (r := _records(api, run_id)) and len(r) == 4 and r, 60, what="4 measured epochs"
    )

    # Epoch 2 rewritten with other data (a copy from another attempt), epoch 4 added, the
    # run finished; the sync state lost, as when syncing from a copy of the directory.
    local.write_atomic(local.epoch_path(good, 2), wire.encode_epoch(2, {"z": _collapsing(2, 7)}))
    local.write_atomic(local.epoch_path(good, 4), wire.encode_epoch(4, {"z": _collapsing(4)}))
    local.write_json(good / local.FINISH_FILE, {"status": "succeeded", "error": None})
    (good / local.SYNC_FILE).unlink()
    # A second run with a truncated epoch file, and a folder that is no run at all.
    truncated = _offline_run(root, "truncated", range(3))
    body = local.epoch_path(truncated, 1).read_bytes()
    local.epoch_path(truncated, 1).write_bytes(body[: len(body) // 2])
    stray = tmp_path / "holiday-photos"
    stray.mkdir()

    result = _sync(str(good), str(truncated), str(stray), stack.base_url, cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert any("holiday-photos: not a Collapse Lab run directory" in line for line in lines)
    assert any("000001.clepoch: truncated or corrupt" in line for line in lines), lines
    assert any("epoch 2 refused by the server (HTTP 409" in line for line in lines), lines
    assert "Traceback" not in result.stderr
    assert "1 epochs uploaded, 3 already there" in result.stdout, result.stdout
    assert "2 epochs uploaded" in result.stdout  # the truncated run: its other epochs

    after = wait_until(lambda: _ended(api, run_id), 60, what="the run to end")
    records = _records(api, run_id)
    assert sorted(records) == [0, 1, 2, 3, 4]
    for epoch in range(4):  # nothing stored changed, epoch 2 included
        assert records[epoch] == before[epoch]
    assert after["external"]["finish"]["epochs_dropped"] == [2]
    truncated_id = json.loads((truncated / local.SYNC_FILE).read_text())["servers"][stack.base_url][
        "run_id"
    ]
    truncated_run = wait_until(lambda: _ended(api, truncated_id), 60, what="the truncated run")
    assert sorted(_records(api, truncated_id)) == [0, 2]
    assert truncated_run["external"]["finish"]["epochs_dropped"] == [1]


def test_sync_follow_relays_a_run_while_it_is_written(
    stack: ServiceStack, api: httpx.Client, tmp_path: Path
) -> None:
    root = tmp_path / "live"
    monitor = Monitor(name="followed", offline=True, run_dir=root, resume=False)
    monitor.log_epoch(0, _collapsing(0))
    assert monitor.run_dir is not None
    wait_until(lambda: local.stored_epochs(monitor.run_dir), 10, what="epoch 0 on disk")
    follower = subprocess.Popen(
        [*SYNC, "--follow", "--poll", "0.2", str(monitor.run_dir), stack.base_url],
        cwd=tmp_path,
        env=_client_only_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        state_file = monitor.run_dir / local.SYNC_FILE
        wait_until(state_file.exists, 30, what="the sync to register the run")
        run_id = json.loads(state_file.read_text())["servers"][stack.base_url]["run_id"]
        for epoch in range(1, 5):
            monitor.log_epoch(epoch, _collapsing(epoch))
            # each epoch reaches the server while the training is still on
            wait_until(lambda e=epoch: e in _records(api, run_id), 60, what=f"epoch {epoch}")
            assert _run(api, run_id)["status"] == "running"
        assert monitor.finish(timeout=30)
        _, err = follower.communicate(timeout=60)
    finally:
        if follower.poll() is None:
            follower.kill()
    assert follower.returncode == 0, err
    run = wait_until(lambda: _ended(api, run_id), 60, what="the followed run to end")
    assert run["status"] == "succeeded" and sorted(_records(api, run_id)) == list(range(5))


def _start_job(url: str, job_id: str, *args: str) -> subprocess.Popen[str]:
    env = _client_only_env(SLURM_JOB_ID=job_id, SLURM_CLUSTER_NAME="testcluster")
    return subprocess.Popen(
        [sys.executable, str(JOB), url, *args],
        cwd=JOB.parent.parent.parent.parent,  # outside the repository: its packages unseen
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_requeued_slurm_job_continues_its_run(stack: ServiceStack, api: httpx.Client) -> None:
    job_id = str(uuid.uuid4().int % 10**7)
    first = _start_job(stack.base_url, job_id, "--last", "400", "--pause", "0.3")
    assert first.stdout is not None
    started = json.loads(first.stdout.readline())
    run_id = started["run_id"]
    assert started["resumed"] is False and started["resume_key"].startswith(
        f"slurm:testcluster:{job_id}:"
    )
    wait_until(lambda: len(_records(api, run_id)) >= 4, 60, what="4 measured epochs")
    assert first.poll() is None, "the job ended before its preemption"
    first.send_signal(signal.SIGTERM)  # preemption: SLURM's SIGTERM, then the requeue
    first.communicate(timeout=60)
    ended = wait_until(lambda: _ended(api, run_id), 60, what="the preempted run to close")
    assert ended["status"] == "failed" and "SystemExit" in ended["error"], ended
    before = _records(api, run_id)
    last = max(before)

    # The requeued job restarts from its checkpoint of epoch 2: epochs 2..last-1 come again
    # with the same data, epoch `last` with other data (refused), then new epochs.
    second = _start_job(
        stack.base_url, job_id, "--start", "2", "--last", str(last + 2),
        "--other-data-from", str(last), "--pause", "0.05",
    )  # fmt: skip
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    resumed, stats = (json.loads(line) for line in out.splitlines())
    assert resumed["run_id"] == run_id and resumed["resumed"] is True
    assert resumed["last_stored_epoch"] == last
    assert stats["dropped"] == [last], err
    assert "already stored with other data" in err
    run = wait_until(lambda: _ended(api, run_id), 120, what="the continued run to end")
    assert run["status"] == "succeeded", run
    records = _records(api, run_id)
    assert sorted(records) == list(range(last + 3))  # one run, each epoch once
    for epoch in range(last + 1):
        assert records[epoch] == before[epoch]  # the baseline and the refused epoch kept
    reasons = _status_reasons(api, run_id)
    assert any("reopened" in reason for reason in reasons), reasons


def _status_reasons(api: httpx.Client, run_id: str) -> list[str]:
    """The reasons of every status event the run has logged so far."""
    last = _run(api, run_id)["last_event_id"]
    url = f"/api/runs/{run_id}/events"
    events = collect_until(api, url, stop=lambda e: e.id == last, timeout=30)
    return [str(e.data.get("reason")) for e in events if e.event == "status"]


def test_a_cancelled_run_is_not_continued(idle_stack: ServiceStack) -> None:
    client = httpx.Client(base_url=idle_stack.base_url, timeout=30)
    registration = {"name": "r", "resume_key": f"key-{uuid.uuid4().hex}"}
    first = client.post("/api/external-runs", json=registration)
    assert first.status_code == 201 and first.json()["resumed"] is False
    run_id = first.json()["id"]
    again = client.post("/api/external-runs", json=registration)
    assert again.status_code == 200 and again.json()["id"] == run_id and again.json()["resumed"]
    assert client.post(f"/api/runs/{run_id}/cancel").status_code == 202
    refused = client.post("/api/external-runs", json=registration)
    assert refused.status_code == 409 and refused.json()["code"] == "run_cancelled"
    assert "another resume key" in refused.json()["detail"]
    client.close()


def test_a_monitor_files_its_run_under_project_and_tags(idle_stack: ServiceStack) -> None:
    """Monitor(project=, tags=, note=) registers the labels; the run list finds the run by
    them. A server that refuses a label (an older release names an unknown field in its 422
    the same way this one names a bad tag) gets the run without that label."""
    project = f"proj-{uuid.uuid4().hex[:6]}"
    monitor = Monitor(
        idle_stack.base_url, name="labelled", project=project, tags=["a", "b"], note="n"
    )
    client = httpx.Client(base_url=idle_stack.base_url, timeout=30)
    found = client.get("/api/runs", params={"project": project, "tag": ["a", "b"]}).json()
    assert [run["id"] for run in found["data"]] == [monitor.run_id]
    assert found["data"][0]["note"] == "n" and found["data"][0]["name"] == "labelled"
    with pytest.warns(UserWarning, match="refuses the run labels tags"):
        unlabelled = Monitor(idle_stack.base_url, name="x", project=project, tags=["no spaces"])
    assert unlabelled.run_id is not None
    run = client.get(f"/api/runs/{unlabelled.run_id}").json()
    assert run["project"] == project and run["tags"] == []
    monitor.finish(timeout=10)
    unlabelled.finish(timeout=10)
    client.close()


EPOCH_TIME_S = 0.5


class _PositivesOnly(lightning.pytorch.LightningModule):
    """Clusters of noisy 32-d points, an MLP trained on positive pairs only (no negatives,
    high lr): it collapses within a few epochs (as in test_external_runs.py)."""

    def __init__(self) -> None:
        super().__init__()
        self.save_hyperparameters({"lr": 0.5})
        self.backbone = nn.Sequential(nn.Linear(32, 128), nn.ReLU())
        self.projection_head = nn.Linear(128, 32)

    def training_step(self, batch: list[torch.Tensor], index: int) -> torch.Tensor:
        x = batch[0]
        a = F.normalize(self.projection_head(self.backbone(x + torch.randn_like(x))), dim=1)
        b = F.normalize(self.projection_head(self.backbone(x + torch.randn_like(x))), dim=1)
        loss = -(a * b).sum(dim=1).mean()
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.5, momentum=0.9)

    def on_train_epoch_end(self) -> None:
        # an epoch of real training takes a while: without it, 40 epochs of two tiny batches
        # end before the server has measured the first, and nothing is left to stop
        time.sleep(EPOCH_TIME_S)


def _data() -> tuple[torch.Tensor, torch.Tensor, DataLoader[Any]]:
    torch.manual_seed(0)
    labels = torch.arange(1024) % 4
    x = torch.randn(4, 32)[labels] * 2 + torch.randn(1024, 32)
    return x[:256], labels[:256], DataLoader(TensorDataset(x), batch_size=128, shuffle=True)


def _trainer(tmp_path: Path, epochs: int, *callbacks: Any) -> lightning.pytorch.Trainer:
    return lightning.pytorch.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=list(callbacks),
    )


def test_lightning_continues_its_run_from_a_checkpoint_and_stops_on_collapse(
    stack: ServiceStack, api: httpx.Client, tmp_path: Path, monkeypatch: Any
) -> None:
    for name in [n for n in os.environ if n.startswith(("SLURM_", "TORCHELASTIC_"))]:
        monkeypatch.delenv(name)
    probe, labels, loader = _data()
    checkpoints = lightning.pytorch.callbacks.ModelCheckpoint(
        dirpath=tmp_path / "ckpt", save_last=True, every_n_epochs=1
    )
    first = CollapseLabCallback(stack.base_url, probe, labels=labels, name="lightning-resume")
    _trainer(tmp_path, 2, first, checkpoints).fit(_PositivesOnly(), loader)
    assert first.run_id is not None
    ended = wait_until(lambda: _ended(api, first.run_id), 60, what="the first fit's run")
    assert sorted(_records(api, first.run_id)) == [0, 1, 2]

    # A new process would build everything again: a new callback, model and trainer.
    second = CollapseLabCallback(
        stack.base_url, probe, labels=labels, name="lightning-resume", stop_on_collapse=2
    )
    trainer = _trainer(tmp_path, 40, second)
    trainer.fit(_PositivesOnly(), loader, ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))
    assert second.run_id == first.run_id and second.monitor is not None
    assert second.monitor.resumed and second.monitor.last_stored_epoch == 2
    assert trainer.current_epoch < 40, "stop_on_collapse did not stop the fit"
    assert second.monitor.collapsed and second.monitor.collapse_streak >= 2
    run = wait_until(lambda: _ended(api, first.run_id), 60, what="the continued run to end")
    assert run["status"] == "succeeded" and ended["id"] == run["id"]
    records = _records(api, first.run_id)
    assert sorted(records) == list(range(trainer.current_epoch + 1))  # one run, each once
    finish = run["external"]["finish"]
    assert finish["stopped_at_epoch"] == trainer.current_epoch
    assert "complete collapse held" in finish["stop_reason"]
    assert records[finish["stopped_at_epoch"]]["verdict"]["kind"] == "complete_collapse"
    reasons = _status_reasons(api, first.run_id)
    assert any(f"stopped training after epoch {trainer.current_epoch}" in r for r in reasons)
