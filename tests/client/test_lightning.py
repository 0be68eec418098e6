"""CollapseLabCallback in a tiny Lightning loop, against the stand-in server (CPU, seconds).

Skipped where Lightning is not installed: the package's ``lightning`` extra is optional,
and the project's own environment does not need it.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
lightning = pytest.importorskip("lightning", reason="Lightning is not installed (optional extra)")

from collapse_lab.lightning import CollapseLabCallback, default_embed  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from tests.client.fake_server import FakeCollapseLab  # noqa: E402


class TinySimSiam(lightning.pytorch.LightningModule):
    """SimSiam on 16-dim vectors, with lightly's attribute names; a frozen "stem" kept in
    eval mode checks that the callback restores each submodule's own mode."""

    def __init__(self) -> None:
        super().__init__()
        self.save_hyperparameters({"lr": 0.05, "method": "tiny-simsiam"})
        self.stem = nn.BatchNorm1d(16).eval().requires_grad_(False)
        self.backbone = nn.Sequential(nn.Linear(16, 32), nn.ReLU())
        self.projection_head = nn.Linear(32, 8)
        self.prediction_head = nn.Linear(8, 8)
        self.modes_seen: list[tuple[bool, bool]] = []

    def train(self, mode: bool = True) -> TinySimSiam:
        super().train(mode)
        self.stem.eval()  # frozen, as a fine-tuning script would keep it
        return self

    def training_step(self, batch: list[torch.Tensor], index: int) -> torch.Tensor:
        self.modes_seen.append((self.backbone.training, self.stem.training))
        x = self.stem(batch[0])
        z1 = self.projection_head(self.backbone(x + 0.1 * torch.randn_like(x)))
        z2 = self.projection_head(self.backbone(x + 0.1 * torch.randn_like(x)))
        p1, p2 = self.prediction_head(z1), self.prediction_head(z2)
        cos = nn.functional.cosine_similarity
        loss = -(cos(p1, z2.detach()).mean() + cos(p2, z1.detach()).mean()) / 2
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.05)


def fit(*callbacks: lightning.pytorch.Callback, epochs: int) -> TinySimSiam:
    torch.manual_seed(0)
    model = TinySimSiam()
    trainer = lightning.pytorch.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=list(callbacks),
    )
    trainer.fit(model, DataLoader(TensorDataset(torch.randn(128, 16)), batch_size=32))
    return model


def test_logs_epoch_zero_then_every_epoch_and_finishes(server: FakeCollapseLab) -> None:
    probe = torch.randn(96, 16)
    callback = CollapseLabCallback(
        server.url, probe, labels=torch.arange(96) % 4, view_transform=lambda x: x * 1.01
    )
    model = fit(callback, epochs=3)
    assert callback.monitor is not None and callback.monitor.url is not None
    run = server.only_run()
    assert sorted(run.epochs) == [0, 1, 2, 3]
    assert run.registration["config"] == {"lr": 0.05, "method": "tiny-simsiam", "max_epochs": 3}
    assert run.registration["source"]["integration"] == "lightning"
    arrays = run.epochs[3]["arrays"]
    assert arrays["z"].shape == (96, 8) and arrays["h"].shape == (96, 32)
    assert arrays["views_a"].shape == (96, 8) and arrays["labels"].tolist()[:5] == [0, 1, 2, 3, 0]
    assert run.epochs[0]["loss"] is None and isinstance(run.epochs[3]["loss"], float)
    assert run.finish is not None and run.finish["status"] == "succeeded"
    assert set(model.modes_seen) == {(True, False)}  # modes restored after every probe pass
    with torch.no_grad():
        expected = model.projection_head(model.backbone(probe))
    torch.testing.assert_close(
        torch.from_numpy(arrays["z"]), expected, atol=2e-3 * expected.abs().max(), rtol=0
    )


def test_every_n_epochs_with_a_probe_loader_keeps_the_last_epoch(
    server: FakeCollapseLab,
) -> None:
    loader = DataLoader(TensorDataset(torch.randn(80, 16), torch.arange(80) % 5), batch_size=32)
    fit(CollapseLabCallback(server.url, loader, every_n_epochs=2), epochs=3)
    run = server.only_run()
    assert sorted(run.epochs) == [0, 2, 3]
    assert run.epochs[2]["arrays"]["labels"].tolist()[:6] == [0, 1, 2, 3, 4, 0]


def test_a_crash_closes_the_run_as_failed(server: FakeCollapseLab) -> None:
    def embed(module: nn.Module, x: torch.Tensor) -> tuple[None, torch.Tensor]:
        return None, module.projection_head(module.backbone(x))

    class Crash(lightning.pytorch.Callback):
        def on_train_epoch_end(self, trainer: object, module: object) -> None:
            raise RuntimeError("out of memory")

    callback = CollapseLabCallback(server.url, torch.randn(64, 16), embed=embed)
    with pytest.raises(RuntimeError, match="out of memory"):
        fit(callback, Crash(), epochs=2)
    run = server.only_run()
    assert "h" not in run.epochs[0]["arrays"]
    assert run.finish is not None and run.finish["status"] == "failed"
    assert run.finish["error"] == "RuntimeError: out of memory"


def test_refuses_a_shuffling_probe_and_a_module_without_heads() -> None:
    data = TensorDataset(torch.randn(8, 2))
    with pytest.raises(ValueError, match="shuffles"):
        CollapseLabCallback("http://x", DataLoader(data, shuffle=True))
    with pytest.raises(AttributeError, match="pass embed="):
        default_embed(nn.Linear(2, 2), torch.randn(1, 2))
