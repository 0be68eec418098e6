"""Training throughput: this engine vs lightly's documented example recipes, in the same run.

Setting (README, Benchmarks): SimSiam, ``small_cnn`` backbone, ``digits`` at 32 px, batch 256, CPU.

(a) Recipe: lightly's SimSiam example (docs "Examples > SimSiam"), reimplemented here without
    the lightly package: PIL images, a per-image torchvision pipeline (RandomResizedCrop(32,
    scale=(0.2, 1.0)), RandomHorizontalFlip, ColorJitter(0.4, 0.4, 0.4, 0.1) with p = 0.8,
    RandomGrayscale(p = 0.2), ToTensor, Normalize(ImageNet)), two views per image, a
    ``torch.utils.data.DataLoader`` (shuffle, drop_last, ``--num-workers`` worker processes,
    2 by default = the cores of the reference machine; persistent workers so that worker
    start-up is not charged to the recipe), SimSiam projection head (rep_dim -> 512 -> 512 ->
    128, BN on the output) and prediction head (128 -> 64 -> 128), negative cosine loss with
    stop-gradient, SGD(lr 0.06, momentum 0.9, weight decay 5e-4). lightly's SimSiamTransform
    also adds a PIL gaussian blur (p = 0.5); it is left out on both sides (the engine does not
    blur at 32 px), which only makes the recipe faster.
(b) Engine: the digits split as uint8 tensors, :class:`BatchAugment` on whole batches,
    ``METHODS["simsiam"]`` around the same ``small_cnn``, channels_last, same optimiser.

``--method dino`` / ``lejepa``: (a) lightly's own example recipe for the method (lightly's
``examples/pytorch/dino.py`` and ``lejepa.py``) from the installed ``lightly`` package: its
model (DINO: student backbone + ``DINOProjectionHead``, a teacher without gradients moved by
``update_momentum`` on a ``cosine_schedule``, ``cancel_last_layer_gradients``; LeJEPA: backbone
+ ``LeJEPAProjectionHead``), its loss (``DINOLoss``, ``LeJEPALoss``), its step (each view
through the model on its own) and its pipeline (``DINOTransform`` per PIL image in a
DataLoader: 2 global 32 px + the preset's local 16 px views); (b) the engine's
``METHODS[name]`` fed by BatchAugment. Like for like: the same backbone module and initial
weights (the preset's ``small_cnn``, or ``--backbone vit_tiny``), the run's head sizes (hidden,
bottleneck / output, K prototypes), the preset's options (temperatures, momenta, SIGReg weight
and slices), views, batch and optimiser (the engine's ``build_optimizer`` on both sides).

``--method ijepa``: the same engine model (``vit_tiny``) on both sides, fed by (a) lightly's
I-JEPA example pipeline (``IJEPATransform`` + ``IJEPAMaskCollator``, the paper's mask scales,
masks drawn in the workers) or (b) the engine's BatchAugment, masks drawn in the step. Only the
data pipeline is compared: lightly's I-JEPA modules (``IJEPABackbone``, ``IJEPAPredictor``) are
built from a torchvision ViT, so its recipe cannot run on the engine's ``vit_tiny``.

Images per second count source images (I-JEPA: one view each; LeJEPA and DINO: the 2 global
+ local views of each).

Each side trains ``--warmup`` untimed then ``--steps`` timed optimiser steps per round, in
the order recipe, engine, engine, recipe (to share out the drift of a busy machine; the recipe's
workers are shut down between its rounds so they never run during the engine's timing). The
script prints image pairs per second for both and their ratio (target: engine >= 1.5x), then
the CPU work per step of each side measured on one thread in this process (a load-independent
figure: on a shared machine the wall-clock ratio moves with what else runs).
"""

from __future__ import annotations

import argparse
import copy
import itertools
import os
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset, default_collate
from torchvision import transforms

from contract import RunConfig, resolve_config
from contract.methods.dino import DINOOptions
from contract.methods.lejepa import LeJEPAOptions
from workers.engine.augment import BatchAugment
from workers.engine.backbones import build_backbone
from workers.engine.data import load_splits
from workers.engine.methods import METHODS, Method, StepInfo
from workers.engine.methods.ijepa import IJEPA
from workers.engine.optim import build_optimizer

IMAGENET_NORMALIZE = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


# -- (a) the recipe -----------------------------------------------------------------------------


class TwoViewDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """PIL images; an item is two independently transformed views (lightly's MultiViewTransform)."""

    def __init__(self, images: torch.Tensor, transform: transforms.Compose) -> None:
        self.images = [Image.fromarray(img.permute(1, 2, 0).numpy()) for img in images]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[index]
        return self.transform(image), self.transform(image)


def recipe_transform(input_size: int) -> transforms.Compose:
    return transforms.Compose(
        [
            transforms.RandomResizedCrop(input_size, scale=(0.2, 1.0)),
            transforms.RandomHorizontalFlip(p=0.5),
            transforms.RandomApply([transforms.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            transforms.RandomGrayscale(p=0.2),
            transforms.ToTensor(),
            transforms.Normalize(**IMAGENET_NORMALIZE),
        ]
    )


class RecipeSimSiam(nn.Module):
    """lightly's SimSiam example model: backbone + SimSiamProjectionHead + SimSiamPredictionHead."""

    def __init__(self, backbone: nn.Module, rep_dim: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection_head = nn.Sequential(
            nn.Linear(rep_dim, 512, bias=False),
            nn.BatchNorm1d(512),
            nn.ReLU(),
            nn.Linear(512, 512, bias=False),
            nn.BatchNorm1d(512),
            nn.ReLU(),
            nn.Linear(512, 128, bias=False),
            nn.BatchNorm1d(128, affine=False),
        )
        self.prediction_head = nn.Sequential(
            nn.Linear(128, 64, bias=False), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 128)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, C, H, W) -> (z (B, 128) detached, p (B, 128))."""
        z = self.projection_head(self.backbone(x))
        return z.detach(), self.prediction_head(z)


def negative_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Chen & He 2021, Eq. 1: -mean cos(p, z); z already detached (stop-gradient)."""
    return -F.cosine_similarity(p, z, dim=1).mean()


def recipe_loader(
    dataset: Dataset[Any], args: argparse.Namespace, collate: Callable[..., Any] | None = None
) -> DataLoader[Any]:
    """A recipe's DataLoader: shuffled, full batches, ``args.num_workers`` persistent workers."""
    return DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=args.num_workers,
        persistent_workers=args.num_workers > 0,
        collate_fn=collate,
    )


def recipe_batches(loader: DataLoader[Any]) -> Generator[Any, None, None]:
    while True:
        yield from loader


def recipe_step(
    model: RecipeSimSiam, optimizer: torch.optim.Optimizer, batch: Sequence[torch.Tensor]
) -> float:
    x0, x1 = batch
    z0, p0 = model(x0)
    z1, p1 = model(x1)
    loss = 0.5 * (negative_cosine(p0, z1) + negative_cosine(p1, z0))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()  # type: ignore[no-untyped-call]
    optimizer.step()
    return float(loss.detach())


# -- (b) the engine -----------------------------------------------------------------------------


class EngineLoop:
    """The engine's training step: uint8 batch -> BatchAugment x 2 -> SimSiam -> SGD."""

    def __init__(self, config: RunConfig, images: torch.Tensor, batch_size: int) -> None:
        backbone, rep_dim = build_backbone(
            config.backbone, images.shape[1], config.image_size, config.width
        )
        self.method = METHODS["simsiam"](backbone, rep_dim, config).to(
            memory_format=torch.channels_last
        )
        self.optimizer = torch.optim.SGD(
            self.method.parameters(), lr=0.06, momentum=0.9, weight_decay=5e-4
        )
        self.augment = BatchAugment(config.image_size, images.shape[1], config.augment_strength)
        self.images = images
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(config.seed)
        self.order = torch.empty(0, dtype=torch.int64)
        self.step_index = 0

    def next_indices(self) -> torch.Tensor:
        if len(self.order) < self.batch_size:  # new epoch, drop_last
            self.order = torch.randperm(len(self.images), generator=self.generator)
        indices, self.order = self.order[: self.batch_size], self.order[self.batch_size :]
        return indices

    def step(self) -> float:
        indices = self.next_indices()
        batch = self.images[indices]
        views = [
            self.augment(batch, self.generator).contiguous(memory_format=torch.channels_last)
            for _ in range(2)
        ]
        info = StepInfo(epoch=1, step=self.step_index, total_steps=10**6)
        loss = self.method.training_loss(views, indices, info).loss
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        self.optimizer.step()
        self.step_index += 1
        return float(loss.detach())


def time_recipe(
    model: RecipeSimSiam,
    optimizer: torch.optim.Optimizer,
    dataset: TwoViewDataset,
    args: argparse.Namespace,
) -> float:
    """Seconds for ``args.steps`` recipe steps after ``args.warmup`` untimed ones (which also
    absorb the worker start-up). The workers are shut down afterwards, so they do not compete
    with the engine's timing."""
    loader = recipe_loader(dataset, args)
    batches = recipe_batches(loader)
    for _ in range(args.warmup):
        recipe_step(model, optimizer, next(batches))
    start = time.perf_counter()
    for _ in range(args.steps):
        recipe_step(model, optimizer, next(batches))
    seconds = time.perf_counter() - start
    batches.close()
    del loader
    return seconds


def time_engine(engine: EngineLoop, args: argparse.Namespace) -> float:
    """Seconds for ``args.steps`` engine steps after ``args.warmup`` untimed ones."""
    for _ in range(args.warmup):
        engine.step()
    start = time.perf_counter()
    for _ in range(args.steps):
        engine.step()
    return time.perf_counter() - start


def cpu_seconds_per_step(train_step: Callable[[], object], steps: int) -> float:
    """CPU seconds of one ``train_step()`` in this process, after one untimed step. Run on
    one thread with the batch made in the step (for a recipe, its DataLoader workers' work),
    this does not depend on how busy the machine is nor on how the scheduler shares it
    between the recipe's worker processes and others, unlike wall time."""
    train_step()
    start = time.process_time()
    for _ in range(steps):
        train_step()
    return (time.process_time() - start) / steps


def cpu_work_per_step(
    recipe_model: RecipeSimSiam,
    recipe_optimizer: torch.optim.Optimizer,
    dataset: TwoViewDataset,
    engine: EngineLoop,
    args: argparse.Namespace,
) -> tuple[float, float]:
    """CPU seconds of one training step on one thread, in this process, for (recipe, engine).
    Recipe: transforming and collating ``batch_size`` two-view items + the model step."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    order = torch.randperm(len(dataset)).tolist()
    steps = itertools.count()

    def recipe_once() -> None:
        start = (next(steps) * args.batch_size) % (len(dataset) - args.batch_size)
        items = [dataset[i] for i in order[start : start + args.batch_size]]
        recipe_step(recipe_model, recipe_optimizer, default_collate(items))

    recipe_cpu = cpu_seconds_per_step(recipe_once, args.cpu_steps)
    engine_cpu = cpu_seconds_per_step(engine.step, args.cpu_steps)
    torch.set_num_threads(threads)
    return recipe_cpu, engine_cpu


# -- DINO, LeJEPA, I-JEPA: lightly's example recipe (I-JEPA: its pipeline) vs the engine -------

# The step count the schedules run over (the engine's StepInfo.total_steps below): far beyond
# the bench's steps, so the momenta stay near their base on both sides.
TOTAL_STEPS = 10**6

# A recipe's training step: (a batch from its DataLoader, the 1-based step index) -> None.
RecipeStep = Callable[[Any, int], None]


class LightlyViewsDataset(Dataset[object]):
    """PIL images through one of lightly's transforms (a view or a list of views)."""

    def __init__(self, images: torch.Tensor, transform: Callable[[Image.Image], object]) -> None:
        self.images = [Image.fromarray(img.permute(1, 2, 0).numpy()) for img in images]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> object:
        return self.transform(self.images[index])


def lightly_loader(
    name: str, images: torch.Tensor, local_views: int, args: argparse.Namespace
) -> DataLoader[Any]:
    """lightly's example data pipeline for ``name`` over ``images`` (uint8, 32 px), with
    ``local_views`` small crops besides the two global views (multi-crop methods)."""
    from lightly.data.ijepa_collate import IJEPAMaskCollator
    from lightly.transforms.dino_transform import DINOTransform
    from lightly.transforms.ijepa_transform import IJEPATransform

    if name == "ijepa":
        dataset = LightlyViewsDataset(images, IJEPATransform(input_size=32))
        collate: Callable[..., object] = IJEPAMaskCollator(
            input_size=32,
            patch_size=4,
            pred_mask_scale=(0.15, 0.2),
            aspect_ratio=(0.75, 1.5),
            enc_mask_scale=(0.85, 1.0),
            npred=4,
        )
    else:
        transform = DINOTransform(
            global_crop_size=32,
            local_crop_size=16,
            global_crop_scale=(0.3, 1),
            local_crop_scale=(0.05, 0.3),
            gaussian_blur=(0.5, 0.5, 0.5),
            n_local_views=local_views,
        )
        dataset, collate = LightlyViewsDataset(images, transform), default_collate
    return recipe_loader(dataset, args, collate)


class LightlyDINO(nn.Module):
    """lightly's DINO example model: student backbone + ``DINOProjectionHead`` (its last
    layer's gradients cancelled for ``freeze_last_layer_epochs``), a teacher backbone (a copy)
    and head without gradients. The heads take the run's sizes: ``proj_hidden_dim``, the
    ``proj_dim`` bottleneck and K prototypes, as the engine's (workers/engine/methods/dino.py)."""

    def __init__(self, backbone: nn.Module, rep_dim: int, config: RunConfig) -> None:
        from lightly.models.modules import DINOProjectionHead
        from lightly.models.utils import deactivate_requires_grad

        super().__init__()
        opts = DINOOptions.model_validate(config.options)
        sizes = (rep_dim, config.proj_hidden_dim, config.proj_dim, opts.num_prototypes)
        self.student_backbone = backbone
        self.student_head = DINOProjectionHead(
            *sizes,
            freeze_last_layer=opts.freeze_last_layer_epochs,
            norm_last_layer=opts.norm_last_layer,
        )
        self.teacher_backbone = copy.deepcopy(backbone)
        self.teacher_head = DINOProjectionHead(*sizes, norm_last_layer=opts.norm_last_layer)
        deactivate_requires_grad(self.teacher_backbone)
        deactivate_requires_grad(self.teacher_head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) -> (B, K) the student's logits."""
        logits: torch.Tensor = self.student_head(self.student_backbone(x).flatten(start_dim=1))
        return logits

    def forward_teacher(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) -> (B, K) the teacher's logits."""
        logits: torch.Tensor = self.teacher_head(self.teacher_backbone(x).flatten(start_dim=1))
        return logits


def lightly_dino(backbone: nn.Module, rep_dim: int, config: RunConfig) -> RecipeStep:
    """lightly's DINO example step on a list of views (the 2 global first): the teacher moved
    towards the student (``update_momentum``, rate on a ``cosine_schedule`` to 1), the teacher
    on the global views and the student on every view, one view at a time, ``DINOLoss`` (the
    centre updated inside), ``cancel_last_layer_gradients``, an optimiser step. The preset's
    temperatures and momenta; the engine's optimiser."""
    from lightly.loss import DINOLoss
    from lightly.models.utils import update_momentum
    from lightly.utils.scheduler import cosine_schedule

    opts = DINOOptions.model_validate(config.options)
    model = LightlyDINO(backbone, rep_dim, config)
    criterion = DINOLoss(
        output_dim=opts.num_prototypes,
        warmup_teacher_temp=opts.warmup_teacher_temperature,
        teacher_temp=opts.teacher_temperature,
        warmup_teacher_temp_epochs=opts.warmup_teacher_temperature_epochs,
        student_temp=opts.student_temperature,
        center_momentum=opts.center_momentum,
    )
    optimizer = build_optimizer(model, config, set())

    def step(views: list[torch.Tensor], index: int) -> None:
        momentum = cosine_schedule(index, TOTAL_STEPS, opts.teacher_momentum, 1.0)
        update_momentum(model.student_backbone, model.teacher_backbone, m=momentum)
        update_momentum(model.student_head, model.teacher_head, m=momentum)
        teacher_out = [model.forward_teacher(view) for view in views[:2]]
        student_out = [model(view) for view in views]
        loss = criterion(teacher_out, student_out, epoch=0)
        loss.backward()
        model.student_head.cancel_last_layer_gradients(current_epoch=0)
        optimizer.step()
        optimizer.zero_grad()

    return step


class LightlyLeJEPA(nn.Module):
    """lightly's LeJEPA example model: backbone + ``LeJEPAProjectionHead`` (3 layers with
    BatchNorm and ReLU) at the run's sizes, as the engine's (workers/engine/methods/lejepa.py)."""

    def __init__(self, backbone: nn.Module, rep_dim: int, config: RunConfig) -> None:
        from lightly.models.modules import LeJEPAProjectionHead

        super().__init__()
        self.backbone = backbone
        self.projection_head = LeJEPAProjectionHead(
            rep_dim, config.proj_hidden_dim, config.proj_dim, num_layers=3
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) -> (B, proj_dim)."""
        proj: torch.Tensor = self.projection_head(self.backbone(x))
        return proj


def lightly_lejepa(backbone: nn.Module, rep_dim: int, config: RunConfig) -> RecipeStep:
    """lightly's LeJEPA example step on a list of views (the 2 global first): every view
    through the model one at a time, the global and the local projections stacked,
    ``LeJEPALoss`` (the preset's SIGReg weight and number of slices), an optimiser step (the
    engine's optimiser)."""
    from lightly.loss import LeJEPALoss

    opts = LeJEPAOptions.model_validate(config.options)
    model = LightlyLeJEPA(backbone, rep_dim, config)
    criterion = LeJEPALoss(lambda_param=opts.sigreg_weight, sigreg_num_vectors=opts.num_projections)
    optimizer = build_optimizer(model, config, set())

    def step(views: list[torch.Tensor], index: int) -> None:
        global_proj = torch.stack([model(view) for view in views[:2]])
        local_proj = torch.stack([model(view) for view in views[2:]])
        loss = criterion(local_proj=local_proj, global_proj=global_proj)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


LIGHTLY_RECIPES: dict[str, Callable[[nn.Module, int, RunConfig], RecipeStep]] = {
    "dino": lightly_dino,
    "lejepa": lightly_lejepa,
}


def engine_step(method: Method, optimizer: torch.optim.Optimizer, batch: Any, step: int) -> None:
    """One optimiser step of the engine's model on ``batch`` = ("engine", images, augment,
    generator), augmented in the step, or, for I-JEPA fed by lightly's pipeline, on (images,
    context masks, target masks)."""
    info = StepInfo(epoch=1, step=step, total_steps=TOTAL_STEPS)
    if batch[0] == "engine":
        _, images, augment, generator = batch
        views = [augment(images, generator) for _ in range(2)]
        views += [
            augment(images, generator, out_size=16, scale=(0.05, 0.4))
            for _ in range(method.n_local_views())
        ]
        out = method.training_loss(views, torch.arange(len(images)), info)
    else:
        images, context, targets = batch
        ijepa = cast(IJEPA, method)
        out = ijepa.predict_targets(images, ijepa.target_tokens(images), context[0], targets)
    optimizer.zero_grad(set_to_none=True)
    out.loss.backward()  # type: ignore[no-untyped-call]
    optimizer.step()
    method.after_step(info)


def time_method(name: str, args: argparse.Namespace) -> None:
    """Images/s of lightly's example recipe for ``name`` (I-JEPA: its pipeline into the
    engine's model) and of the engine, on the same backbone module and initial weights."""
    raw: dict[str, Any] = {"preset": name, "dataset": "digits", "image_size": 32}
    if args.backbone:
        raw["backbone"] = args.backbone
    config = resolve_config(raw)
    train, _ = load_splits(config, Path("data"))
    torch.manual_seed(0)
    backbone, rep_dim = build_backbone(config.backbone, 3, 32, config.width)
    method = METHODS[name](backbone, rep_dim, config)
    optimizer = build_optimizer(method, config, method.excluded_from_weight_decay())
    augment = BatchAugment(32, 3, config.augment_strength)
    generator = torch.Generator().manual_seed(0)
    if name in LIGHTLY_RECIPES:
        torch.manual_seed(0)  # the engine's backbone weights
        recipe_step = LIGHTLY_RECIPES[name](
            *build_backbone(config.backbone, 3, 32, config.width), config
        )
    else:
        recipe_step = partial(engine_step, method, optimizer)
    step = 0

    def run(train_step: RecipeStep, batches: Iterator[Any]) -> float:
        nonlocal step
        for _ in range(args.warmup):
            train_step(next(batches), step := step + 1)
        start = time.perf_counter()
        for _ in range(args.steps):
            train_step(next(batches), step := step + 1)
        return time.perf_counter() - start

    def engine_batches() -> Iterator[Any]:
        while True:
            order = torch.randperm(len(train.images), generator=generator)
            for i in range(len(order) // args.batch_size):
                indices = order[i * args.batch_size : (i + 1) * args.batch_size]
                yield ("engine", train.images[indices], augment, generator)

    def recipe_seconds() -> float:
        loader = lightly_loader(name, train.images, method.n_local_views(), args)
        batches = recipe_batches(loader)
        seconds = run(recipe_step, batches)
        batches.close()
        return seconds

    def engine_seconds() -> float:
        return run(partial(engine_step, method, optimizer), engine_batches())

    def cpu_per_step(train_step: RecipeStep, batches: Iterator[Any]) -> float:
        def once() -> None:
            nonlocal step
            train_step(next(batches), step := step + 1)

        return cpu_seconds_per_step(once, args.cpu_steps)

    load_before = os.getloadavg()[0]
    recipe = recipe_seconds()
    engine = engine_seconds() + engine_seconds()
    recipe += recipe_seconds()
    images = 2 * args.steps * args.batch_size
    recipe_side = "pipeline" if name == "ijepa" else "recipe"
    views = "1 view + masks" if name == "ijepa" else f"2 + {method.n_local_views()} views"
    print(
        f"{name} ({config.backbone}, digits 32 px, batch {args.batch_size}, {views}, "
        f"{torch.get_num_threads()} torch threads, load average "
        f"{load_before:.1f} -> {os.getloadavg()[0]:.1f}): lightly's example {recipe_side} "
        f"{images / recipe:7.1f} images/s, engine {images / engine:7.1f} images/s, "
        f"ratio engine / lightly {recipe / engine:5.2f}x"
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    in_process = argparse.Namespace(**{**vars(args), "num_workers": 0})
    loader = lightly_loader(name, train.images, method.n_local_views(), in_process)
    recipe_cpu = cpu_per_step(recipe_step, recipe_batches(loader))
    engine_cpu = cpu_per_step(partial(engine_step, method, optimizer), engine_batches())
    torch.set_num_threads(threads)
    print(
        f"CPU work per step on one thread: lightly's example {recipe_side} {recipe_cpu:6.3f} s, "
        f"engine {engine_cpu:6.3f} s, ratio engine / lightly {recipe_cpu / engine_cpu:5.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--method",
        choices=["simsiam", "ijepa", "lejepa", "dino"],
        default="simsiam",
        help="which row",
    )
    parser.add_argument("--steps", type=int, default=8, help="timed steps per side and round")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    parser.add_argument(
        "--backbone",
        choices=["small_cnn", "vit_tiny"],
        help="DINO / LeJEPA / I-JEPA rows: both sides' backbone (default: the preset's)",
    )
    parser.add_argument("--cpu-steps", type=int, default=3, help="steps for the CPU-work figure")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.method != "simsiam":
        time_method(args.method, args)
        return

    config = resolve_config({"method": "simsiam", "dataset": "digits", "image_size": 32})
    train, _ = load_splits(config, Path("data"))
    print(
        f"SimSiam, small_cnn, digits {len(train)} train images at 32 px, batch "
        f"{args.batch_size}, {torch.get_num_threads()} torch threads, recipe DataLoader "
        f"num_workers={args.num_workers} (persistent); {args.steps} timed steps per side and "
        f"round after {args.warmup} warm-up steps, rounds in the order recipe, engine, engine, "
        "recipe"
    )
    torch.manual_seed(0)
    backbone, rep_dim = build_backbone("small_cnn", 3, 32, config.width)
    recipe_model = RecipeSimSiam(backbone, rep_dim)
    recipe_optimizer = torch.optim.SGD(
        recipe_model.parameters(), lr=0.06, momentum=0.9, weight_decay=5e-4
    )
    dataset = TwoViewDataset(train.images, recipe_transform(32))
    torch.manual_seed(0)
    engine = EngineLoop(config, train.images, args.batch_size)

    recipe_seconds = time_recipe(recipe_model, recipe_optimizer, dataset, args)
    engine_seconds = time_engine(engine, args)
    engine_seconds += time_engine(engine, args)
    recipe_seconds += time_recipe(recipe_model, recipe_optimizer, dataset, args)

    pairs = 2 * args.steps * args.batch_size
    recipe_rate, engine_rate = pairs / recipe_seconds, pairs / engine_seconds
    print(f"recipe (PIL + DataLoader): {recipe_rate:8.1f} image pairs/s")
    print(f"engine (BatchAugment):     {engine_rate:8.1f} image pairs/s")
    print(f"ratio engine / recipe:     {engine_rate / recipe_rate:8.2f}x  (target >= 1.5x)")

    recipe_cpu, engine_cpu = cpu_work_per_step(
        recipe_model, recipe_optimizer, dataset, engine, args
    )
    print("CPU work per step on one thread (independent of the machine's load):")
    print(f"recipe: {recipe_cpu:6.3f} s = {args.batch_size / recipe_cpu:7.1f} image pairs/CPU-s")
    print(f"engine: {engine_cpu:6.3f} s = {args.batch_size / engine_cpu:7.1f} image pairs/CPU-s")
    print(f"ratio engine / recipe: {recipe_cpu / engine_cpu:5.2f}x")


if __name__ == "__main__":
    main()
