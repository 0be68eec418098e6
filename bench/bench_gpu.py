"""The GPU path, end to end: SimCLR and SimSiam with ResNet-18, DINO with its ViT
(``vit_tiny``: 4 px patches, 6 blocks of width 192, 2 global + 2 local views), on a
CIFAR-sized set.

``shapes`` at 32 px with 50,000 training images (about 195 steps of 256 per epoch), bf16
autocast and channels_last (what the trainer does on CUDA), a few epochs each. Prints per
method: training images/s, epoch time, diagnostics time and its share of the epoch, peak
GPU memory, the verdict; then the projection time for 2,000 × 128 points (UMAP, cold and
warm-started). Without CUDA it says so and exits 0 (``make bench`` runs it everywhere);
``--dry-run`` trains every row for one epoch on 128 images on the CPU instead (it checks the
script, it measures nothing).

On a device machine, in one command (about 4 minutes on one H200), with the Python packages
the device image lacks carried as wheels (``bench/gpu_wheels.sh`` downloads them into
``.whl/``)::

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl \\
      && PYTHONPATH=/tmp/site:. python3 -m bench.bench_gpu --epochs 3
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from contract import resolve_config
from workers.engine.projection import project
from workers.engine.trainer import train

TRAIN_IMAGES = 50_000
PROJECTED_POINTS = 2_000
# (method, backbone) per row: each method's own defaults otherwise (DINO: AdamW, multi-crop)
ROWS = [("simclr", "resnet18"), ("simsiam", "resnet18"), ("dino", "vit_tiny")]
DRY_RUN = {"train_size": 128, "probe_size": 64, "batch_size": 64, "lidar_every": 0}


def run_method(method: str, backbone: str, epochs: int, data_root: Path, dry_run: bool) -> None:
    config = resolve_config(
        {
            "method": method,
            "dataset": "shapes",
            "backbone": backbone,
            "image_size": 32,
            "train_size": TRAIN_IMAGES,
            "batch_size": 256,
            "epochs": epochs,
            "device": "cuda",
            **({**DRY_RUN, "epochs": 1, "device": "cpu"} if dry_run else {}),
        }
    )
    if not dry_run:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    result = train(config, data_root=data_root)
    wall = time.perf_counter() - started
    trained = result.history[1:]
    # the first epoch also pays cuDNN autotuning: report the later ones when there are any
    steady = trained[1:] or trained
    images_per_s = np.median([r.images_per_s or 0.0 for r in steady])
    epoch_s = np.median([r.epoch_time_s for r in steady])
    diag_s = np.median([r.diagnostics_time_s for r in steady])
    peak_gib = torch.cuda.max_memory_allocated() / 2**30 if not dry_run else 0.0
    print(
        f"{method + '/' + backbone:17s} {images_per_s:10.0f} {epoch_s:9.2f} {diag_s:9.2f} "
        f"{diag_s / epoch_s:8.1%} {peak_gib:9.2f}  {result.verdict.kind} "
        f"({len(trained)} epochs, {wall:.0f} s with data and start-up)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--dry-run", action="store_true", help="one epoch of 128 images per row, on the CPU"
    )
    args = parser.parse_args()
    if not torch.cuda.is_available() and not args.dry_run:
        print("no CUDA device here: nothing to measure (run this on a GPU machine)")
        return
    device = "CPU (dry run)" if args.dry_run else torch.cuda.get_device_name(0)
    print(f"torch {torch.__version__}, {device}")
    print(
        f"{'method/backbone':17s} {'images/s':>10s} {'epoch s':>9s} {'diag s':>9s} {'diag %':>8s} "
        f"{'peak GiB':>9s}  verdict"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for method, backbone in ROWS:
            run_method(method, backbone, args.epochs, Path(tmp), args.dry_run)
    if args.dry_run:
        return
    z = np.random.default_rng(0).standard_normal((PROJECTED_POINTS, 128)).astype(np.float32)
    started = time.perf_counter()
    first = project(z, None, seed=0)
    cold = time.perf_counter() - started
    started = time.perf_counter()
    project(z + 0.01, first, seed=0)
    warm = time.perf_counter() - started
    print(
        f"projection of {PROJECTED_POINTS} x 128: {cold:.2f} s cold (numba compiles), "
        f"{warm:.2f} s warm-started"
    )


if __name__ == "__main__":
    main()
