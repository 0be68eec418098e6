"""DINO-style external loops and the cause of their collapse, beyond the one setting the
service test runs.

The loop is a plain PyTorch DINO (written here, not the engine's DINO): digits, a 3-layer
MLP to an l2-normalised 32-d bottleneck, a linear head to K prototypes, teacher centering and
sharpening, an EMA teacher, AdamW, 20 epochs; each epoch it logs its probe the way a
researcher's loop does, ``log_epoch(epoch, z, labels=, loss=, teacher=, student=,
schedules=)`` with z the student's output distribution (Caron et al., ICCV 2021, Sec. 5.3:
where DINO's two collapses are defined). ``tests/service/test_external_causes.py`` runs it
through ``collapse_lab.Monitor`` and the real service at seed 0; this script runs it
in-process, measured as the ingest worker measures an upload
(``bench.external_loops.InProcessLogger``), on other seeds, prototype counts
and learning rates, with and without the schedules logged, and prints one row per loop:

    python -m bench.external_dino_loops            # 4 loops x 6 variants, ~1 min on 2 CPUs
    python -m bench.external_dino_loops --lightly  # the loop built from lightly's parts
    python -m bench.external_dino_loops --teacher-only  # teacher= alone: no student, no schedules

``--lightly`` runs another loop, written the way lightly's DINO example is: lightly's
``DINOProjectionHead`` (MLP, l2 bottleneck, weight-normalised prototypes, the last layer
frozen for the first epoch) and ``DINOLoss`` (its centre, its teacher-temperature warm-up;
centering switched off as ``center_momentum=1``, a centre that never leaves 0), teacher
updated by ``update_momentum``, z the student's l2 bottleneck; it logs the centre's norm
and both temperatures beside the momentum.
"""

from __future__ import annotations

import argparse
import copy
import functools
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from lightly.loss import DINOLoss
from lightly.models.modules import DINOProjectionHead
from lightly.models.utils import update_momentum
from sklearn.datasets import load_digits
from torch import nn

from bench.external_loops import InProcessLogger

STUDENT_TEMPERATURE = 0.1
NUM_PROTOTYPES = 64
EPOCHS = 20

# name -> (the loop's guards, the cause its collapse should get; None: stays healthy)
LOOPS: dict[str, tuple[dict[str, Any], str | None]] = {
    "every guard on": ({"centering": True, "teacher_temperature": 0.04, "momentum": 0.99}, None),
    "no centering": (
        {"centering": False, "teacher_temperature": 0.04, "momentum": 0.99},
        "centering",
    ),
    "no sharpening": (
        {"centering": True, "teacher_temperature": 0.1, "momentum": 0.99},
        "sharpening",
    ),
    "teacher is the student": (
        {"centering": True, "teacher_temperature": 0.04, "momentum": 0.0},
        "target_network",
    ),
}

# the lightly-built loop's seeds and prototype counts (its lr: LIGHTLY_LR)
LIGHTLY_VARIANTS: list[dict[str, Any]] = [
    {"seed": 0, "num_prototypes": 128},
    {"seed": 1, "num_prototypes": 128},
    {"seed": 2, "num_prototypes": 64},
    {"seed": 3, "num_prototypes": 256},
]
LIGHTLY_LR = 5e-3
WARM_UP_EPOCHS = 5

# seeds, prototype counts, learning rates and logging the service test does not run
VARIANTS: list[dict[str, Any]] = [
    {"seed": 1, "num_prototypes": 64, "lr": 0.05, "log_schedules": True},
    {"seed": 2, "num_prototypes": 64, "lr": 0.05, "log_schedules": True},
    {"seed": 3, "num_prototypes": 256, "lr": 0.05, "log_schedules": True},
    {"seed": 1, "num_prototypes": 64, "lr": 0.01, "log_schedules": True},
    {"seed": 2, "num_prototypes": 64, "lr": 0.05, "log_schedules": False},
    {"seed": 3, "num_prototypes": 256, "lr": 0.01, "log_schedules": False},
]


class EpochLogger(Protocol):
    """What the loop calls each epoch: ``collapse_lab.Monitor.log_epoch``'s keywords."""

    def log_epoch(
        self,
        epoch: int,
        z: torch.Tensor,
        *,
        labels: Any,
        loss: float | None,
        teacher: torch.Tensor,
        student: torch.Tensor,
        schedules: Mapping[str, float],
    ) -> Any: ...


class _Net(nn.Module):
    """x (B, 64) -> logits (B, K) through an l2-normalised 32-d bottleneck."""

    def __init__(self, num_prototypes: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(64, 256), nn.GELU(), nn.Linear(256, 256), nn.GELU(), nn.Linear(256, 32)
        )
        self.last = nn.Linear(32, num_prototypes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.last(F.normalize(self.body(x), dim=1))
        return logits


def _seeded_digits(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Generator]:
    """Seeds torch; returns digits standardised (1,797, 64), the probe (its first 256 rows)
    and their labels, and the generator the loop's shuffles and views draw from."""
    torch.manual_seed(seed)
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    x = (x - x.mean(0)) / (x.std(0) + 1e-3)
    return x, x[:256], torch.tensor(digits.target[:256]), torch.Generator().manual_seed(seed)


def _augment(t: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A view of t (B, 64): a quarter of the pixels masked, Gaussian noise added."""
    keep = torch.rand(t.shape, generator=generator) > 0.25
    return t * keep + 0.3 * torch.randn(t.shape, generator=generator)


def dino_loop(
    logger: EpochLogger,
    *,
    centering: bool,
    teacher_temperature: float,
    momentum: float,
    seed: int = 0,
    num_prototypes: int = NUM_PROTOTYPES,
    lr: float = 0.05,
    log_schedules: bool = True,
) -> None:
    """Train the loop for ``EPOCHS`` epochs, logging epoch 0 (untrained) and each epoch.
    ``log_schedules=False`` logs no EMA momentum and no temperatures (the cause then has
    only the probabilities to read)."""
    x, probe, probe_labels, generator = _seeded_digits(seed)
    augment = functools.partial(_augment, generator=generator)

    student = _Net(num_prototypes)
    teacher = copy.deepcopy(student).requires_grad_(False)
    optimizer = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=0.04)
    center = torch.zeros(num_prototypes)

    def teacher_probs(logits: torch.Tensor) -> torch.Tensor:
        shifted = logits - center if centering else logits
        return F.softmax(shifted / teacher_temperature, dim=1)

    def log(epoch: int, loss: float | None) -> None:
        student.eval()
        with torch.no_grad():
            view1, view2 = augment(probe), augment(probe)
            # common spellings (collapse_lab.monitor.SCHEDULE_ALIASES); the centre's norm is
            # not logged: the momentum tells a student-copy teacher, whose entropy falls to
            # 0 too, from a missing centering
            schedules = {
                "momentum": momentum,
                "teacher_temp": teacher_temperature,
                "student_temp": STUDENT_TEMPERATURE,
            }
            logger.log_epoch(
                epoch,
                F.softmax(student(probe) / STUDENT_TEMPERATURE, dim=1),
                labels=probe_labels,
                loss=loss,
                teacher=teacher_probs(teacher(view1)),
                student=F.softmax(student(view2) / STUDENT_TEMPERATURE, dim=1),
                schedules=schedules if log_schedules else {},
            )
        student.train()

    log(0, None)
    for epoch in range(1, EPOCHS + 1):
        for batch in torch.split(x[torch.randperm(len(x), generator=generator)], 128):
            views = [augment(batch), augment(batch)]
            student_logs = [F.log_softmax(student(v) / STUDENT_TEMPERATURE, dim=1) for v in views]
            with torch.no_grad():
                teacher_logits = [teacher(v) for v in views]
                targets = [teacher_probs(t) for t in teacher_logits]
            loss = (
                -(
                    (targets[0] * student_logs[1]).sum(1).mean()
                    + (targets[1] * student_logs[0]).sum(1).mean()
                )
                / 2
            )
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            with torch.no_grad():
                if centering:
                    center = 0.9 * center + 0.1 * torch.cat(teacher_logits).mean(0)
                for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
                    t.mul_(momentum).add_((1 - momentum) * s)
        log(epoch, loss.item())


def lightly_dino_loop(
    logger: EpochLogger,
    *,
    centering: bool,
    teacher_temperature: float,
    momentum: float,
    seed: int = 0,
    num_prototypes: int = 128,
    lr: float = LIGHTLY_LR,
) -> None:
    """The DINO loop of lightly's parts (the module docstring), ``EPOCHS`` epochs on digits,
    logging epoch 0 and each epoch with the centre's norm, both temperatures and the
    momentum. Without centering lightly's centre stays 0 (``center_momentum=1``)."""
    x, probe, probe_labels, generator = _seeded_digits(seed)
    augment = functools.partial(_augment, generator=generator)

    def head() -> DINOProjectionHead:  # (B, 128) -> (B, K), bottleneck 32
        return DINOProjectionHead(128, 256, 32, num_prototypes, freeze_last_layer=1)

    backbone = nn.Sequential(nn.Linear(64, 256), nn.GELU(), nn.Linear(256, 128), nn.GELU())
    student_head = head()
    teacher_backbone = copy.deepcopy(backbone).requires_grad_(False)
    teacher_head = head()  # weight norm cannot be deep-copied: a second head, same weights
    teacher_head.load_state_dict(student_head.state_dict())
    teacher_head.requires_grad_(False)
    criterion = DINOLoss(
        output_dim=num_prototypes,
        warmup_teacher_temp=min(0.04, teacher_temperature),
        teacher_temp=teacher_temperature,
        warmup_teacher_temp_epochs=WARM_UP_EPOCHS,
        student_temp=STUDENT_TEMPERATURE,
        center_momentum=0.9 if centering else 1.0,
    )
    parameters = [*backbone.parameters(), *student_head.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=0.04)

    def log(epoch: int, loss: float | None) -> None:
        # the temperature the loss of training epoch `epoch - 1` sharpened with
        index = max(epoch - 1, 0)
        warm_up = criterion.teacher_temp_schedule
        temperature = float(warm_up[index]) if index < WARM_UP_EPOCHS else teacher_temperature
        with torch.no_grad():
            view1, view2 = augment(probe), augment(probe)
            teacher_logits = teacher_head(teacher_backbone(view1))
            centre = criterion.center.reshape(-1)  # lightly keeps it as (1, 1, K)
            logger.log_epoch(
                epoch,
                F.normalize(student_head.layers(backbone(probe)), dim=1),
                labels=probe_labels,
                loss=loss,
                teacher=F.softmax((teacher_logits - centre) / temperature, dim=1),
                student=F.softmax(student_head(backbone(view2)) / STUDENT_TEMPERATURE, dim=1),
                schedules={
                    "momentum": momentum,
                    "teacher_temp": temperature,
                    "student_temp": STUDENT_TEMPERATURE,
                    "center": float(criterion.center.norm()),
                },
            )

    log(0, None)
    for epoch in range(1, EPOCHS + 1):
        for batch in torch.split(x[torch.randperm(len(x), generator=generator)], 128):
            views = [augment(batch), augment(batch)]
            with torch.no_grad():
                teacher_out = [teacher_head(teacher_backbone(v)) for v in views]
            student_out = [student_head(backbone(v)) for v in views]
            loss = criterion(teacher_out, student_out, epoch=epoch - 1)
            optimizer.zero_grad()
            loss.backward()
            student_head.cancel_last_layer_gradients(epoch - 1)
            optimizer.step()
            update_momentum(backbone, teacher_backbone, momentum)
            update_momentum(student_head, teacher_head, momentum)
        log(epoch, loss.item())


class TeacherOnly:
    """Logs the teacher's probabilities alone (no student, no schedules) to an
    :class:`InProcessLogger`: what a DINO loop sends when it mistakes them for a clustering
    loop's codes (client/PROTOCOL.md, section 8). No cause can be named from them."""

    def __init__(self) -> None:
        self.measured = InProcessLogger()
        self.history = self.measured.history

    def log_epoch(
        self,
        epoch: int,
        z: torch.Tensor,
        *,
        labels: Any,
        loss: float | None,
        teacher: torch.Tensor,
        **left_out: Any,  # student, schedules
    ) -> None:
        self.measured.log_epoch(epoch, z, labels=labels, loss=loss, teacher=teacher)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--lightly", action="store_true", help="the loop built from lightly's head and loss"
    )
    parser.add_argument(
        "--teacher-only", action="store_true", help="log teacher= alone (no student, schedules)"
    )
    args = parser.parse_args()
    lightly = args.lightly
    loop: Callable[..., None] = lightly_dino_loop if lightly else dino_loop
    variants = [{"lr": LIGHTLY_LR, **v} for v in LIGHTLY_VARIANTS] if lightly else VARIANTS
    print(
        "| seed | K | lr | schedules logged | loop | verdict | cause | expected | "
        "h(P_t)/ln K, KL (nats) |"
    )
    print("| ---: | ---: | ---: | --- | --- | --- | --- | --- | --- |")
    started = time.perf_counter()
    for variant in variants:
        for name, (guards, expected) in LOOPS.items():
            logger: TeacherOnly | InProcessLogger = (
                TeacherOnly() if args.teacher_only else InProcessLogger()
            )
            loop(logger, **guards, **variant)
            last = logger.history[-1]
            verdict = last.verdict
            assert verdict is not None
            guard = verdict.cause.guard if verdict.cause else "—"
            log_k = last.logs.get("log_k", 1.0)
            kl = last.logs.get("teacher_student_kl")
            shares = f"{last.logs.get('teacher_entropy', float('nan')) / log_k:.2f}, " + (
                f"{kl:.3f}" if kl is not None else "∞ (not stored)"
            )
            print(
                f"| {variant['seed']} | {variant['num_prototypes']} | {variant['lr']} | "
                f"{'yes' if variant.get('log_schedules', True) else 'no'} | {name} | "
                f"{verdict.kind} | "
                f"{guard} | {expected or '—'} | {shares} |",
                flush=True,
            )
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
