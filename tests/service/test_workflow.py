"""The lab's workflow against the real stack (uvicorn, the database, the ingest worker):
offline runs synced later with ``python -m collapse_lab sync`` (the client package alone),
a preempted SLURM job that continues its run, and bad sync input reported line by line with
nothing stored changed."""

from __future__ import annotations

import json
import os
import re
import shutil
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
# the same command where the whole product is installed (the head node): `collapse-lab sync`
PRODUCT_SYNC = [str(Path(sys.executable).with_name("collapse-lab")), "sync"]


def _client_only_env(**extra: str) -> dict[str, str]:
    """The environment of a cluster node: the client package on the path, not the server
    (run from a temporary directory, so the repository is not importable either)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "COLLAPSE_LAB_"))}
    return {**env, "PYTHONPATH": str(REPO / "client"), **extra}


def _sync(*args: str, cwd: Path, command: list[str] = SYNC) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command, *args],
        cwd=cwd,
        env=_client_only_env() if command == SYNC else None,
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


def _synced(run_dir: Path, base_url: str) -> dict[str, Any]:
    """What the sync kept in the run directory about ``base_url``: run id, epochs taken."""
    return json.loads((run_dir / local.SYNC_FILE).read_text())["servers"][base_url]


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
    state = _synced(run_dir, stack.base_url)
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

    # Synced again, by the product's command line: nothing to do, nothing changes.
    third = _sync(str(root), stack.base_url, cwd=tmp_path, command=PRODUCT_SYNC)
    assert third.returncode == 0 and third.stdout.count("nothing new") == 2, third.stdout
    bars = [line for line in third.stderr.splitlines() if line.endswith("6/6 epochs")]
    # a bar per directory and nothing else: "nothing new" is said once, on the summary line
    assert len(bars) == 2 and bars == third.stderr.splitlines(), third.stderr


def test_a_job_that_went_on_online_is_not_closed_by_its_offline_part(
    stack: ServiceStack, api: httpx.Client, tmp_path: Path
) -> None:
    """offline="auto" under SLURM: a try of the job that could not reach the server wrote
    its epochs (and, preempted, a failed finish) offline; the requeued try reaches it. The
    run goes on online, the offline part uploaded first; a sync afterwards, or of a copy the
    online try could not see, neither closes the run nor reopens it."""
    root = tmp_path / "collapse-lab-runs"
    key = f"auto-{uuid.uuid4().hex[:8]}"
    first = Monitor(name="auto", offline=True, run_dir=root, resume=key)
    for epoch in range(4):
        first.log_epoch(epoch, _collapsing(epoch), loss=1.0)
    first.finish(timeout=30, error="preempted (SIGTERM)")
    assert first.run_dir is not None and local.read_finish(first.run_dir) is not None

    requeued = Monitor(stack.base_url, name="auto", run_dir=root, resume=key)
    assert requeued.resumed and requeued.last_stored_epoch == 3
    assert local.read_finish(first.run_dir) is None  # the run goes on: not its finish
    for epoch in range(4, 7):
        requeued.log_epoch(epoch, _collapsing(epoch), loss=1.0)
    assert requeued.finish(timeout=60) and requeued.run_id is not None
    # finish() waited for the server's verdict on the last epoch
    assert requeued.verdict is not None and requeued.verdict.epoch == 6
    run_id = requeued.run_id
    run = wait_until(lambda: _ended(api, run_id), 120, what="the run to end")
    assert run["status"] == "succeeded", run
    wait_until(lambda: sorted(_records(api, run_id)) == list(range(7)), 120, what="0-6")

    later = _sync(str(root), stack.base_url, cwd=tmp_path)
    assert later.returncode == 0, later.stderr
    assert _run(api, run_id)["status"] == "succeeded"

    # The offline part on a disk the requeued try does not see (node-local): the sync
    # uploads its epochs but not its stale finish, which would close the live run.
    elsewhere = f"elsewhere-{uuid.uuid4().hex[:8]}"
    node_local = _offline_run(tmp_path / "node-a", "auto", range(3), resume=elsewhere)
    live = Monitor(stack.base_url, name="auto", run_dir=tmp_path / "node-b", resume=elsewhere)
    for epoch in range(3, 6):
        live.log_epoch(epoch, _collapsing(epoch), loss=1.0)
    wait_until(lambda: len(live.stats.delivered) == 3, 60, what="the live epochs")
    relayed = _sync(str(node_local), stack.base_url, cwd=tmp_path)
    assert relayed.returncode == 0, relayed.stderr
    assert "3 epochs uploaded" in relayed.stdout and "went on elsewhere" in relayed.stderr
    live.log_epoch(6, _collapsing(6), loss=1.0)
    assert live.finish(timeout=60) and live.stats.dropped == []
    live_id = live.run_id
    assert live_id is not None
    run = wait_until(lambda: _ended(api, live_id), 120, what="the live run to end")
    assert run["status"] == "succeeded", run
    wait_until(lambda: sorted(_records(api, live_id)) == list(range(7)), 120, what="0-6")

    # Another copy of that directory synced after the run ended: its registration reopens
    # the run, and the sync closes it again as it was, not with its stale finish.
    copy = tmp_path / "node-c" / node_local.name
    shutil.copytree(node_local, copy, ignore=shutil.ignore_patterns(local.SYNC_FILE))
    late = _sync(str(copy), stack.base_url, cwd=tmp_path)
    assert late.returncode == 0, late.stderr
    assert "closed again as it was" in late.stderr, late.stderr
    # the finish is applied by the ingest worker, as any finish call
    ended = wait_until(lambda: _ended(api, live_id), 120, what="the run closed again")
    assert ended["status"] == "succeeded" and ended["error"] is None, ended

    # A copy from the try killed before its finish (no finish.json, the usual preemption):
    # its registration reopens the ended run too, which is closed again as it was rather
    # than left running for good.
    cut_off = tmp_path / "node-d" / node_local.name
    left_out = shutil.ignore_patterns(local.SYNC_FILE, local.FINISH_FILE)
    shutil.copytree(node_local, cut_off, ignore=left_out)
    cut = _sync(str(cut_off), stack.base_url, cwd=tmp_path)
    assert cut.returncode == 0, cut.stderr
    assert "closed again as it was" in cut.stderr, cut.stderr
    ended = wait_until(lambda: _ended(api, live_id), 120, what="the run closed again")
    assert ended["status"] == "succeeded" and ended["error"] is None, ended


def test_sync_reports_bad_input_line_by_line_and_changes_nothing_stored(
    stack: ServiceStack, api: httpx.Client, tmp_path: Path
) -> None:
    root = tmp_path / "runs"
    good = _offline_run(root, "conflicting", range(4), killed=True)
    first = _sync(str(good), stack.base_url, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    run_id = _synced(good, stack.base_url)["run_id"]
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
    assert "1 epoch uploaded, 3 already there" in result.stdout, result.stdout
    assert "2 epochs uploaded" in result.stdout  # the truncated run: its other epochs

    after = wait_until(lambda: _ended(api, run_id), 60, what="the run to end")
    records = _records(api, run_id)
    assert sorted(records) == [0, 1, 2, 3, 4]
    for epoch in range(4):  # nothing stored changed, epoch 2 included
        assert records[epoch] == before[epoch]
    # epoch 2 was refused, but the run holds it (the first copy's): it is not missing
    assert after["external"]["finish"]["epochs_dropped"] == []
    truncated_id = _synced(truncated, stack.base_url)["run_id"]
    truncated_run = wait_until(lambda: _ended(api, truncated_id), 60, what="the truncated run")
    assert sorted(_records(api, truncated_id)) == [0, 2]
    assert truncated_run["external"]["finish"]["epochs_dropped"] == [1]


def _follow(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*SYNC, "--follow", "--poll", "0.2", *args],
        cwd=cwd,
        env=_client_only_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _registered(run_dir: Path, base_url: str) -> str:
    """The server's run id of ``run_dir``, once a sync has registered it."""
    state_file = run_dir / local.SYNC_FILE
    wait_until(state_file.exists, 30, what=f"the sync to register {run_dir.name}")
    return str(_synced(run_dir, base_url)["run_id"])


def test_sync_follow_relays_every_run_of_a_folder_new_ones_included(
    stack: ServiceStack, api: httpx.Client, tmp_path: Path
) -> None:
    """One --follow on a folder: a run finished before it started, a live run listed first
    (the old loop stayed on it until its finish.json) and a run created after the follow
    started; the epochs of both live runs reach the server while they train."""
    root = tmp_path / "runs"
    live = Monitor(name="a-live", offline=True, run_dir=root, resume=False)
    live.log_epoch(0, _collapsing(0))
    done = _offline_run(root, "b-done", range(3))
    assert live.run_dir is not None
    wait_until(lambda: local.stored_epochs(live.run_dir), 10, what="epoch 0 on disk")
    # it ends once no run has been active for 10 s; none is idle that long before
    follower = _follow("--idle-timeout", "10", str(root), stack.base_url, cwd=tmp_path)
    try:
        live_id = _registered(live.run_dir, stack.base_url)
        done_id = _registered(done, stack.base_url)
        late = Monitor(name="c-late", offline=True, run_dir=root, resume=False)
        late.log_epoch(0, _collapsing(0, seed=1))
        assert late.run_dir is not None
        late_id = _registered(late.run_dir, stack.base_url)
        for epoch in range(1, 4):
            live.log_epoch(epoch, _collapsing(epoch))
            late.log_epoch(epoch, _collapsing(epoch, seed=1))
            for run_id in (live_id, late_id):  # both relayed while both still train
                wait_until(lambda r=run_id, e=epoch: e in _records(api, r), 60, what=f"{epoch}")
                assert _run(api, run_id)["status"] == "running"
        assert follower.poll() is None, "the follow ended with two runs unfinished"
        assert live.finish(timeout=30) and late.finish(timeout=30)
        out, err = follower.communicate(timeout=60)
    finally:
        if follower.poll() is None:
            follower.kill()
    assert follower.returncode == 0, err
    assert out.count("run finished") == 3, out
    for run_id, epochs in ((live_id, 4), (done_id, 3), (late_id, 4)):
        run = wait_until(lambda r=run_id: _ended(api, r), 60, what="the followed runs to end")
        assert run["status"] == "succeeded" and sorted(_records(api, run_id)) == list(range(epochs))


def test_sync_follow_leaves_a_dead_job_after_its_idle_timeout(
    stack: ServiceStack, api: httpx.Client, tmp_path: Path
) -> None:
    dead = _offline_run(tmp_path / "runs", "dead-job", range(2), killed=True)
    started = time.monotonic()
    args = ("--follow", "--poll", "0.2", "--idle-timeout", "2")
    result = _sync(*args, str(dead), stack.base_url, cwd=tmp_path)
    took = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    assert "no new epoch and no finish.json for 2 s (--idle-timeout)" in result.stderr
    assert "2 epochs uploaded, 0 already there, run still running" in result.stdout, result.stdout
    assert 2 <= took < 60, took
    run_id = _synced(dead, stack.base_url)["run_id"]
    wait_until(lambda: sorted(_records(api, run_id)) == [0, 1], 60, what="epochs 0 and 1")
    assert _run(api, run_id)["status"] == "running"  # left for the sync that finds its end


def test_sync_follow_waits_for_a_later_array_task_and_a_requeued_directory(
    stack: ServiceStack, api: httpx.Client, tmp_path: Path
) -> None:
    """Every run the relay found has finished, and it goes on watching: the next task of a
    job array creates its directory later, and the first task's job, requeued, writes on
    into its finished directory (its resume key reopens the run). Both are synced; the
    relay ends once no run has been active for --idle-timeout."""
    root = tmp_path / "runs"
    key = f"array-{uuid.uuid4().hex[:8]}"
    first = _offline_run(root, "array-task-1", range(2), resume=key)
    # idle 30 s: the first run's end, the pause and the next directory fit in it under load
    follower = _follow("--idle-timeout", "30", str(root), stack.base_url, cwd=tmp_path)
    try:
        first_id = _registered(first, stack.base_url)
        wait_until(lambda: _ended(api, first_id), 60, what="the first task's run to end")
        time.sleep(1.5)  # several polls with every run found finished
        assert follower.poll() is None, "the relay ended before the array's next task"
        second = _offline_run(root, "array-task-2", range(3))
        second_id = _registered(second, stack.base_url)
        assert _offline_run(root, "array-task-1", range(2, 4), resume=key) == first
        wait_until(
            lambda: sorted(_records(api, first_id)) == [0, 1, 2, 3], 60, what="the requeued epochs"
        )
        out, err = follower.communicate(timeout=120)
    finally:
        if follower.poll() is None:
            follower.kill()
    assert follower.returncode == 0, err
    assert out.count("run finished") == 3, out  # the first run twice
    for run_id, epochs in ((first_id, 4), (second_id, 3)):
        run = wait_until(lambda r=run_id: _ended(api, r), 60, what="the runs to end")
        assert run["status"] == "succeeded" and sorted(_records(api, run_id)) == list(range(epochs))


def test_a_repaired_epoch_file_is_sent_by_the_next_sync(
    stack: ServiceStack, api: httpx.Client, tmp_path: Path
) -> None:
    """A truncated epoch file is refused with its digest: named again by every sync (exit
    1) while unchanged, sent once repaired, and the run finished again without it dropped."""
    key = f"repair-{uuid.uuid4().hex[:8]}"
    run_dir = _offline_run(tmp_path / "runs", "repaired", range(3), resume=key)
    path = local.epoch_path(run_dir, 1)
    body = path.read_bytes()
    path.write_bytes(body[: len(body) // 2])

    first = _sync(str(run_dir), stack.base_url, cwd=tmp_path)
    assert first.returncode == 1
    assert "000001.clepoch: truncated or corrupt" in first.stderr, first.stderr
    assert "[" + "#" * 20 + "-" * 10 + "] 2/3 epochs, 1 refused" in first.stderr  # not 3/3
    assert "2 epochs uploaded, 0 already there, 1 refused, run finished" in first.stdout
    run_id = _synced(run_dir, stack.base_url)["run_id"]
    ended = wait_until(lambda: _ended(api, run_id), 60, what="the run to end")
    assert ended["external"]["finish"]["epochs_dropped"] == [1]

    again = _sync(str(run_dir), stack.base_url, cwd=tmp_path)
    assert again.returncode == 1  # still refused: said again, not silently skipped
    assert "epoch 1 still refused, its file unchanged" in again.stderr, again.stderr
    assert "0 epochs uploaded, 0 already there, 1 refused" in again.stdout

    path.write_bytes(body)  # the file repaired (copied again from the node's disk)
    repaired = _sync(str(run_dir), stack.base_url, cwd=tmp_path)
    assert repaired.returncode == 0, repaired.stderr
    assert "1 epoch uploaded, 0 already there, run finished" in repaired.stdout
    assert "refused" not in repaired.stderr
    once_more = _sync(str(run_dir), stack.base_url, cwd=tmp_path)
    assert once_more.returncode == 0, once_more.stderr
    assert "nothing new (3 epochs synced before), run finished" in once_more.stdout

    def refinished() -> dict[str, Any] | None:
        run = _ended(api, run_id)
        return run if run and run["external"]["finish"]["epochs_dropped"] == [] else None

    run = wait_until(refinished, 60, what="the run finished again with every epoch")
    assert run["status"] == "succeeded" and sorted(_records(api, run_id)) == [0, 1, 2]
    assert _synced(run_dir, stack.base_url)["refused"] == {}


def test_an_epoch_file_edited_after_its_sync_is_refused_and_the_stored_one_kept(
    stack: ServiceStack, api: httpx.Client, tmp_path: Path
) -> None:
    """The sync sends an uploaded epoch again once its file changed; the real server (the
    run finished, no resume key) answers the clash, which the sync names (exit 1) while
    the stored epoch stays as it was. A file only touched is not sent again."""
    run_dir = _offline_run(tmp_path / "runs", "edited", range(3))
    first = _sync(str(run_dir), stack.base_url, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    run_id = _synced(run_dir, stack.base_url)["run_id"]
    wait_until(lambda: _ended(api, run_id), 120, what="the run to end")
    stored = _records(api, run_id)[1]["loss"]
    path = local.epoch_path(run_dir, 1)
    os.utime(path, ns=(time.time_ns(), time.time_ns()))  # touched, the same bytes
    touched = _sync(str(run_dir), stack.base_url, cwd=tmp_path)
    assert touched.returncode == 0 and "nothing new" in touched.stdout, touched
    local.write_atomic(path, wire.encode_epoch(1, {"z": _collapsing(1, seed=9)}, loss=7.0))
    edited = _sync(str(run_dir), stack.base_url, cwd=tmp_path)
    assert edited.returncode == 1
    assert "epoch 1 refused by the server (HTTP 409" in edited.stderr, edited.stderr
    assert _records(api, run_id)[1]["loss"] == stored


def test_a_sync_killed_mid_run_continues_and_stores_each_epoch_once(
    stack: ServiceStack, api: httpx.Client, tmp_path: Path
) -> None:
    epochs = 24
    run_dir = _offline_run(tmp_path / "runs", "killed-sync", range(epochs))
    sync = subprocess.Popen(
        [*SYNC, str(run_dir), stack.base_url],
        cwd=tmp_path,
        env=_client_only_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(
            lambda: _synced(run_dir, stack.base_url)["uploaded"],
            60,
            interval=0.001,
            what="the first epoch recorded",
        )
        assert sync.poll() is None, "the sync ended before it could be killed"
        sync.kill()  # SIGKILL: no clean-up, sync.json as the last epoch left it
        sync.wait(10)
    finally:
        if sync.poll() is None:
            sync.kill()
    taken = _synced(run_dir, stack.base_url)
    assert 1 <= len(taken["uploaded"]) < epochs and taken["finished"] is None, taken

    rerun = _sync(str(run_dir), stack.base_url, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    left = epochs - len(taken["uploaded"])
    # an epoch stored just before the kill but not yet in sync.json is answered "already there"
    assert any(
        f"{left - n} epoch{'' if left - n == 1 else 's'} uploaded, {n} already there, "
        "run finished" in rerun.stdout
        for n in (0, 1)
    ), rerun.stdout
    run = wait_until(lambda: _ended(api, taken["run_id"]), 120, what="the synced run to end")
    assert run["status"] == "succeeded"
    stored = [r["epoch"] for r in api.get(f"/api/runs/{taken['run_id']}/epochs").json()]
    assert stored == list(range(epochs))  # each epoch exactly once


def _start_job(url: str, job_id: str, *args: str) -> subprocess.Popen[str]:
    """The job, each try with the same command line (as SLURM requeues it); ``args`` stand
    for what a try reads from its checkpoint."""
    env = _client_only_env(
        SLURM_JOB_ID=job_id, SLURM_CLUSTER_NAME="testcluster", PREEMPTIBLE_JOB=" ".join(args)
    )
    return subprocess.Popen(
        [sys.executable, str(JOB), url],
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
    # the refused epoch is in the run (the first try's): not listed as missing
    assert run["external"]["finish"]["epochs_dropped"] == [], run["external"]
    records = _records(api, run_id)
    assert sorted(records) == list(range(last + 3))  # one run, each epoch once
    for epoch in range(last + 1):
        assert records[epoch] == before[epoch]  # the baseline and the refused epoch kept
    reasons = _status_reasons(api, run_id)
    assert any("reopened" in reason for reason in reasons), reasons


def test_a_loop_logging_faster_than_the_verdict_poll_still_stops_on_collapse(
    stack: ServiceStack, api: httpx.Client
) -> None:
    """Epochs every 30 ms, each uploaded before the next: the sender polls the verdict when
    it is due, epochs delivered or waiting (each delivery used to put the poll off by 50 ms,
    and a busy queue held it off), so the loop learns of the collapse and breaks."""
    monitor = Monitor(stack.base_url, name="fast-loop", resume=False)
    logged_at: list[float] = []  # when each epoch was logged
    first_verdict_at = stopped = None
    deadline = time.monotonic() + 120  # a loop that never learns runs until then
    while time.monotonic() < deadline:
        epoch = len(logged_at)
        monitor.log_epoch(epoch, _collapsing(epoch), loss=1.0)
        logged_at.append(time.monotonic())
        if first_verdict_at is None and monitor.verdict is not None:
            first_verdict_at = logged_at[-1]
        if monitor.collapse_streak >= 2:
            monitor.record_stop(epoch, "complete collapse for 2 epochs")
            stopped = epoch
            break
        time.sleep(0.03)
    assert monitor.finish(timeout=60) and monitor.run_id is not None
    # seconds, not epochs: the server's verdicts take what a loaded machine gives them
    assert first_verdict_at is not None and first_verdict_at - logged_at[0] < 15
    assert stopped is not None, "the loop never saw the collapse"
    records = _records(api, monitor.run_id)
    onset = records[stopped]["verdict"]["onset_epoch"]
    assert records[stopped]["verdict"]["kind"] == "complete_collapse"
    assert logged_at[stopped] - logged_at[onset] < 15, (onset, stopped)
    run = wait_until(lambda: _ended(api, monitor.run_id), 60, what="the run to end")
    assert run["external"]["finish"]["stopped_at_epoch"] == stopped


def test_a_resumed_monitor_knows_its_run_collapsed_and_counts_the_streak_on(
    stack: ServiceStack,
) -> None:
    """A requeued job's monitor reads the run's verdict when it is created: collapsed
    already, its streak counting the epochs the first try logged."""
    key = f"collapsed-{uuid.uuid4().hex[:8]}"
    first = Monitor(stack.base_url, name="requeued-collapse", resume=key)
    for epoch in range(10):
        first.log_epoch(epoch, _collapsing(epoch), loss=1.0)
    first.finish(timeout=60, error="preempted (SIGTERM)")
    assert first.verdict is not None and first.verdict.epoch == 9 and first.collapsed
    streak = first.collapse_streak
    assert streak >= 2

    second = Monitor(stack.base_url, name="requeued-collapse", resume=key)
    assert second.resumed and second.run_id == first.run_id
    assert second.collapsed and second.verdict is not None and second.verdict.epoch == 9
    assert second.collapse_streak == streak  # before it logged anything
    second.log_epoch(10, _collapsing(10), loss=1.0)
    wait_until(
        lambda: second.verdict is not None and second.verdict.epoch == 10, 60, what="epoch 10"
    )
    assert second.collapsed and second.collapse_streak == streak + 1
    assert second.judgement == (second.verdict, streak + 1)
    assert second.finish(timeout=60)


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


def test_a_training_error_of_any_text_closes_its_run_online_and_by_sync(
    stack: ServiceStack, api: httpx.Client, tmp_path: Path
) -> None:
    """A DataLoader worker's error carries the worker's traceback (2,000 characters and
    more), an OSError an undecodable file name (a lone surrogate), and any text a NUL: the
    run still ends failed, with the error's first and last lines, online and through a
    sync of a directory an older client wrote with the text as it came."""
    error = "RuntimeError: Caught FileNotFoundError in DataLoader worker process 0.\n"
    error += "  File 'loader.py', line 9\n" * 150 + "FileNotFoundError: 'img-\udcff\x00.png'"

    def stored_error(run_id: str) -> str:
        run = wait_until(lambda: _ended(api, run_id), 120, what="the run to end")
        assert run["status"] == "failed"
        return str(run["external"]["finish"]["error"])

    with pytest.raises(RuntimeError), Monitor(stack.base_url, name="long-error") as online:
        online.log_epoch(0, _collapsing(0))
        raise RuntimeError(error.removeprefix("RuntimeError: "))
    assert online.stats.disabled is None  # the upload thread did not die on the text
    assert online.run_id is not None
    shown = stored_error(online.run_id)
    assert len(shown) <= wire.MAX_ERROR
    assert shown.startswith("RuntimeError: Caught FileNotFoundError in DataLoader worker")
    assert shown.endswith("FileNotFoundError: 'img-\\udcff.png'")

    run_dir = _offline_run(tmp_path / "runs", "old-client-error", range(2))
    (run_dir / local.FINISH_FILE).write_text(
        json.dumps({"status": "failed", "error": error, "epochs_dropped": []})
    )
    synced = _sync(str(run_dir), stack.base_url, cwd=tmp_path)
    assert synced.returncode == 0, synced.stderr
    assert stored_error(_synced(run_dir, stack.base_url)["run_id"]) == shown


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
    # the warning carries the server's reason, so the researcher knows what to change
    why = (
        r"refuses the run labels tags\[1\] 'no spaces' \(an older server, or a value it does "
        r"not take: .*tags"
    )
    with pytest.warns(UserWarning, match=why):
        unlabelled = Monitor(
            idle_stack.base_url, name="x", project=project, tags=["a", "no spaces", "b"]
        )
    assert unlabelled.run_id is not None
    run = client.get(f"/api/runs/{unlabelled.run_id}").json()
    assert run["project"] == project and run["tags"] == ["a", "b"]  # only the bad tag left out
    with pytest.warns(UserWarning, match=r"refuses the run labels project \("):
        no_project = Monitor(idle_stack.base_url, name="y", project="team:vision", tags=["a"])
    run = client.get(f"/api/runs/{no_project.run_id}").json()
    assert run["project"] is None and run["tags"] == ["a"]
    no_project.finish(timeout=10)
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
        self.projection_head: nn.Module = nn.Linear(128, 32)

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
    said = re.fullmatch(
        r"complete collapse held (\d+) logged epochs \(since epoch (\d+), in the server's "
        r"verdict of epoch (\d+), read after epoch (\d+)\); stop_on_collapse=2",
        finish["stop_reason"],
    )
    assert said, finish["stop_reason"]
    streak, onset, judged, read_after = map(int, said.groups())
    assert streak >= 2 and onset <= judged <= read_after
    assert records[finish["stopped_at_epoch"]]["verdict"]["kind"] == "complete_collapse"
    reasons = _status_reasons(api, first.run_id)
    assert any(f"stopped training after epoch {trainer.current_epoch}" in r for r in reasons)


class _BatchNormPositives(_PositivesOnly):
    """_PositivesOnly with BatchNorm in the backbone and the head, a CNN's usual layers."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(32, 128), nn.BatchNorm1d(128), nn.ReLU())
        self.projection_head = nn.Sequential(nn.Linear(128, 32), nn.BatchNorm1d(32))

    def on_train_epoch_end(self) -> None:
        pass  # nothing to stop: two epochs, no waiting


def test_an_untrained_batchnorm_module_has_a_real_epoch_0_on_the_server(
    stack: ServiceStack, api: httpx.Client, tmp_path: Path, monkeypatch: Any
) -> None:
    """Inputs far from 0 and BatchNorm at its initial mean 0 and variance 1: measured in
    eval mode as they stand, every probe row is nearly one z, and the server would judge the
    run against a collapsed epoch 0. The callback measures them with the probe's statistics."""
    for name in [n for n in os.environ if n.startswith(("SLURM_", "TORCHELASTIC_"))]:
        monkeypatch.delenv(name)
    probe, labels, _ = _data()
    shifted = DataLoader(TensorDataset(5 + 0.1 * probe), batch_size=128)
    callback = CollapseLabCallback(stack.base_url, 5 + 0.1 * probe, labels=labels, name="bn")
    _trainer(tmp_path, 2, callback).fit(_BatchNormPositives(), shifted)
    assert callback.run_id is not None
    wait_until(lambda: _ended(api, callback.run_id), 60, what="the run")
    epoch_0 = _records(api, callback.run_id)[0]
    assert epoch_0["projector"]["cos_rand"] < 0.9, epoch_0["projector"]
    findings = " ".join(_records(api, callback.run_id)[2]["verdict"]["findings"])
    assert "already looks completely collapsed" not in findings, findings
