"""The command line: clear one-line errors, a table per epoch and the JSONL records."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workers.cli import main as cli_main

TINY_SETS = [
    "--set", "train_size=256", "--set", "probe_size=128", "--set", "batch_size=64",
    "--set", "width=8", "--set", "proj_dim=32", "--set", "proj_hidden_dim=64",
]  # fmt: skip


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATA_DIR": str(cwd / "data")}
    return subprocess.run(
        [sys.executable, "-m", "workers.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["train", "--preset", "nope"], "unknown preset 'nope'"),
        (["train", "--method", "simsiam", "--epochs", "0"], "epochs"),
        (["train", "--method", "simsiam", "--set", "bogus=1"], "options.bogus"),
        (["train", "--method", "simsiam", "--set", "nonsense"], "--set expects key=value"),
        (["train"], "give --preset NAME or --method NAME"),
        (["zoo", "--presets", "simsiam,nope"], "unknown preset 'nope'"),
        (["sweep", "--preset", "vicreg", "--grid", "bogus=1,2"], "grid.bogus"),
        (["sweep", "--preset", "vicreg", "--grid", "variance_weight=0,-1"], "variance_weight=-1"),
        (["sweep", "--preset", "vicreg", "--grid", "novalues"], "--grid expects key="),
        (["sweep", "--preset", "vicreg"], "grid: give one or two"),
    ],
)
def test_bad_arguments_give_one_clear_line(
    args: list[str],
    needle: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # in this process (the other tests run the command itself): a subprocess per case
    # would spend seconds importing torch only to be refused
    monkeypatch.chdir(tmp_path)
    try:
        status = cli_main(args)
    except SystemExit as exit:
        status = exit.code
    stderr = capsys.readouterr().err
    assert status == 2
    assert needle in stderr
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1


@pytest.mark.slow  # trains in subprocesses for more than a few seconds
def test_train_prints_table_and_writes_jsonl(tmp_path: Path) -> None:
    out = tmp_path / "run.jsonl"
    proc = run_cli(
        "train", "--preset", "simsiam", "--epochs", "2", *TINY_SETS, "--jsonl", str(out),
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "verdict:" in proc.stdout
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["epoch"] for r in lines[:-1]] == [0, 1, 2]
    assert set(lines[-1]) == {"verdict"}
    assert lines[-1]["verdict"]["kind"] in {"healthy", "dimensional_collapse", "complete_collapse"}
    assert {"backbone", "projector", "loss", "lr", "verdict"} <= set(lines[1])


def test_missing_imagefolder_is_a_clear_error(tmp_path: Path) -> None:
    proc = run_cli(
        "train", "--method", "simsiam", "--dataset", "imagefolder",
        "--set", "dataset_path=../../etc", "--epochs", "1", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "collapse-lab: error:" in proc.stderr


@pytest.mark.slow  # trains in subprocesses for more than a few seconds
def test_sweep_runs_each_grid_point_and_prints_the_map(tmp_path: Path) -> None:
    # VICReg on tiny digits at a large learning rate: no variance term collapses by epoch 3
    proc = run_cli(
        "sweep", "--preset", "vicreg", "--epochs", "6", *TINY_SETS, "--set", "batch_size=32",
        "--set", "image_size=16", "--set", "lr=3.0", "--grid", "variance_weight=0,25",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "2 runs: variance_weight in [0, 25], seeds [0]"
    rows = [line for line in lines if line.startswith("| 0 |") or line.startswith("| 25 |")]
    assert "complete_collapse (stopped early)" in rows[0] and "| healthy |" in rows[1]
    map_row = lines[-1]
    assert map_row.startswith("| verdict | complete@") and map_row.endswith("| healthy |")
