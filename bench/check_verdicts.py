"""Every preset on one dataset with several seeds: does the verdict match the expectation?

Trains each preset (its CPU defaults, small_cnn, ``--epochs`` epochs) for every seed, writes
each run's history to ``--out/<dataset>-<preset>-s<seed>.json`` (so verdicts can be re-derived
from the records after a threshold change without training again) and prints one table line
per run: verdict, the projector numbers behind it and the findings.

    python -m bench.make_photo_folder --root data              # the real-photo folder
    python -m bench.check_verdicts --dataset imagefolder --set dataset_path=photos --seeds 0,1

A preset that should collapse must never be called healthy and a healthy one never
collapsed; ``complete`` vs ``dimensional`` is checked against the numbers in the table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from contract import PRESETS, EpochRecord, resolve_config
from workers.cli import parse_assignment
from workers.engine.trainer import train
from workers.engine.verdict import run_verdict


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def summary_line(name: str, seed: int, expected: str, stored: list[dict[str, Any]]) -> str:
    """One markdown table row of a finished run (verdict recomputed from its history)."""
    history = [EpochRecord.model_validate(record) for record in stored]
    verdict = run_verdict(history)
    z0, z, h0, h = (
        history[0].projector,
        history[-1].projector,
        history[0].backbone,
        history[-1].backbone,
    )
    kind = verdict.kind
    collapsing = expected != "healthy"
    wrong = (kind == "healthy") == collapsing or (collapsing and kind != expected)
    mark = " ✗" if wrong else ""
    findings = " / ".join(verdict.findings) or "-"
    knn = f"{_number(h0.knn_top1, 2)}→{_number(h.knn_top1, 2)}" if h0 and h else "-"
    return (
        f"| {name} | {seed} | {expected} | {kind}{mark} | {verdict.onset_epoch} | "
        f"{z0.spread:.2f}→{z.spread:.3f} | {z0.effective_rank:.1f}→{z.effective_rank:.1f} "
        f"| {_number(z.participation_ratio, 1)} | {_number(z.nesum, 1)} | "
        f"{_number(z.w2_uniformity, 2)} | {knn} | {findings} |"
    )


HEADER = (
    "| preset | seed | expected | verdict | onset | spread z | RankMe z | PR z | NESum z | "
    "W2 z | kNN h | findings |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--presets", default=",".join(PRESETS))
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--data-root", type=Path, default=Path("data"))
    parser.add_argument("--out", type=Path, default=Path("runs/check_verdicts"))
    parser.add_argument("--reuse", action="store_true", help="re-judge stored histories only")
    args = parser.parse_args()
    overrides = dict(parse_assignment(text) for text in args.overrides)
    args.out.mkdir(parents=True, exist_ok=True)
    print(HEADER, flush=True)
    for name in args.presets.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            path = args.out / f"{args.dataset}-{name}-s{seed}.json"
            if args.reuse and path.exists():
                history = json.loads(path.read_text())
            else:
                raw = {"preset": name, "dataset": args.dataset, "seed": seed}
                config = resolve_config({**raw, "epochs": args.epochs, **overrides})
                started = time.perf_counter()
                result = train(config, data_root=args.data_root)
                history = [record.model_dump() for record in result.history]
                path.write_text(json.dumps(history))
                print(f"<!-- {name} s{seed}: {time.perf_counter() - started:.0f} s -->")
            print(summary_line(name, seed, PRESETS[name].expected, history), flush=True)


if __name__ == "__main__":
    main()
