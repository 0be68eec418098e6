"""The examples of client/README.md run as written (with tiny stand-ins for the user's
model and data), so the documentation cannot drift from the package."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from collapse_lab import CollapseLabWarning, Monitor

from tests.client.fake_server import FakeCollapseLab

README = Path(__file__).resolve().parents[2] / "client" / "README.md"
PLAIN, LIGHTNING = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)

STAND_INS = """
import torch
from torch import nn

torch.manual_seed(0)
backbone = nn.Sequential(nn.Linear(16, 32), nn.BatchNorm1d(32), nn.ReLU())
projector = nn.Sequential(nn.Linear(32, 8), nn.BatchNorm1d(8))
predictor = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8))
train_loader = [(torch.randn(32, 16), torch.randn(32, 16)) for _ in range(3)]
augment = lambda x: x + 0.1 * torch.randn_like(x)
probe_x, probe_y = torch.randn(256, 16), torch.arange(256) % 4
"""


def run_example(code: str, server: FakeCollapseLab, namespace: dict) -> None:
    code = code.replace("http://localhost:8000", server.url)
    code = code.replace("range(1, 101)", "range(1, 4)").replace("max_epochs=100", "max_epochs=3")
    exec(compile(STAND_INS + code, str(README), "exec"), namespace)


def test_plain_pytorch_example(server: FakeCollapseLab) -> None:
    pytest.importorskip("torch")
    run_example(PLAIN, server, {})
    run = server.only_run()
    assert sorted(run.epochs) == [0, 1, 2, 3]
    assert set(run.epochs[3]["arrays"]) == {"z", "h", "views_a", "views_b", "labels"}
    assert run.epochs[3]["scalars"] == {"lr": 0.05}
    assert run.finish is not None and run.finish["status"] == "succeeded"


def test_lightning_example(
    server: FakeCollapseLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("lightning", reason="Lightning is not installed (optional extra)")
    from tests.client.test_lightning import TinySimSiam

    monkeypatch.chdir(tmp_path)  # the Trainer's default logger writes lightning_logs/ here
    stand_ins = (
        "from torch.utils.data import DataLoader, TensorDataset\n"
        "train_loader = DataLoader(TensorDataset(torch.randn(64, 16)), batch_size=32)\n"
        "model = TinySimSiam()\n"
    )
    run_example(stand_ins + LIGHTNING, server, {"TinySimSiam": TinySimSiam})
    run = server.only_run()
    assert sorted(run.epochs) == [0, 1, 2, 3]
    assert run.finish is not None and run.finish["status"] == "succeeded"


def test_finish_returns_what_the_readme_says(server: FakeCollapseLab) -> None:
    """After an epoch refused with 409 epoch_conflict, finish() is True and stats.dropped
    names the epoch: the README said it returned "whether everything arrived"."""
    monitor = Monitor(server.url, name="x", resume=False)
    server.only_run().digests[1] = "another training's epoch 1"  # held with other data
    with pytest.warns(CollapseLabWarning, match="epoch_conflict|differs"):
        for epoch in range(3):
            monitor.log_epoch(epoch, np.full((16, 4), epoch, np.float32))
        assert monitor.finish(timeout=10)
    assert monitor.stats.dropped == [1] and monitor.stats.delivered == [0, 2]
    readme = " ".join(README.read_text().split())
    assert "returns True when the run was closed with every epoch that was not dropped" in readme
    assert "`409 epoch_conflict` included) and skipped ones (NaN/inf) do not make it" in readme
