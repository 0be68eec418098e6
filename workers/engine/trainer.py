"""The training loop shared by every method, with per-epoch diagnostics and checkpoints.

``train`` is all the service and the command line call: it loads the data, builds the
backbone and the method from the registry, records the epoch-0 diagnostics (before any
training, the baseline every verdict compares against), then trains epoch after epoch.
After each epoch it measures the probe set, updates the verdict, writes a checkpoint and
only then reports the epoch through ``hooks.on_epoch``: a reported epoch is never lost.
Calling ``train`` again with the same ``run_dir`` resumes after the last checkpoint and
reproduces exactly what an uninterrupted run would have done (every epoch reseeds its
random streams from the run seed and the epoch number).
"""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from contract import PLUGIN_METHODS, EmbeddingMetrics, EpochRecord, Placement, RunConfig, Verdict
from contract.methods import METHOD_SPECS
from workers.engine.augment import BatchAugment, normalize
from workers.engine.backbones import build_backbone
from workers.engine.cause import configuration_of
from workers.engine.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from workers.engine.data import load_splits
from workers.engine.devices import describe_device
from workers.engine.errors import RunCancelled, TrainingError
from workers.engine.images import DeviceImages, ImageData
from workers.engine.methods import Method, MethodUnavailableError, StepInfo, method_class
from workers.engine.metrics import NonFiniteEmbeddingError, embedding_diagnostics, lidar
from workers.engine.optim import build_optimizer, lr_at
from workers.engine.parts import has_batchnorm, recompute_batchnorm_statistics
from workers.engine.verdict import epoch_verdict, run_verdict

# Positive pairs for alignment / positive cosine: two augmented views of this many probe
# images (a fixed subset, fixed augmentations); 256 pairs put the mean cosine within about
# 0.01 and keep the cost of monitoring small.
POSITIVE_PAIRS = 256
# Images per probe pass (eval_batch_size): BatchNorm's recomputed statistics need large
# batches; a network without BatchNorm only runs faster on the CPU in small ones.
EVAL_BATCH = 512
CPU_EVAL_BATCH_WITHOUT_BATCHNORM = 64
# LiDAR (Thilak et al. 2024) on q augmented views of n probe images; the first two views are
# the positive pairs above, so it costs n (q - 2) = 768 extra forward passes on the epochs it
# runs (``lidar_every``): the paper's 1,000 x 50 on ImageNet would cost more than an epoch
# here, and with n (q - 1) = 896 within-class samples the scatter of d <= 512 stays well
# conditioned.
LIDAR_IMAGES = 128
LIDAR_VIEWS = 8
# Local views (multi-crop: SwAV, DINO, LeJEPA): crops of 5-40% of the image at half its side,
# at any augmentation strength above 0 (DINO's ``local_crops_scale``, main_dino.py).
LOCAL_CROP_SCALE = (0.05, 0.4)


def _ignore(*_: Any) -> None:
    return None


@dataclass
class TrainHooks:
    """How the caller hears about progress. Every hook is optional."""

    on_epoch: Callable[[EpochRecord], None] = _ignore
    on_progress: Callable[[int, int, int, float], None] = _ignore  # epoch, step, steps, img/s
    on_embeddings: Callable[[int, np.ndarray, np.ndarray], None] = _ignore  # epoch, z, labels
    # the probe images, uint8 (N, C, S, S) in the order of z's rows; once per call of train()
    on_probe_images: Callable[[np.ndarray], None] = _ignore
    should_stop: Callable[[], bool] = lambda: False


@dataclass
class RunResult:
    history: list[EpochRecord]
    verdict: Verdict
    device: str = "cpu"


def select_device(preference: str) -> torch.device:
    if preference == "cuda" and not torch.cuda.is_available():
        raise TrainingError("device 'cuda' was asked for but CUDA is not available here")
    if preference == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")


def epoch_seed(seed: int, epoch: int) -> int:
    """A distinct, reproducible seed for every (run seed, epoch)."""
    return (seed * 1_000_003 + epoch * 7919) % (2**63 - 1)


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


class _Probe:
    """The fixed images the diagnostics are measured on, prepared once: the held-out probe,
    two augmented views of its first images, and the kNN bank (a fixed subset of the clean
    training images)."""

    def __init__(
        self,
        probe: ImageData,
        bank: ImageData,
        augment: BatchAugment,
        device: torch.device,
        seed: int,
    ) -> None:
        self.labels = probe.labels
        self.num_classes = probe.num_classes
        self.bank_labels = bank.labels
        # probe and bank in one tensor: one pass embeds both (see _diagnose)
        self.probe_and_bank = _channels_last(
            normalize(torch.cat([probe.images, bank.images]).to(device))
        )
        n_pairs = min(POSITIVE_PAIRS, len(probe.images))
        generator = torch.Generator(device=device).manual_seed(epoch_seed(seed, -1))
        pair_images = probe.images[:n_pairs].to(device)
        self.view1 = _channels_last(augment(pair_images, generator))
        self.view2 = _channels_last(augment(pair_images, generator))
        # views 3..q of the first LIDAR_IMAGES pair images, (q - 2) x n stacked; views 1-2
        # are view1/view2. Drawn after the pairs, so the pairs do not depend on LiDAR.
        self.lidar_images = min(LIDAR_IMAGES, n_pairs)
        lidar_images = pair_images[: self.lidar_images]
        self.lidar_extra_views = _channels_last(
            torch.cat([augment(lidar_images, generator) for _ in range(LIDAR_VIEWS - 2)])
        )


def eval_batch_size(method: Method) -> int:
    """Images per probe pass. With BatchNorm, 512: the pass that recomputes the statistics
    normalises each batch by its own, and 512 images keep them within a few percent of the
    whole set's. Without BatchNorm (the ViT) the batch changes no output, only the speed: on
    the CPU a ViT's activations for 512 images overflow the caches and batches of 64 run
    about 1.5x faster (README, "Mechanism panels: why it collapses", its cost paragraph); on
    a GPU large batches fill the device."""
    device = next(method.parameters()).device
    if device.type != "cpu" or has_batchnorm(method):
        return EVAL_BATCH
    return CPU_EVAL_BATCH_WITHOUT_BATCHNORM


@torch.no_grad()
def _embed(method: Method, images: torch.Tensor, autocast: Any) -> tuple[torch.Tensor, ...]:
    hs, zs = [], []
    batch = eval_batch_size(method)
    for start in range(0, len(images), batch):
        with autocast():
            h, z = method.embed(images[start : start + batch])
        hs.append(h.float())
        zs.append(z.float())
    return torch.cat(hs), torch.cat(zs)


def _embed_recomputing_batchnorm(
    method: Method, images: torch.Tensor, autocast: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """images (N, C, H, W) -> (h, z) float, from one training-mode pass that also recomputes
    exact BatchNorm statistics (for later eval-mode passes). Each batch (512 images with
    BatchNorm: eval_batch_size) is normalised by its own statistics, within a few percent of
    the whole set's: a second, eval-mode pass over the same images would cost as much again."""
    with autocast():
        outputs = recompute_batchnorm_statistics(
            method, method.embed, images, batch_size=eval_batch_size(method)
        )
    return torch.cat([h.float() for h, _ in outputs]), torch.cat([z.float() for _, z in outputs])


def _encode_training_set(method: Method, images: DeviceImages, autocast: Any) -> torch.Tensor:
    """The projector's z (N, d) of every training image, in order, recomputing BatchNorm
    statistics as :func:`_embed_recomputing_batchnorm` does; the images are read and
    normalised batch by batch, so the set need not fit in memory as floats."""

    def embed_rows(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return method.embed(normalize(images.read(rows)))

    with autocast():
        outputs = recompute_batchnorm_statistics(
            method, embed_rows, torch.arange(len(images)), batch_size=eval_batch_size(method)
        )
    return torch.cat([z.float() for _, z in outputs])


def _lidar_views(
    first: torch.Tensor, second: torch.Tensor, extra: torch.Tensor, n: int
) -> torch.Tensor:
    """(q, n, d) LiDAR views: the first n rows of the two pair views, then the extra views."""
    return torch.cat([first[None, :n], second[None, :n], extra.reshape(-1, n, extra.shape[1])])


def _diagnose(
    method: Method, probe: _Probe, autocast: Any, with_lidar: bool = False
) -> tuple[EmbeddingMetrics, EmbeddingMetrics, torch.Tensor, float, dict[str, float], float]:
    """Backbone and projector diagnostics on the probe; also returns the probe's z, the
    seconds LiDAR took (its extra forward passes and its eigen-decompositions; 0 without) and
    the method's mechanism signals on the probe's positive pairs (:meth:`Method.probe_logs`)
    with the schedules that move the collapse boundary (:meth:`Method.schedules`, the weight
    decay), all for the record's ``logs``, and the seconds the mechanism signals took."""
    was_training = method.training
    h_all, z_all = _embed_recomputing_batchnorm(method, probe.probe_and_bank, autocast)
    n_probe = len(probe.labels)
    h, bank_h = h_all[:n_probe], h_all[n_probe:]
    z, bank_z = z_all[:n_probe], z_all[n_probe:]
    method.eval()
    h1, z1 = _embed(method, probe.view1, autocast)
    h2, z2 = _embed(method, probe.view2, autocast)
    mechanisms_started = time.perf_counter()
    with autocast():
        signals = method.probe_logs([probe.view1, probe.view2])
    mechanisms_time = time.perf_counter() - mechanisms_started
    signals |= {**method.schedules(), "weight_decay": method.config.weight_decay}
    assignments = method.cluster_assignments(z)
    try:
        backbone = embedding_diagnostics(
            h,
            h1,
            h2,
            bank=bank_h,
            bank_labels=probe.bank_labels,
            labels=probe.labels,
            num_classes=probe.num_classes,
        )
        projector = embedding_diagnostics(
            z,
            z1,
            z2,
            bank=bank_z,
            bank_labels=probe.bank_labels,
            assignments=assignments,
            num_clusters=method.num_clusters(),
            labels=probe.labels,
            num_classes=probe.num_classes,
            cluster_probabilities=method.cluster_probabilities(z),
            prototypes=method.prototype_vectors(),
        )
        lidar_started = time.perf_counter()
        if with_lidar:
            h_extra, z_extra = _embed(method, probe.lidar_extra_views, autocast)
            n = probe.lidar_images
            backbone.lidar = lidar(_lidar_views(h1, h2, h_extra, n))
            projector.lidar = lidar(_lidar_views(z1, z2, z_extra, n))
        lidar_time = time.perf_counter() - lidar_started if with_lidar else 0.0
    except NonFiniteEmbeddingError as exc:
        hint = divergence_hint(method.config)
        raise TrainingError(f"training diverged: {exc}; {hint}") from exc
    method.train(was_training)
    return backbone, projector, z, lidar_time, signals, mechanisms_time


def divergence_hint(config: RunConfig) -> str:
    """What to try after a non-finite loss: a lower learning rate, and first the method's
    options set away from their defaults (a temperature of 1e-300 overflows the softmax)."""
    hint = f"try a learning rate lower than {config.lr:g}"
    spec = METHOD_SPECS.get(config.method)
    if spec is None:
        return hint
    defaults = spec.options().model_dump()
    changed = [
        f"{name}={value!r} (default {defaults[name]!r})"
        for name, value in config.options.items()
        if name in defaults and value != defaults[name]
    ]
    if not changed:
        return hint
    return f"check the options set away from their defaults: {', '.join(changed)}; or {hint}"


def lidar_due(config: RunConfig, epoch: int) -> bool:
    """Whether LiDAR is measured at ``epoch``: epoch 0, every ``lidar_every``, the last."""
    every = config.lidar_every
    return every > 0 and (epoch % every == 0 or epoch == config.epochs)


def settled_collapse(history: list[EpochRecord], config: RunConfig) -> str | None:
    """Why training may stop now (one sentence), or None: the last epoch's verdict has been
    complete collapse for ``config.stop_after_settled_epochs`` epochs. Checked before each
    epoch, so a resumed run whose checkpoint already satisfies it stops at once."""
    needed = config.stop_after_settled_epochs
    if needed is None or not history or history[-1].epoch >= config.epochs:
        return None
    verdict = history[-1].verdict
    if verdict is None or verdict.kind != "complete_collapse" or verdict.onset_epoch is None:
        return None
    epoch, onset = history[-1].epoch, verdict.onset_epoch
    held = epoch - onset + 1
    if held < needed:
        return None
    return (
        f"stopped early after epoch {epoch} of {config.epochs}: complete collapse had held "
        f"for {held} epochs since epoch {onset} (stop_after_settled_epochs = {needed})"
    )


def _bank_subset(data: ImageData, size: int, seed: int) -> ImageData:
    """A fixed random subset of the training images: the kNN monitor's labelled bank."""
    if len(data) <= size:
        return data
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    return data.subset(order[:size])


def train(
    config: RunConfig,
    *,
    data_root: Path,
    run_dir: Path | None = None,
    hooks: TrainHooks | None = None,
) -> RunResult:
    """Train ``config`` to the end (or until cancelled) and return the history and verdict.

    With a ``run_dir`` a checkpoint is written after every epoch and an existing one is
    resumed. Raises :class:`RunCancelled` when ``hooks.should_stop()`` turns true and
    :class:`TrainingError` when training diverges.
    """
    hooks = hooks or TrainHooks()
    device = select_device(config.device)
    torch.manual_seed(config.seed)
    train_data, probe_data = load_splits(config, Path(data_root))
    channels = train_data.channels

    backbone, rep_dim = build_backbone(
        config.backbone,
        channels,
        config.image_size,
        config.width,
        patch_size=config.patch_size,
        vit_dim=config.vit_dim,
        vit_depth=config.vit_depth,
        vit_heads=config.vit_heads,
    )
    # channels_last speeds convolutions up on CUDA and on the CPU alike.
    try:
        method_type = method_class(config.method)
    except MethodUnavailableError as exc:
        raise TrainingError(str(exc)) from exc
    method = method_type(backbone, rep_dim, config).to(device)
    plugin = PLUGIN_METHODS.get(config.method)  # a NaN names the plugin that computed it
    plugin_note = f" (plugin {plugin})" if plugin else ""
    method = method.to(memory_format=torch.channels_last)

    def autocast() -> Any:
        if device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    augment = BatchAugment(config.image_size, channels, config.augment_strength)
    plan = method.views()
    augment_global = (
        augment
        if plan.photometric
        else BatchAugment(config.image_size, channels, config.augment_strength, photometric=False)
    )
    optimizer = build_optimizer(method, config, method.excluded_from_weight_decay())
    batch_size = min(config.batch_size, len(train_data))
    steps_per_epoch = len(train_data) // batch_size
    total_steps = steps_per_epoch * config.epochs
    bank = _bank_subset(train_data, config.probe_size, config.seed)
    probe = _Probe(probe_data, bank, augment, device, config.seed)
    hooks.on_probe_images(probe_data.images.cpu().numpy())
    train_images = DeviceImages(train_data.store, device)

    history: list[EpochRecord] = []
    start_epoch = 1
    checkpoint = load_checkpoint(run_dir) if run_dir is not None else None
    if checkpoint is not None:
        method.load_state_dict(checkpoint.model)
        optimizer.load_state_dict(checkpoint.optimizer)
        history = [EpochRecord.model_validate(record) for record in checkpoint.history]
        start_epoch = checkpoint.epoch + 1

    device_info = describe_device()
    placement = Placement(
        host=socket.gethostname(),
        device=device_info["name"] if device.type == "cuda" else "cpu",
        device_memory_gib=device_info["memory_gib"] if device.type == "cuda" else None,
        torch=device_info["torch"],
        cuda=device_info["cuda"],
    )
    # read by the cause diagnosis only for the guards no probe can see (stop-gradient)
    configuration = configuration_of(config.model_dump())

    def finish_epoch(record: EpochRecord, z: torch.Tensor) -> None:
        peak = None
        if device.type == "cuda":
            peak = torch.cuda.max_memory_allocated() / 2**20
            torch.cuda.reset_peak_memory_stats()
        record.placement = placement.model_copy(update={"peak_memory_mib": peak})
        history.append(record)
        record.verdict = epoch_verdict(history, configuration=configuration)
        if run_dir is not None:
            save_checkpoint(
                run_dir,
                Checkpoint(
                    epoch=record.epoch,
                    model=method.state_dict(),
                    optimizer=optimizer.state_dict(),
                    history=[r.model_dump() for r in history],
                ),
            )
        hooks.on_epoch(record)
        hooks.on_embeddings(record.epoch, z.cpu().numpy(), probe.labels.cpu().numpy())

    if not history:
        backbone_m, projector_m, z, lidar_time, signals, mechanisms_time = _diagnose(
            method, probe, autocast, lidar_due(config, 0)
        )
        baseline = EpochRecord(
            epoch=0,
            lr=lr_at(config, 0, steps_per_epoch),
            ema_momentum=method.monitor().get("ema_momentum"),
            lidar_time_s=lidar_time,
            mechanisms_time_s=mechanisms_time,
            logs=signals,
            backbone=backbone_m,
            projector=projector_m,
        )
        finish_epoch(baseline, z)

    stopped_early: str | None = None
    for epoch in range(start_epoch, config.epochs + 1):
        stopped_early = settled_collapse(history, config)
        if stopped_early is not None:
            break
        torch.manual_seed(epoch_seed(config.seed, epoch))
        generator = torch.Generator(device=device).manual_seed(epoch_seed(config.seed, epoch))

        def encode_train_set() -> torch.Tensor:
            return _encode_training_set(method, train_images, autocast)

        method.train()
        method.on_epoch_start(epoch, encode_train_set)
        weights = method.sampling_weights()
        cpu_gen = torch.Generator().manual_seed(epoch_seed(config.seed, epoch))
        if weights is None:
            order = torch.randperm(len(train_images), generator=cpu_gen)
        else:
            order = torch.multinomial(weights.cpu(), len(train_images), True, generator=cpu_gen)
        order = order.to(device)

        started = time.perf_counter()
        loss_sum, logs_sum = 0.0, dict[str, float]()
        lr = 0.0
        batches = train_images.batches(order, batch_size, steps_per_epoch)
        for step_in_epoch, (indices, images) in enumerate(batches):
            if hooks.should_stop():
                raise RunCancelled(f"cancelled during epoch {epoch}")
            global_step = (epoch - 1) * steps_per_epoch + step_in_epoch
            lr = lr_at(config, global_step, steps_per_epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr
            views = [
                augment_global(images, generator, scale=plan.global_scale)
                for _ in range(plan.count)
            ]
            views += [
                augment(
                    images, generator, config.image_size // 2, LOCAL_CROP_SCALE, scale_fixed=True
                )
                for _ in range(method.n_local_views())
            ]
            views = [_channels_last(v) for v in views]
            info = StepInfo(epoch=epoch, step=global_step, total_steps=total_steps)
            with autocast():
                out = method.training_loss(views, indices, info)
            loss_value = float(out.loss.detach())
            if not math.isfinite(loss_value):
                became = "NaN" if math.isnan(loss_value) else "infinite"
                raise TrainingError(
                    f"the loss of method {config.method!r}{plugin_note} became {became} at "
                    f"epoch {epoch}, step {step_in_epoch + 1}; {divergence_hint(config)}"
                )
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            method.after_step(info)
            loss_sum += loss_value
            for key, value in out.logs.items():
                logs_sum[key] = logs_sum.get(key, 0.0) + float(value)
            elapsed = time.perf_counter() - started
            hooks.on_progress(
                epoch,
                step_in_epoch + 1,
                steps_per_epoch,
                (step_in_epoch + 1) * batch_size / elapsed,
            )
        train_time = time.perf_counter() - started

        backbone_m, projector_m, z, lidar_time, signals, mechanisms_time = _diagnose(
            method, probe, autocast, lidar_due(config, epoch)
        )
        diagnostics_time = time.perf_counter() - started - train_time
        record = EpochRecord(
            epoch=epoch,
            loss=loss_sum / steps_per_epoch,
            lr=lr,
            ema_momentum=method.monitor().get("ema_momentum"),
            epoch_time_s=time.perf_counter() - started,
            train_time_s=train_time,
            diagnostics_time_s=diagnostics_time,
            lidar_time_s=lidar_time,
            mechanisms_time_s=mechanisms_time,
            images_per_s=steps_per_epoch * batch_size / train_time,
            logs={**{k: v / steps_per_epoch for k, v in logs_sum.items()}, **signals},
            backbone=backbone_m,
            projector=projector_m,
        )
        finish_epoch(record, z)

    verdict = run_verdict(history, configuration=configuration)
    verdict.stopped_early = stopped_early
    return RunResult(
        history=history,
        verdict=verdict,
        device=device.type,
    )
