"""CollapseLabCallback in a tiny Lightning loop, against the stand-in server (CPU, seconds).

Skipped where Lightning is not installed: the package's ``lightning`` extra is optional,
and the project's own environment does not need it.
"""

from __future__ import annotations

import copy
from typing import TypeVar

import numpy as np
import pytest

torch = pytest.importorskip("torch")
lightning = pytest.importorskip("lightning", reason="Lightning is not installed (optional extra)")

from collapse_lab import Monitor, wire  # noqa: E402
from collapse_lab.lightning import (  # noqa: E402
    CollapseLabCallback,
    default_embed,
    default_internals,
    model_internals,
    swav_codes,
)
from lightly.loss import DINOLoss, NTXentLoss, SwaVLoss  # noqa: E402
from lightly.loss.swav_loss import sinkhorn  # noqa: E402
from lightly.models.modules import SwaVPrototypes  # noqa: E402
from lightly.models.utils import update_momentum  # noqa: E402
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


class TinyBYOL(TinySimSiam):
    """TinySimSiam plus lightly's BYOL target branch, updated as an EMA of the online one,
    and the momentum as an attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone_momentum = copy.deepcopy(self.backbone).requires_grad_(False)
        self.projection_head_momentum = copy.deepcopy(self.projection_head).requires_grad_(False)
        self.momentum = 0.9

    def on_train_batch_end(self, *args: object) -> None:
        update_momentum(self.backbone, self.backbone_momentum, self.momentum)
        update_momentum(self.projection_head, self.projection_head_momentum, self.momentum)


class TinyDINO(lightning.pytorch.LightningModule):
    """DINO with lightly's names and loss: a student, its EMA teacher, and DINOLoss
    (K = 10 prototypes) whose teacher temperature warms up over 3 epochs."""

    def __init__(self) -> None:
        super().__init__()
        self.student_backbone = nn.Sequential(nn.Linear(16, 32), nn.ReLU())
        self.student_head = nn.Linear(32, 10)
        self.teacher_backbone = copy.deepcopy(self.student_backbone).requires_grad_(False)
        self.teacher_head = copy.deepcopy(self.student_head).requires_grad_(False)
        self.criterion = DINOLoss(
            output_dim=10,
            warmup_teacher_temp=0.04,
            teacher_temp=0.07,
            warmup_teacher_temp_epochs=3,
        )
        self.momentum = 0.99

    def training_step(self, batch: list[torch.Tensor], index: int) -> torch.Tensor:
        update_momentum(self.student_backbone, self.teacher_backbone, self.momentum)
        update_momentum(self.student_head, self.teacher_head, self.momentum)
        views = [batch[0] + 0.1 * torch.randn_like(batch[0]) for _ in range(2)]
        teacher = [self.teacher_head(self.teacher_backbone(v)) for v in views]
        student = [self.student_head(self.student_backbone(v)) for v in views]
        loss = self.criterion(teacher, student, epoch=self.current_epoch)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.05)


Module = TypeVar("Module", bound=lightning.pytorch.LightningModule)


def fit(module: type[Module], *callbacks: lightning.pytorch.Callback, epochs: int) -> Module:
    torch.manual_seed(0)
    model = module()
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
    model = fit(TinySimSiam, callback, epochs=3)
    assert callback.monitor is not None and callback.monitor.url is not None
    run = server.only_run()
    assert sorted(run.epochs) == [0, 1, 2, 3]
    # the optimiser's class travels too: weight decay is read as a cause under SGD only
    assert run.registration["config"] == {
        "lr": 0.05,
        "method": "tiny-simsiam",
        "optimizer": "SGD",
        "max_epochs": 3,
    }
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


def test_a_callback_fits_again_as_a_new_run(server: FakeCollapseLab) -> None:
    """One callback in two fits that each start from epoch 0 (a new Trainer): the second
    is a run of its own, not "log_epoch() after finish()"."""
    callback = CollapseLabCallback(server.url, torch.randn(64, 16))
    fit(TinySimSiam, callback, epochs=2)
    first = callback.run_id
    fit(TinySimSiam, callback, epochs=2)
    assert callback.run_id not in (None, first) and len(server.runs) == 2
    for run in server.runs.values():
        assert sorted(run.epochs) == [0, 1, 2] and run.finish is not None
        assert run.finish["status"] == "succeeded"


def test_every_n_epochs_with_a_probe_loader_keeps_the_last_epoch(
    server: FakeCollapseLab,
) -> None:
    loader = DataLoader(TensorDataset(torch.randn(80, 16), torch.arange(80) % 5), batch_size=32)
    fit(TinySimSiam, CollapseLabCallback(server.url, loader, every_n_epochs=2), epochs=3)
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
        fit(TinySimSiam, callback, Crash(), epochs=2)
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


class TinyBatchNormSimSiam(TinySimSiam):
    """TinySimSiam whose backbone and head normalise with BatchNorm (a CNN's usual layers)."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(16, 32), nn.BatchNorm1d(32), nn.ReLU())
        self.projection_head = nn.Sequential(nn.Linear(32, 8), nn.BatchNorm1d(8))


class TinyBatchNormBYOL(TinyBatchNormSimSiam):
    """With a BYOL target branch copied from the online one: BatchNorm there too."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone_momentum = copy.deepcopy(self.backbone).requires_grad_(False)
        self.projection_head_momentum = copy.deepcopy(self.projection_head).requires_grad_(False)


def _random_pair_cosine(rows: np.ndarray) -> float:
    unit = nn.functional.normalize(torch.from_numpy(rows), dim=1)
    return float((unit * unit.roll(1, 0)).sum(1).mean())


def test_epoch_0_measures_untrained_batchnorm_with_the_probes_statistics(
    server: FakeCollapseLab,
) -> None:
    # inputs far from 0: with BatchNorm's initial statistics (mean 0, variance 1) in eval
    # mode every row comes out nearly the same z, an epoch 0 that reads collapsed
    server.accepts = list(wire.ARRAY_NAMES)
    probe = 5 + 0.5 * torch.rand(64, 16)
    model = fit(TinyBatchNormBYOL, CollapseLabCallback(server.url, probe), epochs=1)
    arrays = server.only_run().epochs[0]["arrays"]
    # nearly 1.0 with the initial statistics, in the online branch and the target's
    assert _random_pair_cosine(arrays["z"]) < 0.5
    assert _random_pair_cosine(arrays["target"]) < 0.5
    # the layers were put back: training counted its own passes only (4 steps of two views),
    # from momentum 0.1
    norm = model.backbone[1]
    assert int(norm.num_batches_tracked) == 8 and norm.momentum == 0.1
    assert int(model.stem.num_batches_tracked) == 0  # frozen in eval: never touched


def test_a_module_the_probe_cannot_be_embedded_with_opens_no_run(
    server: FakeCollapseLab,
) -> None:
    class Renamed(TinySimSiam):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = self.backbone  # not a name the default embedding looks for
            del self.backbone

        def training_step(self, batch: list[torch.Tensor], index: int) -> torch.Tensor:
            return self.projection_head(self.encoder(batch[0])).square().mean()

    with pytest.raises(AttributeError, match="pass embed="):
        fit(Renamed, CollapseLabCallback(server.url, torch.randn(64, 16)), epochs=1)
    assert server.runs == {}  # the fit failed with the reason and left no empty run


def test_a_dino_module_sends_teacher_and_student_probabilities(
    server: FakeCollapseLab,
) -> None:
    server.accepts = list(wire.ARRAY_NAMES)
    probe = torch.randn(64, 16)
    model = fit(TinyDINO, CollapseLabCallback(server.url, probe), epochs=2)
    run = server.only_run()
    assert sorted(run.epochs) == [0, 1, 2]
    criterion = model.criterion
    # Epoch k is logged at the end of training epoch k - 1, whose loss sharpened with
    # the warm-up schedule at index k - 1 (epoch 0, before training, with index 0).
    temperatures = [run.epochs[e]["scalars"]["teacher_temperature"] for e in (0, 1, 2)]
    assert temperatures == pytest.approx([0.04, 0.04, 0.055])
    scalars = run.epochs[2]["scalars"]
    assert scalars["student_temperature"] == pytest.approx(0.1)
    assert scalars["ema_momentum"] == pytest.approx(0.99)
    assert run.epochs[0]["scalars"]["center_norm"] == 0.0  # lightly's centre starts at 0
    assert scalars["center_norm"] == pytest.approx(float(criterion.center.norm()), rel=1e-6)
    assert scalars["center_norm"] > 0 and scalars["target_param_distance"] > 0
    arrays = run.epochs[2]["arrays"]
    assert "target" not in arrays  # the teacher's logits are not a target to compare with z
    with torch.no_grad():
        logits = model.teacher_head(model.teacher_backbone(probe))
        student_logits = model.student_head(model.student_backbone(probe))
        teacher = nn.functional.softmax(
            (logits - criterion.center) / criterion.teacher_temp_schedule[1], dim=-1
        )[0]
        student = nn.functional.softmax(student_logits / criterion.student_temp, dim=-1)
    for name, expected in (("teacher", teacher), ("student", student)):
        sent = torch.from_numpy(arrays[name])
        assert sent.dtype == torch.float32 and sent.shape == (64, 10)
        torch.testing.assert_close(sent.sum(dim=1), torch.ones(64), atol=1e-5, rtol=0)
        torch.testing.assert_close(sent, expected, atol=1e-5, rtol=0)
    assert arrays["z"].shape == (64, 10) and arrays["h"].shape == (64, 32)  # the student's


def test_a_dino_teacher_without_a_student_of_its_width() -> None:
    model = TinyDINO()
    x = torch.randn(4, 16)
    found = default_internals(model, x, torch.randn(4, 3))
    assert set(found) == {"teacher"}
    torch.testing.assert_close(found["teacher"].sum(dim=1), torch.ones(4))


class SimSiamWithOptimiserMomentum(TinySimSiam):
    """A SimSiam module keeping its SGD momentum in an attribute named ``momentum``."""

    def __init__(self) -> None:
        super().__init__()
        self.momentum = 0.0

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.05, momentum=self.momentum)


def test_a_momentum_attribute_without_a_target_branch_is_not_the_ema() -> None:
    """Read as the EMA momentum, 0 would say the target is the online network and name
    target_network for a SimSiam that collapsed for another reason."""
    _, simsiam = model_internals(SimSiamWithOptimiserMomentum(), lightning.pytorch.Trainer())
    assert "ema_momentum" not in simsiam
    _, byol = model_internals(TinyBYOL(), lightning.pytorch.Trainer())
    assert byol["ema_momentum"] == pytest.approx(0.9)


class TinySwAV(TinySimSiam):
    """TinySimSiam with lightly's SwaVLoss as its criterion (prototypes are not needed for
    the settings the callback reads)."""

    def __init__(self, criterion: nn.Module) -> None:
        super().__init__()
        self.criterion = criterion


def test_a_swav_criterion_sends_its_sinkhorn_epsilon_and_temperature() -> None:
    """lightly's SwaVLoss settings, drawn on the assignments panel beside what they set; a
    contrastive criterion's temperature alone is not read as SwAV's."""
    trainer = lightning.pytorch.Trainer()
    swav = SwaVLoss(temperature=0.2, sinkhorn_epsilon=0.07)
    _, scalars = model_internals(TinySwAV(swav), trainer)
    assert scalars["sinkhorn_epsilon"] == pytest.approx(0.07)
    assert scalars["prediction_temperature"] == pytest.approx(0.2)
    _, contrastive = model_internals(TinySwAV(NTXentLoss(temperature=0.2)), trainer)
    assert "sinkhorn_epsilon" not in contrastive and "prediction_temperature" not in contrastive


@pytest.mark.parametrize("iterations", [1, 3, 10])
def test_swav_codes_match_lightlys_sinkhorn(iterations: int) -> None:
    """The codes the callback sends are lightly's (values to 1e-5), each row summing to 1;
    with 0 iterations, a softmax of scores / epsilon (lightly's rows would not sum to 1)."""
    scores = (
        nn.functional.normalize(torch.randn(48, 8), dim=1)
        @ nn.functional.normalize(torch.randn(20, 8), dim=1).T
    )
    codes = swav_codes(scores, iterations, 0.05)
    torch.testing.assert_close(codes, sinkhorn(scores, iterations, 0.05), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(codes.sum(dim=1), torch.ones(48))
    softmax = torch.softmax(scores / 0.05, dim=1)
    torch.testing.assert_close(swav_codes(scores, 0, 0.05), softmax, atol=1e-6, rtol=1e-5)


class TinySwAVWithPrototypes(TinySimSiam):
    """SwAV with lightly's names: prototypes over the normalised projection, SwaVLoss."""

    def __init__(self) -> None:
        super().__init__()
        self.prototypes = SwaVPrototypes(8, n_prototypes=6)
        self.criterion = SwaVLoss(sinkhorn_iterations=3, sinkhorn_epsilon=0.05)

    def training_step(self, batch: list[torch.Tensor], index: int) -> torch.Tensor:
        self.prototypes.normalize()
        views = [batch[0] + 0.1 * torch.randn_like(batch[0]) for _ in range(2)]
        scores = [
            self.prototypes(nn.functional.normalize(self.projection_head(self.backbone(v))))
            for v in views
        ]
        return self.criterion(scores, [])


def test_a_swav_module_sends_the_codes_its_loss_balances(server: FakeCollapseLab) -> None:
    """The probe's codes as the loss computes them (Sinkhorn over each probe batch), sent
    as ``codes=``."""
    server.accepts = list(wire.ARRAY_NAMES)
    probe = torch.randn(64, 16)
    model = fit(TinySwAVWithPrototypes, CollapseLabCallback(server.url, probe), epochs=1)
    arrays = server.only_run().epochs[1]["arrays"]
    assert arrays["codes"].shape == (64, 6) and "teacher" not in arrays
    np.testing.assert_allclose(arrays["codes"].sum(axis=1), 1, atol=1e-5)
    with torch.no_grad():  # the probe is one batch here
        z = model.projection_head(model.backbone(probe))
        scores = model.prototypes(nn.functional.normalize(z))
        expected = sinkhorn(scores, 3, 0.05)
    np.testing.assert_allclose(arrays["codes"], expected.numpy(), atol=1e-4)


def test_a_byol_module_sends_its_target_predictor_and_distance(
    server: FakeCollapseLab,
) -> None:
    server.accepts = list(wire.ARRAY_NAMES)
    probe = torch.randn(64, 16)
    model = fit(TinyBYOL, CollapseLabCallback(server.url, probe), epochs=2)
    run = server.only_run()
    assert run.epochs[0]["scalars"]["target_param_distance"] == 0.0  # a copy at the start
    scalars, arrays = run.epochs[2]["scalars"], run.epochs[2]["arrays"]
    assert scalars["ema_momentum"] == pytest.approx(0.9)
    assert scalars["lr"] == pytest.approx(0.05)
    with torch.no_grad():
        online = [*model.backbone.parameters(), *model.projection_head.parameters()]
        target = [
            *model.backbone_momentum.parameters(),
            *model.projection_head_momentum.parameters(),
        ]
        difference = sum(float((t - o).pow(2).sum()) for t, o in zip(target, online, strict=True))
        norm = sum(float(o.pow(2).sum()) for o in online)
        z = model.projection_head(model.backbone(probe))
        expected = {
            "p": model.prediction_head(z),
            "target": model.projection_head_momentum(model.backbone_momentum(probe)),
        }
    assert scalars["target_param_distance"] == pytest.approx((difference / norm) ** 0.5, rel=1e-4)
    for name, value in expected.items():
        torch.testing.assert_close(
            torch.from_numpy(arrays[name]), value, atol=2e-3 * value.abs().max(), rtol=0
        )
    torch.testing.assert_close(
        torch.from_numpy(arrays["predictor_weight"]), model.prediction_head.weight.detach()
    )


def test_an_internals_callable_replaces_the_default(server: FakeCollapseLab) -> None:
    server.accepts = list(wire.ARRAY_NAMES)
    seen: list[tuple[int, int]] = []

    def internals(module: nn.Module, x: torch.Tensor, z: torch.Tensor) -> dict[str, torch.Tensor]:
        seen.append((x.shape[1], z.shape[1]))
        return {"p": 2 * z}

    callback = CollapseLabCallback(server.url, torch.randn(64, 16), internals=internals)
    fit(TinySimSiam, callback, epochs=1)
    arrays = server.only_run().epochs[1]["arrays"]
    assert set(seen) == {(16, 8)}
    z = torch.from_numpy(arrays["z"])  # TinySimSiam's prediction_head would give another p
    torch.testing.assert_close(
        torch.from_numpy(arrays["p"]), 2 * z, atol=4e-3 * z.abs().max(), rtol=0
    )


class SimSiamLoggingReservedNames(TinySimSiam):
    """Logs scalars named as log_epoch's own keywords: its loss as ``loss``, and ``target``
    and ``schedules``."""

    def training_step(self, batch: list[torch.Tensor], index: int) -> torch.Tensor:
        loss = super().training_step(batch, index)
        for name, value in (("loss", loss), ("target", 1.0), ("schedules", 2.0)):
            self.log(name, value, on_epoch=True, on_step=False)
        return loss


def test_a_metric_named_as_a_log_epoch_keyword_is_not_forwarded(
    server: FakeCollapseLab,
) -> None:
    # forwarded as **scalars it would meet log_epoch's own schedules= (a TypeError that ends
    # the fit) or be read as the target branch's embeddings
    callback = CollapseLabCallback(server.url, torch.randn(64, 16), loss_key="loss")
    fit(SimSiamLoggingReservedNames, callback, epochs=1)
    run = server.only_run()
    assert sorted(run.epochs) == [0, 1]
    epoch = run.epochs[1]
    assert isinstance(epoch["loss"], float)  # loss_key "loss" is log_epoch's own loss=
    assert "target" not in epoch["scalars"] and "schedules" not in epoch["scalars"]
    assert "target" not in epoch["arrays"]
    assert run.finish is not None and run.finish["status"] == "succeeded"


def _trainer(epochs: int, **options: object) -> lightning.pytorch.Trainer:
    defaults: dict[str, object] = {
        "accelerator": "cpu",
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    return lightning.pytorch.Trainer(max_epochs=epochs, **{**defaults, **options})


def _data() -> DataLoader:
    return DataLoader(TensorDataset(torch.randn(128, 16)), batch_size=32)


def test_a_fit_resumed_from_a_checkpoint_by_the_same_callback_continues_the_run(
    server: FakeCollapseLab, tmp_path: object
) -> None:
    """In the same process too: the checkpoint's epoch equals the last one logged, which is
    no fit starting over."""
    callback = CollapseLabCallback(server.url, torch.randn(64, 16))
    checkpoints = lightning.pytorch.callbacks.ModelCheckpoint(dirpath=str(tmp_path), save_last=True)
    torch.manual_seed(0)
    model = TinySimSiam()
    options = {"enable_checkpointing": True, "callbacks": [callback, checkpoints]}
    _trainer(3, **options).fit(model, _data())
    _trainer(5, **options).fit(model, _data(), ckpt_path=f"{tmp_path}/last.ckpt")
    run = server.only_run()
    assert sorted(run.epochs) == [0, 1, 2, 3, 4, 5]
    assert run.finish is not None and run.finish["status"] == "succeeded"


def test_fast_dev_run_registers_no_run(server: FakeCollapseLab) -> None:
    callback = CollapseLabCallback(server.url, torch.randn(64, 16))
    _trainer(3, fast_dev_run=True, callbacks=[callback]).fit(TinySimSiam(), _data())
    assert server.runs == {}


class Validated(TinySimSiam):
    def validation_step(self, batch: list[torch.Tensor], index: int) -> None:
        self.log("val_std", self.projection_head(self.backbone(batch[0])).std())


def test_a_validation_metric_is_sent_only_with_the_epoch_it_was_measured_in(
    server: FakeCollapseLab,
) -> None:
    callback = CollapseLabCallback(server.url, torch.randn(64, 16))
    trainer = _trainer(4, check_val_every_n_epoch=2, callbacks=[callback])
    trainer.fit(Validated(), _data(), _data())
    epochs = server.only_run().epochs
    assert [e for e in sorted(epochs) if "val_std" in epochs[e]["scalars"]] == [2, 4]


def test_a_stop_held_back_by_min_epochs_is_recorded_where_training_stopped(
    server: FakeCollapseLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fake server gives no verdict: the monitor's streak stands in for a collapse
    already held. should_stop is set after epoch 1, min_epochs keeps training to 3."""
    monkeypatch.setattr(Monitor, "judgement", property(lambda _: (None, 5)))
    callback = CollapseLabCallback(server.url, torch.randn(64, 16), stop_on_collapse=2)
    _trainer(10, min_epochs=3, callbacks=[callback]).fit(TinySimSiam(), _data())
    run = server.only_run()
    assert sorted(run.epochs) == [0, 1, 2, 3]
    assert run.finish is not None and run.finish["stopped_at_epoch"] == 3
    assert "read after epoch 1); stop_on_collapse=2" in run.finish["stop_reason"]
