"""Per-epoch checkpoints: everything needed to resume a run exactly where it stopped.

A checkpoint holds the model (online network, heads, EMA target, prototypes), the
optimiser, the epoch just finished and the epoch records so far (as JSON-ready dicts). No
RNG state: every epoch reseeds its random streams from the run seed and its number, so a
resumed run replays exactly what an uninterrupted one would have done. It is
written to a temporary file and renamed, so a worker killed mid-write never leaves a
half-written checkpoint behind. Loading uses ``weights_only=True`` (no pickled code).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_NAME = "checkpoint.pt"


@dataclass
class Checkpoint:
    epoch: int  # last completed epoch (0 = only the baseline diagnostics exist)
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    history: list[dict[str, Any]]


def checkpoint_path(run_dir: Path) -> Path:
    return run_dir / CHECKPOINT_NAME


def save_checkpoint(run_dir: Path, checkpoint: Checkpoint) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    target = checkpoint_path(run_dir)
    tmp = target.with_suffix(".tmp")
    torch.save(
        {
            "epoch": checkpoint.epoch,
            "model": checkpoint.model,
            "optimizer": checkpoint.optimizer,
            "history": checkpoint.history,
        },
        tmp,
    )
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, target)


def load_checkpoint(run_dir: Path) -> Checkpoint | None:
    """The run's last checkpoint, or None when the run has not finished an epoch yet."""
    path = checkpoint_path(run_dir)
    if not path.exists():
        return None
    data = torch.load(path, map_location="cpu", weights_only=True)
    return Checkpoint(data["epoch"], data["model"], data["optimizer"], data["history"])
