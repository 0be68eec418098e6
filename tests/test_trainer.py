"""The training loop: epoch-0 baseline, checkpoints, exact resume, cancel."""

from pathlib import Path

import pytest
import torch

from contract import resolve_config
from workers.engine.checkpoint import load_checkpoint
from workers.engine.errors import RunCancelled, TrainingError
from workers.engine.trainer import TrainHooks, train

TINY = {
    "method": "simsiam",
    "dataset": "digits",
    "train_size": 256,
    "probe_size": 128,
    "batch_size": 64,
    "epochs": 3,
    "width": 8,
    "proj_hidden_dim": 64,
    "proj_dim": 32,
    "pred_hidden_dim": 16,
}


def test_records_baseline_then_every_epoch(tmp_path: Path) -> None:
    seen: list[int] = []
    progress: list[tuple[int, int, int]] = []
    hooks = TrainHooks(
        on_epoch=lambda r: seen.append(r.epoch),
        on_progress=lambda e, s, n, _ips: progress.append((e, s, n)),
    )
    result = train(resolve_config(TINY), data_root=tmp_path, run_dir=tmp_path / "run", hooks=hooks)
    assert seen == [0, 1, 2, 3]
    assert [r.epoch for r in result.history] == [0, 1, 2, 3]
    assert result.history[0].loss is None
    assert all(r.loss is not None for r in result.history[1:])
    steps = 256 // 64
    assert progress[-1] == (3, steps, steps)
    for record in result.history:
        for part in ("backbone", "projector"):
            assert getattr(record, part).effective_rank >= 1.0
        assert record.verdict.kind in {"healthy", "dimensional_collapse", "complete_collapse"}
    assert result.verdict.kind in {"healthy", "dimensional_collapse", "complete_collapse"}
    checkpoint = load_checkpoint(tmp_path / "run")
    assert checkpoint is not None and checkpoint.epoch == 3


@pytest.mark.slow  # trains twice, more than a few seconds
def test_resume_gives_the_same_next_epoch(tmp_path: Path) -> None:
    config = resolve_config(TINY)
    full = train(config, data_root=tmp_path, run_dir=tmp_path / "full")

    epochs_done: list[int] = []
    stop_after_epoch_2 = TrainHooks(
        on_epoch=lambda r: epochs_done.append(r.epoch),
        should_stop=lambda: bool(epochs_done) and epochs_done[-1] >= 2,
    )
    with pytest.raises(RunCancelled):
        train(config, data_root=tmp_path, run_dir=tmp_path / "split", hooks=stop_after_epoch_2)
    assert load_checkpoint(tmp_path / "split").epoch == 2

    resumed_epochs: list[int] = []
    resumed = train(
        config,
        data_root=tmp_path,
        run_dir=tmp_path / "split",
        hooks=TrainHooks(on_epoch=lambda r: resumed_epochs.append(r.epoch)),
    )
    assert resumed_epochs == [3]  # only the missing epoch is trained and reported
    a, b = full.history[3], resumed.history[3]
    assert a.loss == pytest.approx(b.loss, rel=1e-5)
    for key in ("std_l2", "effective_rank", "alignment", "knn_top1"):
        assert getattr(a.projector, key) == pytest.approx(
            getattr(b.projector, key), rel=1e-4, abs=1e-6
        )
    full_weights = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)["model"]
    split_weights = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)["model"]
    for name, tensor in full_weights.items():
        assert torch.allclose(tensor.float(), split_weights[name].float(), atol=1e-5), name


def test_cancel_stops_within_the_epoch_and_keeps_finished_epochs(tmp_path: Path) -> None:
    calls = {"steps": 0}

    def on_progress(epoch: int, step: int, steps: int, ips: float) -> None:
        calls["steps"] += 1

    hooks = TrainHooks(on_progress=on_progress, should_stop=lambda: calls["steps"] >= 6)
    with pytest.raises(RunCancelled):
        train(resolve_config(TINY), data_root=tmp_path, run_dir=tmp_path / "run", hooks=hooks)
    assert calls["steps"] == 6  # no step ran after the flag was seen
    assert load_checkpoint(tmp_path / "run").epoch == 1


def test_new_diagnostics_are_recorded_and_lidar_only_when_due(tmp_path: Path) -> None:
    raw = {**TINY, "method": "swav", "epochs": 3, "lidar_every": 2}
    raw["options"] = {"num_prototypes": 12}
    result = train(resolve_config(raw), data_root=tmp_path)
    due = [record.epoch for record in result.history if record.projector.lidar is not None]
    assert due == [0, 2, 3]  # epoch 0, every 2nd, the last
    for record in result.history:
        measured = record.epoch in due
        assert (record.backbone.lidar is not None) == measured
        assert (record.lidar_time_s > 0) == measured
        z = record.projector
        assert z.nesum is not None and 1.0 <= z.nesum <= z.dim
        assert z.participation_ratio is not None and z.w2_uniformity is not None
        assert z.num_prototypes == 12
        assert 1 <= z.distinct_prototypes <= 12
        assert 1.0 <= z.cluster_perplexity <= 12.0 + 1e-6
        assert record.backbone.num_prototypes is None  # prototypes live in z's space
    assert isinstance(result.verdict.findings, list)
    off = train(resolve_config({**TINY, "epochs": 1, "lidar_every": 0}), data_root=tmp_path)
    assert all(record.projector.lidar is None for record in off.history)


def test_a_settled_complete_collapse_stops_the_run_early_and_says_why(tmp_path: Path) -> None:
    # SimSiam without stop-gradient at a large constant learning rate collapses in a few
    # epochs (the browser tests' COLLAPSING_RUN); it would train 15.
    config = resolve_config(
        {
            **TINY,
            "preset": "simsiam-no-stopgrad",
            "batch_size": 32,
            "image_size": 16,
            "epochs": 15,
            "lr": 1.0,
            "schedule": "constant",
            "stop_after_settled_epochs": 2,
        }
    )
    result = train(config, data_root=tmp_path, run_dir=tmp_path / "run")
    last = result.history[-1]
    assert last.epoch < 15
    assert result.verdict.kind == "complete_collapse"
    onset = result.verdict.onset_epoch
    assert onset is not None and last.epoch - onset + 1 == 2, "stops as soon as it has held"
    assert result.verdict.stopped_early is not None
    assert f"after epoch {last.epoch} of 15" in result.verdict.stopped_early
    assert "stop_after_settled_epochs = 2" in result.verdict.stopped_early
    # Resuming from the stopped run's checkpoint trains nothing more.
    again = train(config, data_root=tmp_path, run_dir=tmp_path / "run")
    assert again.history[-1].epoch == last.epoch
    assert again.verdict.stopped_early == result.verdict.stopped_early


def test_a_diverged_loss_names_the_option_set_away_from_its_default(tmp_path: Path) -> None:
    """A temperature of 1e-300 overflows NT-Xent's softmax at the first step: the message
    names it rather than only the learning rate."""
    config = resolve_config(
        {**TINY, "method": "simclr", "epochs": 1, "options": {"temperature": 1e-300}}
    )
    with pytest.raises(TrainingError) as failed:
        train(config, data_root=tmp_path, run_dir=tmp_path / "run")
    message = str(failed.value)
    assert "became NaN at epoch 1, step 1" in message or "became infinite" in message
    assert "temperature=1e-300 (default 0.5)" in message
    assert "nan" not in message


@pytest.mark.parametrize(
    ("method", "options", "expected"),
    [
        # I-JEPA: one view; the paper's crop alone, or (its default) the SimCLR recipe
        ("ijepa", {"predictor_width": 32, "augmentation": "crop"}, (1, (0.3, 1.0), False)),
        ("ijepa", {"predictor_width": 32}, (1, (0.2, 1.0), True)),
        # DINO with local crops: global crops of 0.4-1, larger than any local one
        ("dino", {"local_views": 2, "num_prototypes": 32}, (2, (0.4, 1.0), True)),
        ("simsiam", {}, (2, (0.2, 1.0), True)),
    ],
)
def test_each_method_gets_the_views_it_declares(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    options: dict[str, object],
    expected: tuple[int, tuple[float, float], bool],
) -> None:
    from workers.engine.augment import BatchAugment

    calls: list[tuple[bool, object]] = []  # (photometric, scale) of every training view
    original = BatchAugment.__call__

    def spy(self: BatchAugment, x: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        if "scale" in kwargs or "scale_fixed" in kwargs:  # training's views, not the probe's
            scale = kwargs.get("scale", args[2] if len(args) > 2 else None)
            calls.append((self.flip_probability > 0, scale))
        return original(self, x, *args, **kwargs)  # type: ignore[arg-type]

    config = {**TINY, "method": method, "epochs": 1, "train_size": 128, "probe_size": 64}
    config |= {"lidar_every": 0, "image_size": 16}
    config["options"] = options
    if method == "ijepa":
        config |= {"image_size": 32, "vit_dim": 48, "vit_depth": 1}
    monkeypatch.setattr(BatchAugment, "__call__", spy)
    train(resolve_config(config), data_root=tmp_path)
    count, scale, photometric = expected
    steps = 128 // 64
    local_views = int(options.get("local_views", 0))  # type: ignore[call-overload]
    assert sorted(calls, key=str) == sorted(
        [(photometric, scale)] * steps * count + [(True, (0.05, 0.4))] * steps * local_views,
        key=str,
    )
