"""Monitoring overhead: how much of an epoch's wall time the collapse diagnostics take.

Every epoch record carries ``train_time_s`` (the optimiser steps) and
``diagnostics_time_s`` (the probe passes and every metric, projection excluded: that runs
on its own queue). Training without diagnostics costs exactly ``train_time_s``, so the
overhead of turning them on is diagnostics / (train + diagnostics), measured in one run.
Target: <= 5 %.

    python bench/bench_monitoring.py [--epochs 3]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from workers.engine.spec import resolve_config
from workers.engine.trainer import train

SETTINGS = {
    "digits (1,347 train / 450 probe)": {"preset": "simsiam", "dataset": "digits"},
    "shapes (8,192 train / 2,048 probe)": {"preset": "simsiam", "dataset": "shapes"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    print(f"{'setting':38s} {'train s/epoch':>14s} {'diagnostics s':>14s} {'overhead':>9s}")
    with tempfile.TemporaryDirectory() as tmp:
        for label, raw in SETTINGS.items():
            config = resolve_config({**raw, "epochs": args.epochs, "device": "cpu"})
            history = train(config, data_root=Path(tmp)).history[1:]
            train_s = sum(r.train_time_s for r in history) / len(history)
            diag_s = sum(r.diagnostics_time_s for r in history) / len(history)
            print(f"{label:38s} {train_s:14.2f} {diag_s:14.2f} {diag_s / (train_s + diag_s):9.1%}")


if __name__ == "__main__":
    main()
