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

The mechanism signals (each method's probe_logs: docs/mechanisms.md) are part of the
diagnostics, timed apart (``mechanisms_time_s``): "mech s" and their share of the epoch.
Their cost is fixed per epoch (two views of 256 probe images through the method's
branches, then d x d and N x K algebra), so ``--presets`` measures each family's on the
short settings and "of CIFAR" divides it by the CIFAR-sized SimSiam epoch's training time
given with ``--cifar-train-s`` (the figure the cifar row prints).

The verdict (kind, onset, trend, findings, the guards' early warnings, the cause) is
computed after every epoch from the whole history: the last lines time it on histories of
10, 100 and 1,000 epochs made of the last run's records.

    python -m bench.bench_monitoring [--epochs 2] [--only cifar]
    python -m bench.bench_monitoring --only shapes --epochs 1 --cifar-train-s 294 \
        --presets simsiam,byol,simclr,swav,deepcluster,barlow-twins,vicreg,dino
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from contract import resolve_config
from workers.engine.cause import guard_warnings
from workers.engine.trainer import train
from workers.engine.verdict import epoch_verdict

LIDAR_EVERY = 5  # the run config's default cadence, for the amortised figure
SETTINGS: dict[str, dict[str, Any]] = {
    "digits (1,347 train)": {"dataset": "digits"},
    "shapes (8,192 train)": {"dataset": "shapes"},
    "cifar: shapes 50,000, 195 steps": {
        "dataset": "shapes",
        "train_size": 50_000,
        "batch_size": 256,
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--only", default="", help="run only settings whose label has this")
    parser.add_argument(
        "--presets", default="simsiam", help="comma-separated presets, each run on every setting"
    )
    parser.add_argument(
        "--cifar-train-s",
        type=float,
        default=None,
        help="a CIFAR-sized epoch's training seconds (the cifar row's), for 'of CIFAR'",
    )
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    print(
        f"{'setting':40s} {'preset':14s} {'probe':>5s} {'train s':>8s} {'diag s':>7s} "
        f"{'LiDAR s':>8s} {'mech s':>7s} {'share':>6s} {'mech':>6s} {'of CIFAR':>8s} "
        f"{'LiDAR ep.':>9s} {f'1 in {LIDAR_EVERY}':>7s}"
    )
    history: list[Any] = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, raw in SETTINGS.items():
            if args.only not in label:
                continue
            for preset in args.presets.split(","):
                # LiDAR on every epoch, so each trained epoch measures it
                config = resolve_config(
                    {**raw, "preset": preset, "epochs": args.epochs, "device": "cpu"}
                    | {"lidar_every": 1}
                )
                history = train(config, data_root=Path(tmp)).history
                _print_row(label, preset, config.probe_size, history[1:], args.cifar_train_s)
    print(
        "share: diagnostics without LiDAR / epoch; mech: the mechanism signals' part of the "
        "epoch; of CIFAR: mech s / (CIFAR-sized training s + mech s); LiDAR ep.: on an epoch "
        f"that measures LiDAR; 1 in {LIDAR_EVERY}: LiDAR every {LIDAR_EVERY} epochs (the "
        "default)"
    )
    if history:
        _print_verdict_cost(history)


def _print_row(
    label: str, preset: str, probe: int, history: list[Any], cifar_train_s: float | None
) -> None:
    def mean(field: str) -> float:
        total: float = sum(getattr(r, field) for r in history)
        return total / len(history)

    train_s, lidar_s, mech_s = mean("train_time_s"), mean("lidar_time_s"), mean("mechanisms_time_s")
    diag_s = mean("diagnostics_time_s") - lidar_s
    without = diag_s / (train_s + diag_s)
    mech = mech_s / (train_s + diag_s)
    of_cifar = f"{mech_s / (cifar_train_s + mech_s):8.2%}" if cifar_train_s else f"{'-':>8s}"
    every = (diag_s + lidar_s) / (train_s + diag_s + lidar_s)
    amortised = diag_s + lidar_s / LIDAR_EVERY
    spread_out = amortised / (train_s + amortised)
    print(
        f"{label:40s} {preset:14s} {probe:5d} {train_s:8.2f} {diag_s:7.2f} {lidar_s:8.2f} "
        f"{mech_s:7.3f} {without:6.1%} {mech:6.1%} {of_cifar} {every:9.1%} {spread_out:7.1%}",
        flush=True,
    )


def _print_verdict_cost(history: list[Any]) -> None:
    """The verdict after one epoch, on histories of growing length (epoch 0, then the run's
    trained epochs over and over)."""
    trained = history[1:]
    for length in (10, 100, 1_000):
        records = [history[0]] + [
            trained[i % len(trained)].model_copy(update={"epoch": i + 1}) for i in range(length - 1)
        ]
        repeats = max(3, 300 // length)
        start = time.perf_counter()
        for _ in range(repeats):
            epoch_verdict(records)
        verdict_ms = (time.perf_counter() - start) / repeats * 1000
        start = time.perf_counter()
        for _ in range(repeats):
            guard_warnings(records)
        warnings_ms = (time.perf_counter() - start) / repeats * 1000
        print(
            f"verdict after epoch {length - 1:5d}: {verdict_ms:7.2f} ms "
            f"(the guards' early warnings {warnings_ms:.2f} ms of it)"
        )


if __name__ == "__main__":
    main()
