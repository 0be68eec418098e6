"""Offline runs on disk (no server at all) and the same-data rule both ends share."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from collapse_lab import CollapseLabWarning, Monitor, local, wire
from collapse_lab import monitor as monitor_module
from collapse_lab import sync as sync_module
from collapse_lab.sync import sync_paths

from tests.client.fake_server import FakeCollapseLab


def _z(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((64, 4))


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
    assert meta["registration"]["resume_key"] == first.resume_key
    assert first.resume_key is not None and first.resume_key.startswith("slurm::777:job:")
    assert sorted(local.stored_epochs(run_dir)) == [0, 1, 2]
    assert wire.decode_epoch(local.epoch_path(run_dir, 2).read_bytes()).loss == 0.5
    assert json.loads((run_dir / local.FINISH_FILE).read_text())["status"] == "succeeded"
    assert not [p for p in run_dir.rglob("*") if p.name.endswith(".tmp")]

    # The requeued job (a new process, the same command line): same directory, finish.json
    # gone until it finishes; epoch 1 again with the same data is kept once, epoch 2 with
    # other data refused, epoch 3 new.
    _new_process(monkeypatch)
    second = Monitor(name="job", config={"lr": 0.1})
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


def test_a_mode_misspelt_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLLAPSE_LAB_MODE", "ofline")
    with pytest.raises(ValueError, match=r"COLLAPSE_LAB_MODE='ofline' is not one of online"):
        Monitor("http://127.0.0.1:9", name="typo")
    with pytest.raises(ValueError, match=r"offline='sometimes': give True, False or 'auto'"):
        Monitor("http://127.0.0.1:9", name="typo", offline="sometimes")


def _new_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget the default resume keys this process handed out, as a requeued job's new
    process has never seen them."""
    monkeypatch.setattr(monitor_module, "_DEFAULT_KEYS_TAKEN", {})


def test_default_keys_part_monitors_of_one_job_and_find_them_again_after_a_requeue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A loop over seeds in one sbatch (other configs) and two monitors of one script get
    runs of their own; the requeued job, creating them in the same order, finds each."""
    monkeypatch.setenv("SLURM_JOB_ID", "912")
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID", raising=False)
    monkeypatch.delenv("SLURM_CLUSTER_NAME", raising=False)
    _new_process(monkeypatch)

    def job() -> list[str | None]:
        monitors = [
            Monitor(name="train", config={"seed": 0}, offline=True, run_dir=tmp_path),
            Monitor(name="train", config={"seed": 1}, offline=True, run_dir=tmp_path),
            Monitor(name="train", config={"seed": 1}, offline=True, run_dir=tmp_path),
        ]
        for monitor in monitors:
            monitor.finish(timeout=10)
        return [monitor.resume_key for monitor in monitors]

    keys = job()
    assert len(set(keys)) == 3 and all(k and k.startswith("slurm::912:train:") for k in keys)
    assert keys[2] == f"{keys[1]}#2"
    assert keys[0] == monitor_module.default_resume_key("train", {"seed": 0})
    _new_process(monkeypatch)
    assert job() == keys
    assert len(list(tmp_path.iterdir())) == 3
    long_key = monitor_module.default_resume_key("n" * 400, {"seed": 0})
    assert long_key is not None and len(long_key) == wire.MAX_RESUME_KEY


def test_a_loop_of_trainings_in_one_job_gets_a_run_each_found_again_after_a_requeue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`for s in 1 2; do python train.py --seed $s; done` in one sbatch, config not given:
    each command line its own run; the requeued job, repeating them, finds each. A second
    training with the same command line continues the first one's run: its epoch 0 with
    other data is refused, and the warning says what to do."""
    monkeypatch.setenv("SLURM_JOB_ID", "913")
    for name in ("SLURM_ARRAY_TASK_ID", "SLURM_CLUSTER_NAME", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(name, raising=False)

    def train(seed: int, data: int | None = None) -> Monitor:
        _new_process(monkeypatch)
        monkeypatch.setattr(sys, "argv", ["train.py", "--seed", str(seed)])
        monitor = Monitor(offline=True, run_dir=tmp_path)
        monitor.log_epoch(0, _z(seed if data is None else data))
        monitor.finish(timeout=10)
        return monitor

    first, second = train(1), train(2)
    assert first.resume_key != second.resume_key and not second.resumed
    assert first.run_dir != second.run_dir and first.stats.delivered == [0]
    assert second.stats.delivered == [0]
    requeued = train(2)
    assert requeued.resume_key == second.resume_key and requeued.run_dir == second.run_dir
    assert requeued.resumed and requeued.stats.delivered == [0]  # the same data: kept once
    with pytest.warns(CollapseLabWarning, match=r"another training under the resume key"):
        again = train(2, data=99)  # the same command line, other weights
    assert again.run_dir == second.run_dir and again.stats.dropped == [0]
    assert second.run_dir is not None
    stored = wire.decode_epoch(local.epoch_path(second.run_dir, 0).read_bytes())
    assert np.allclose(stored.z, _z(2), atol=1e-3)  # the stored epoch kept


def test_an_offline_monitor_waits_for_the_disk_rather_than_drop_an_epoch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A buffer of 2 epochs and a disk that takes 20 ms a file: online the oldest waiting
    epochs would be dropped; offline log_epoch waits, and every epoch is written."""
    write = local.write_new

    def slow_write(path: Path, data: bytes) -> bool:
        time.sleep(0.02)
        return write(path, data)

    monkeypatch.setattr(local, "write_new", slow_write)
    monitor = Monitor(name="slow-disk", offline=True, run_dir=tmp_path, resume=False)
    monitor.max_buffer_epochs = 2
    with warnings.catch_warnings():
        warnings.simplefilter("error", CollapseLabWarning)  # "dropped" would raise here
        for epoch in range(20):
            monitor.log_epoch(epoch, _z(epoch))
    assert monitor.finish(timeout=30) and monitor.run_dir is not None
    assert monitor.stats.dropped == [] and monitor.stats.delivered == list(range(20))
    assert sorted(local.stored_epochs(monitor.run_dir)) == list(range(20))


@pytest.mark.parametrize("resume", ["job-7", False])
def test_a_requeued_auto_run_gone_offline_is_not_warned_about_its_baseline(
    resume: str | bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first try logged epochs 0-4 online; the requeued try finds the server down and
    writes epochs 5... offline under the run's resume key: the server holds epoch 0, so
    no "no untrained baseline" warning. Without a resume key it is a new run: warned."""
    for name in ("SLURM_JOB_ID", "SLURM_RESTART_COUNT", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        monitor = Monitor(url, offline="auto", run_dir=tmp_path, resume=resume, timeout=1.0)
        monitor.log_epoch(5, _z(5))
        assert monitor.finish(timeout=10) and monitor.offline
    baseline = [w for w in caught if "no untrained baseline" in str(w.message)]
    assert len(baseline) == (0 if resume else 1), [str(w.message) for w in caught]


def test_not_a_run_directory_is_named() -> None:
    with pytest.raises(local.NotARunError, match=r"no run\.json"):
        local.read_meta(Path(__file__).parent)


@pytest.mark.parametrize("follow", [False, True])
def test_a_path_that_does_not_exist_is_named_and_the_others_synced(
    follow: bool, server: FakeCollapseLab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monitor = Monitor(name="job", offline=True, run_dir=tmp_path / "runs", resume=False)
    monitor.log_epoch(0, _z(0))
    assert monitor.finish(timeout=10) and monitor.run_dir is not None
    missing = tmp_path / "typo"
    synced = sync_paths([missing, tmp_path / "runs"], server.url, None, follow, 0.05, 0.3)
    assert synced == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == f"{missing}: no such directory"
    assert [line.endswith("1/1 epochs") for line in lines[1:]] == [True]  # the run's bar
    assert sorted(server.only_run().epochs) == [0]


def test_same_data_ignores_the_time_it_was_logged() -> None:
    a = wire.encode_epoch(4, {"z": _z(0)}, loss=1.0, logged_at=1.0)
    b = wire.encode_epoch(4, {"z": _z(0)}, loss=1.0, logged_at=2.0)
    assert a != b and wire.same_data(a, b)
    assert not wire.same_data(a, wire.encode_epoch(4, {"z": _z(1)}, loss=1.0))
    assert not wire.same_data(a, wire.encode_epoch(4, {"z": _z(0)}, loss=1.5))
    assert not wire.same_data(a, a[:-8])


def test_auto_mode_writes_the_run_to_a_directory_when_the_server_is_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("SLURM_JOB_ID", "TORCHELASTIC_RUN_ID", "COLLAPSE_LAB_MODE"):
        monkeypatch.delenv(name, raising=False)
    with socket.socket() as closed:  # a port nothing listens on: connection refused
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    with pytest.warns(CollapseLabWarning, match=r"cannot reach .* python -m collapse_lab sync"):
        monitor = Monitor(url, name="auto", offline="auto", run_dir=tmp_path, timeout=1.0)
    assert monitor.offline and monitor.run_id is None and monitor.run_dir is not None
    assert monitor.run_dir.parent == tmp_path
    for epoch in range(2):
        monitor.log_epoch(epoch, _z(epoch))
    assert monitor.finish(timeout=10)
    assert sorted(local.stored_epochs(monitor.run_dir)) == [0, 1]
    assert local.read_meta(monitor.run_dir)["registration"]["name"] == "auto"
    assert local.read_finish(monitor.run_dir) is not None


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"SLURM_JOB_ID": "81", "SLURM_CLUSTER_NAME": "c1"}, "slurm:c1:81:job"),
        ({"SLURM_JOB_ID": "81", "SLURM_ARRAY_TASK_ID": "3"}, "slurm::81_3:job"),
        ({"TORCHELASTIC_RUN_ID": "rdzv-7"}, "torchrun:rdzv-7:job"),
        ({"TORCHELASTIC_RUN_ID": "none"}, None),  # torchrun without a rendezvous id
        ({}, None),
    ],
)
def test_the_resume_key_comes_from_the_scheduler(
    env: dict[str, str], key: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two tasks of one SLURM array, or two torchrun jobs, never share a run; the same task
    requeued writes on into its own directory."""
    for name in ("SLURM_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_CLUSTER_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    first = Monitor(name="job", offline=True, run_dir=tmp_path)
    if key is None:
        assert first.resume_key is None
    else:  # and the digest of the command line and config
        assert first.resume_key is not None and first.resume_key.startswith(f"{key}:")
    first.log_epoch(0, _z(0))
    assert first.finish(timeout=10) and first.run_dir is not None
    _new_process(monkeypatch)
    requeued = Monitor(name="job", offline=True, run_dir=tmp_path)
    assert (requeued.run_dir == first.run_dir) is (key is not None)
    assert requeued.resumed is (key is not None)
    requeued.finish(timeout=10)
    if env.get("SLURM_ARRAY_TASK_ID"):
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "4")
        other_task = Monitor(name="job", offline=True, run_dir=tmp_path)
        assert other_task.resume_key is not None
        assert other_task.resume_key.startswith("slurm::81_4:job:")
        assert other_task.run_dir != first.run_dir and not other_task.resumed
        other_task.finish(timeout=10)


def test_a_follow_relay_outlives_a_server_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A plain sync gives up on a server that stays down (exit 1, sync again later);
    --follow says so once and goes on once the server is back."""
    monkeypatch.setattr(sync_module, "ATTEMPTS", 2)  # 1.5 s of retries before giving up
    monitor = Monitor(name="relayed", offline=True, run_dir=tmp_path, resume=False)
    for epoch in range(3):
        monitor.log_epoch(epoch, _z(epoch))
    assert monitor.finish(timeout=10)
    server = FakeCollapseLab()
    server.stop()  # down: the same port comes back later
    try:
        assert sync_paths([tmp_path], server.url, None) == 1
        assert "run the sync again" in capsys.readouterr().err
        restart = threading.Timer(3.0, server.start)
        restart.start()
        followed = sync_paths([tmp_path], server.url, None, True, 0.1, idle_timeout_s=0.5)
        assert followed == 0
        restart.join()
        assert "--follow keeps trying" in capsys.readouterr().err
        run = server.only_run()
        assert sorted(run.epochs) == [0, 1, 2] and run.finish is not None
    finally:
        server.stop()


def test_an_epoch_added_to_a_finished_run_without_a_resume_key_is_named(
    server: FakeCollapseLab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monitor = Monitor(name="done", offline=True, run_dir=tmp_path, resume=False)
    monitor.log_epoch(0, _z(0))
    assert monitor.finish(timeout=10) and monitor.run_dir is not None
    assert sync_paths([tmp_path], server.url, None) == 0
    late = wire.encode_epoch(1, {"z": _z(1)})  # written into the directory afterwards
    local.write_atomic(local.epoch_path(monitor.run_dir, 1), late)
    capsys.readouterr()
    assert sync_paths([tmp_path], server.url, None) == 1
    assert "no resume key to reopen it, so epoch 1 cannot be added" in capsys.readouterr().err
    assert sorted(server.only_run().epochs) == [0]


def test_a_run_directory_that_cannot_be_made_is_named(tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    with pytest.raises(ValueError, match=r"cannot make the run's directory .*a-file/"):
        Monitor(offline=True, run_dir=a_file, name="nowhere")


def test_keys_that_read_alike_once_made_safe_get_a_directory_each(tmp_path: Path) -> None:
    """Two monitors of one job named in another script: their keys differ only in
    characters a file name cannot hold."""
    first = Monitor(offline=True, run_dir=tmp_path, name="t", resume="slurm:c:42:教师")
    second = Monitor(offline=True, run_dir=tmp_path, name="s", resume="slurm:c:42:学生")
    assert first.run_dir != second.run_dir and not second.resumed
    for epoch in range(2):
        first.log_epoch(epoch, _z(epoch))
        second.log_epoch(epoch, _z(10 + epoch))
    assert first.finish(timeout=10) and second.finish(timeout=10)
    assert second.stats.delivered == [0, 1] and second.stats.dropped == []
    assert first.run_dir is not None and second.run_dir is not None
    assert local.read_meta(second.run_dir)["registration"]["resume_key"] == "slurm:c:42:学生"


def test_a_job_requeued_across_a_client_upgrade_continues_its_directory(tmp_path: Path) -> None:
    """A release before the digest named a key's directory by the key's safe form alone."""
    key = "slurm:c:7:job"
    earlier = tmp_path / "slurm_c_7_job"
    local.create(earlier, {"name": "job", "resume_key": key}, "0" * 32)
    local.write_atomic(local.epoch_path(earlier, 0), wire.encode_epoch(0, {"z": _z(0)}))
    monitor = Monitor(offline=True, run_dir=tmp_path, name="job", resume=key)
    assert monitor.run_dir == earlier and monitor.resumed and monitor.last_stored_epoch == 0
    monitor.log_epoch(1, _z(1))
    assert monitor.finish(timeout=10)
    assert sorted(local.stored_epochs(earlier)) == [0, 1]
    other = Monitor(offline=True, run_dir=tmp_path, name="job", resume="slurm:c:8:job")
    assert other.run_dir != earlier and not other.resumed  # another key's: not taken


def test_an_offline_part_that_cannot_be_synced_does_not_stop_the_run_online(
    server: FakeCollapseLab, tmp_path: Path
) -> None:
    """The first try wrote its run offline; the requeued try finds the server and uploads
    that part first. A directory it cannot write its sync.json into (a full disk, here a
    folder in its way) is warned about, and the online epochs still go."""
    first = Monitor(offline=True, run_dir=tmp_path, name="job", resume="job-9")
    first.log_epoch(0, _z(0))
    assert first.finish(timeout=10) and first.run_dir is not None
    (first.run_dir / local.SYNC_FILE).mkdir()
    with pytest.warns(CollapseLabWarning, match="offline part .* not uploaded"):
        second = Monitor(server.url, run_dir=tmp_path, name="job", resume="job-9")
        for epoch in (1, 2):
            second.log_epoch(epoch, _z(epoch))
        assert second.finish(timeout=10)
    assert second.run_id is not None and sorted(server.runs[second.run_id].epochs) == [1, 2]


def test_a_sync_json_of_another_shape_is_rewritten(server: FakeCollapseLab, tmp_path: Path) -> None:
    monitor = Monitor(offline=True, run_dir=tmp_path, name="job", resume=False)
    monitor.log_epoch(0, _z(0))
    assert monitor.finish(timeout=10) and monitor.run_dir is not None
    (monitor.run_dir / local.SYNC_FILE).write_text('{"servers": []}')
    assert sync_paths([tmp_path], server.url, None) == 0
    assert sorted(server.only_run().epochs) == [0]


def test_a_follow_pass_slower_than_the_idle_timeout_does_not_leave_its_run(
    server: FakeCollapseLab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Uploading a backlog is not idleness: a pass over six epochs at 0.3 s each outlasted
    an idle timeout of 0.5 s and the relay left the run, whose finish.json came meanwhile."""
    monitor = Monitor(name="backlog", offline=True, run_dir=tmp_path, resume=False)
    for epoch in range(6):
        monitor.log_epoch(epoch, _z(epoch))
    assert monitor.finish(timeout=10) and monitor.run_dir is not None
    finish = monitor.run_dir / local.FINISH_FILE
    finished = finish.read_bytes()
    finish.unlink()  # the job still running when the relay starts...
    server.delay_s = 0.3
    later = threading.Timer(1.0, lambda: local.write_atomic(finish, finished))  # ...then ends
    later.start()
    try:
        assert sync_paths([tmp_path], server.url, None, True, 0.1, idle_timeout_s=0.5) == 0
    finally:
        later.join()
    assert "--idle-timeout" not in capsys.readouterr().err
    run = server.only_run()
    assert sorted(run.epochs) == list(range(6)) and run.finish is not None


def test_an_epoch_file_changed_after_its_upload_is_sent_again_for_the_server_to_judge(
    server: FakeCollapseLab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The server answers the same data as a duplicate and other data as a conflict, which
    is named (exit 1) and kept in sync.json; a file only touched is not read again."""
    monitor = Monitor(name="edited", offline=True, run_dir=tmp_path, resume="edited-1")
    for epoch in range(3):
        monitor.log_epoch(epoch, _z(epoch))
    assert monitor.finish(timeout=10) and monitor.run_dir is not None
    assert sync_paths([tmp_path], server.url, None) == 0
    path = local.epoch_path(monitor.run_dir, 1)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched: same bytes
    capsys.readouterr()
    assert sync_paths([tmp_path], server.url, None) == 0
    assert "nothing new (3 epochs synced before)" in capsys.readouterr().out
    original = path.read_bytes()
    local.write_atomic(path, wire.encode_epoch(1, {"z": _z(99)}))  # other data for epoch 1
    assert sync_paths([tmp_path], server.url, None) == 1
    captured = capsys.readouterr()
    assert "epoch 1 refused by the server (HTTP 409: epoch 1 differs)" in captured.err
    assert server.only_run().digests[1] != hashlib.sha256(path.read_bytes()).hexdigest()
    assert sync_paths([tmp_path], server.url, None) == 1  # named again while unchanged
    again = capsys.readouterr()
    assert "epoch 1 still refused, its file unchanged" in again.err
    assert "nothing new" not in again.out and "1 refused" in again.out  # not "synced"
    local.write_atomic(path, original)  # put back: what the server holds, nothing refused
    assert sync_paths([tmp_path], server.url, None) == 0
    assert "refused" not in capsys.readouterr().err
    state = json.loads((monitor.run_dir / local.SYNC_FILE).read_text())["servers"]
    assert state[server.url]["refused"] == {}


@pytest.mark.parametrize(
    ("error", "advice"),
    [
        (OSError(28, "No space left on device"), "free some room"),
        (PermissionError(13, "Permission denied"), "make the directory writable"),
    ],
    ids=["disk full", "read-only"],
)
def test_a_sync_that_cannot_write_its_state_says_so_in_one_line_and_registers_no_run(
    server: FakeCollapseLab,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    error: OSError,
    advice: str,
) -> None:
    monitor = Monitor(offline=True, run_dir=tmp_path, name="job", resume=False)
    monitor.log_epoch(0, _z(0))
    assert monitor.finish(timeout=10) and monitor.run_dir is not None

    def cannot_write(path: Path, value: object) -> None:
        raise error

    monkeypatch.setattr(local, "write_json", cannot_write)
    assert sync_paths([tmp_path], server.url, None) == 1
    err = capsys.readouterr().err
    assert f"cannot write {monitor.run_dir / local.SYNC_FILE} ({error.strerror}): {advice}" in err
    assert "Traceback" not in err
    assert server.runs == {}  # said before registering: no empty run left running


def test_a_directory_continued_online_is_done_for_a_later_sync(
    server: FakeCollapseLab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The requeued try uploaded the offline part and finished the run online: a sync of
    the directory afterwards has nothing to do and says so (it said "still running", exit
    1 under --follow)."""
    first = Monitor(offline=True, run_dir=tmp_path, name="job", resume="job-11")
    first.log_epoch(0, _z(0))
    assert first.finish(timeout=10)
    second = Monitor(server.url, run_dir=tmp_path, name="job", resume="job-11")
    second.log_epoch(1, _z(1))
    assert second.finish(timeout=10)
    capsys.readouterr()
    assert sync_paths([tmp_path], server.url, None, True, 0.1, idle_timeout_s=0.5) == 0
    captured = capsys.readouterr()
    assert "run continued online by a resumed monitor" in captured.out, captured
    assert "--idle-timeout" not in captured.err
    assert sorted(server.only_run().epochs) == [0, 1]


def test_an_offline_part_whose_finish_cannot_be_removed_is_warned_about(
    server: FakeCollapseLab, tmp_path: Path
) -> None:
    """A read-only directory (here a folder in the finish file's place): the run goes on
    online and the warning says what a later sync of it would do."""
    first = Monitor(offline=True, run_dir=tmp_path, name="job", resume="job-12")
    first.log_epoch(0, _z(0))
    assert first.finish(timeout=10) and first.run_dir is not None
    finish = first.run_dir / local.FINISH_FILE
    finish.unlink()
    (finish / "in-the-way").mkdir(parents=True)
    with pytest.warns(CollapseLabWarning, match="cannot remove finish.json .* remove the file"):
        second = Monitor(server.url, run_dir=tmp_path, name="job", resume="job-12")
    second.log_epoch(1, _z(1))
    assert second.finish(timeout=10)
    assert sorted(server.only_run().epochs) == [0, 1]


def test_processes_writing_one_epoch_at_once_never_replace_each_others_file(
    tmp_path: Path,
) -> None:
    """A job and its requeued try running at once (one resume key): of many writers of one
    epoch file, one puts its data in place, every other is told the file is there."""
    path = tmp_path / "epoch-000000.cle"
    bodies = [bytes([i]) * 4096 for i in range(16)]
    start = threading.Barrier(len(bodies))
    won: list[bytes] = []

    def write(body: bytes) -> None:
        start.wait()
        if local.write_new(path, body):
            won.append(body)

    threads = [threading.Thread(target=write, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1 and path.read_bytes() == won[0]
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_a_second_monitor_on_one_resume_key_keeps_the_first_ones_epochs(tmp_path: Path) -> None:
    first = Monitor(name="job", offline=True, run_dir=tmp_path, resume="k")
    second = Monitor(name="job", offline=True, run_dir=tmp_path, resume="k")
    first.log_epoch(0, _z(0))
    assert first.finish(timeout=10)
    with pytest.warns(CollapseLabWarning, match="epoch 0 is already in .* with other data"):
        second.log_epoch(0, _z(1))
        second.finish(timeout=10)
    assert first.run_dir == second.run_dir and first.run_dir is not None
    stored = local.epoch_path(first.run_dir, 0).read_bytes()
    assert wire.same_data(stored, wire.encode_epoch(0, {"z": _z(0)}))
    assert second.stats.dropped == [0]
