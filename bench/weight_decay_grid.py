"""Weight decay against the optimiser: where lr x wd collapses SimSiam and BYOL under SGD.

And whether the product means anything under AdamW and LARS (docs/causes.md, "Weight decay
and the optimiser").

Each row is one configuration trained with bench.causes's short settings (10 epochs of 512
images at 16 px, batch 64: 80 steps) on digits and shapes, seeds 0 and 1, stored under
``--out`` like bench.causes's runs (a stored run is judged again, not retrained). It prints
one markdown row per configuration: the peak per-step shrink lr x wd, the four verdicts
and the causes the diagnosis names.

    python -m bench.weight_decay_grid                  # about 5 min on 2 CPUs
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench.causes import SMALL, Judged, Scenario, peak_shrink, run_scenario

# (label, request), lr the base learning rate (the peak is lr x 64/256 at batch 64): SimSiam's
# preset runs SGD with momentum 0.9, lr 0.2, weight decay 5e-4; BYOL's lr 0.3.
GRID: list[tuple[str, dict[str, Any]]] = [
    *(
        (f"SimSiam, SGD, wd {wd}", {"preset": "simsiam", "weight_decay": wd})
        for wd in (1.0, 0.3, 0.2, 0.1, 0.05, 0.02, 0.01)
    ),
    (
        "SimSiam, SGD momentum 0.5, wd 1",
        {"preset": "simsiam", "weight_decay": 1.0, "momentum": 0.5},
    ),
    ("SimSiam, SGD momentum 0, wd 1", {"preset": "simsiam", "weight_decay": 1.0, "momentum": 0.0}),
    ("SimSiam, SGD, lr 0.02, wd 0.1", {"preset": "simsiam", "weight_decay": 0.1, "lr": 0.02}),
    ("SimSiam, SGD, lr 0.1, wd 0.1", {"preset": "simsiam", "weight_decay": 0.1, "lr": 0.1}),
    ("SimSiam, SGD, lr 1.0, wd 0.02", {"preset": "simsiam", "weight_decay": 0.02, "lr": 1.0}),
    ("SimSiam, SGD, lr 1.0 (control)", {"preset": "simsiam", "lr": 1.0}),
    *(
        (f"BYOL, SGD, wd {wd}", {"preset": "byol", "weight_decay": wd})
        for wd in (1.0, 0.2, 0.1, 0.05, 0.02, 0.01)
    ),
    *(
        (
            f"SimSiam, AdamW, lr {lr}, wd {wd}",
            {"preset": "simsiam", "optimizer": "adamw", "lr": lr, "weight_decay": wd},
        )
        for lr in (0.004, 0.04, 0.12)
        for wd in (0.0, 1.0)
    ),
    ("SimSiam, LARS, wd 0", {"preset": "simsiam", "optimizer": "lars", "weight_decay": 0.0}),
    ("SimSiam, LARS, wd 1", {"preset": "simsiam", "optimizer": "lars", "weight_decay": 1.0}),
    (
        "SimSiam, LARS, lr 1.0, wd 1",
        {"preset": "simsiam", "optimizer": "lars", "weight_decay": 1.0, "lr": 1.0},
    ),
    ("BYOL, LARS, wd 1", {"preset": "byol", "optimizer": "lars", "weight_decay": 1.0}),
]


def _outcome(run: Judged) -> str:
    verdict = run.verdict
    if verdict.kind == "healthy":
        return "healthy"
    cause = verdict.cause.guard if verdict.cause is not None else "—"
    return f"{verdict.kind.replace('_collapse', '')}@{verdict.onset_epoch} {cause}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/weight-decay"))
    parser.add_argument("--data-root", type=Path, default=Path("data"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print("| configuration | peak lr × wd | digits s0 / s1 | shapes s0 / s1 |")
    print("| --- | --- | --- | --- |")
    for label, request in GRID:
        name = label.lower().replace(", ", "-").replace(" ", "-").replace("(", "").replace(")", "")
        scenario = Scenario(name, request, "weight_decay", label)
        cells, peak = [], None
        for dataset in ("digits", "shapes"):
            runs = [
                run_scenario(scenario, dataset, seed, args.out, False, args.data_root, SMALL)
                for seed in (0, 1)
            ]
            peak = peak_shrink(runs[0])
            cells.append(" / ".join(_outcome(run) for run in runs))
        shrink = "0" if peak is None else f"{peak:.2g}"
        print(f"| {label} | {shrink} | {cells[0]} | {cells[1]} |", flush=True)


if __name__ == "__main__":
    main()
