"""Monitoring overhead: how much of an epoch's wall time the collapse diagnostics take.

Every epoch record carries ``train_time_s`` (the optimiser steps) and
``diagnostics_time_s`` (the probe passes and every metric, projection excluded: that runs
on its own queue), of which ``lidar_time_s`` is LiDAR's part on the epochs it runs.
Training without diagnostics costs exactly ``train_time_s``, so the overhead of turning
them on is diagnostics / (train + diagnostics), measured in one run. Every metric of the
record is included (RankMe, spectrum, participation ratio, NESum, W2-uniformity, variance
shares, alignment/uniformity, cosines, kNN, cluster fields; LiDAR where due). LiDAR runs
every ``lidar_every`` epochs (5 by default), so its cost is shown per LiDAR epoch and
amortised over 5 epochs. Target: <= 5 % on realistic epochs (the CIFAR-sized row: 50,000
images at 32 px, batch 256, 195 steps).

    python -m bench.bench_monitoring [--epochs 2] [--only cifar]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from contract import resolve_config
from workers.engine.trainer import train

LIDAR_EVERY = 5  # the run config's default cadence, for the amortised figure
SETTINGS = {
    "digits (1,347 train / 450 probe)": {"preset": "simsiam", "dataset": "digits"},
    "shapes (8,192 train / 2,048 probe)": {"preset": "simsiam", "dataset": "shapes"},
    "cifar: shapes 50,000 / 2,048, 195 steps": {
        "preset": "simsiam",
        "dataset": "shapes",
        "train_size": 50_000,
        "batch_size": 256,
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--only", default="", help="run only settings whose label has this")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    print(
        f"{'setting':40s} {'train s':>8s} {'diag s':>7s} {'LiDAR s':>8s} "
        f"{'share':>6s} {'LiDAR ep.':>9s} {f'1 in {LIDAR_EVERY}':>7s}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for label, raw in SETTINGS.items():
            if args.only not in label:
                continue
            # LiDAR on every epoch, so each trained epoch measures it
            config = resolve_config(
                {**raw, "epochs": args.epochs, "device": "cpu", "lidar_every": 1}
            )
            history = train(config, data_root=Path(tmp)).history[1:]
            train_s = sum(r.train_time_s for r in history) / len(history)
            lidar_s = sum(r.lidar_time_s for r in history) / len(history)
            diag_s = sum(r.diagnostics_time_s for r in history) / len(history) - lidar_s
            without = diag_s / (train_s + diag_s)
            every = (diag_s + lidar_s) / (train_s + diag_s + lidar_s)
            amortised = diag_s + lidar_s / LIDAR_EVERY
            spread_out = amortised / (train_s + amortised)
            print(
                f"{label:40s} {train_s:8.2f} {diag_s:7.2f} {lidar_s:8.2f} "
                f"{without:6.1%} {every:9.1%} {spread_out:7.1%}",
                flush=True,
            )
    print(
        "share: diagnostics without LiDAR / epoch; LiDAR ep.: on an epoch that measures "
        f"LiDAR; 1 in {LIDAR_EVERY}: LiDAR every {LIDAR_EVERY} epochs (the default)"
    )


if __name__ == "__main__":
    main()
