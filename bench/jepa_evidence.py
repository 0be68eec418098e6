"""I-JEPA and LeJEPA ablations on the CPU: the table of the README and LeJEPA's loss-accuracy
correlation, from the ``--jsonl`` files of ``collapse-lab train`` runs.

The runs (README, "I-JEPA and LeJEPA"), one file per run named <preset>-<dataset>-<seed>.jsonl:

    collapse-lab train --preset P --dataset D --seed S --epochs 15 --batch-size 64 \\
        --set train_size=512 --set probe_size=256 --set lidar_every=0 --jsonl DIR/P-D-S.jsonl

for P in lejepa, lejepa-no-sigreg (small_cnn) and, with ``--epochs 10 --set width=8 --set
image_size=24`` (a 48-wide ViT, 6 x 6 patches), ijepa, ijepa-no-ema.

``python -m bench.jepa_evidence DIR`` prints one row per run (last epoch) and the Spearman
rank correlation between LeJEPA's training loss and the probe's kNN accuracy over every
trained epoch of the ``lejepa`` runs (Balestriero & LeCun report rho of about 0.85 between
the loss and linear-probe accuracy on ImageNet-scale runs).
"""

from __future__ import annotations

import sys
from pathlib import Path

from scipy.stats import spearmanr

from bench.jsonl_runs import read_run


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    print(
        "| run | verdict | std·√d (z) | eff. rank (z) | kNN h: epoch 0 → last | "
        "loss terms, last epoch |"
    )
    print("| --- | --- | ---: | ---: | --- | --- |")
    losses, knn_h, knn_z = [], [], []
    per_run: list[str] = []
    for path in sorted(folder.glob("*.jsonl")):
        records, verdict = read_run(path)
        if not verdict:
            continue
        first, last = records[0], records[-1]
        z = last["projector"]
        terms = ", ".join(f"{k} {v:.3g}" for k, v in (last.get("logs") or {}).items())
        print(
            f"| {path.stem} | {verdict.get('kind')} | {z['std_l2_sqrt_d']:.3f} | "
            f"{z['effective_rank']:.1f} | {first['backbone']['knn_top1']:.3f} → "
            f"{last['backbone']['knn_top1']:.3f} | {terms} |"
        )
        if path.stem.startswith("lejepa-") and not path.stem.startswith("lejepa-no-sigreg"):
            run_losses = [record["loss"] for record in records[1:]]
            run_knn = [record["backbone"]["knn_top1"] for record in records[1:]]
            per_run.append(f"{path.stem} {spearmanr(run_losses, run_knn).statistic:.2f}")
            losses += run_losses
            knn_h += run_knn
            knn_z += [record["projector"]["knn_top1"] for record in records[1:]]
    if losses:
        rho_h = spearmanr(losses, knn_h).statistic
        rho_z = spearmanr(losses, knn_z).statistic
        print(
            f"\nLeJEPA, {len(losses)} epochs: Spearman rho(loss, kNN of h) = {rho_h:.2f}, "
            f"rho(loss, kNN of z) = {rho_z:.2f} (a loss that tracks accuracy gives rho near -1: "
            "lower loss, higher kNN); per run, rho(loss, kNN of h): " + ", ".join(per_run)
        )


if __name__ == "__main__":
    main()
