"""The verdict's cause on real short runs: hyperparameter-induced collapses and the zoo.

Trains each scenario (a preset, or a preset with one hyperparameter pushed past what its guard
withstands) on each dataset and seed, stores each run's history and config under ``--out``
(a stored run is judged again, not retrained: after a threshold changes; ``--stored``
judges only those, ``--retrain`` trains everything again) and
prints the markdown tables of docs/causes.md:

1. one row per run: verdict and onset, the cause's guard (✗ when it is not the one the
   scenario expects; ``undetermined`` is counted apart, never as right), its onset and
   reason (the numbers behind it);
2. early warning: for every collapsing run, how many epochs before the verdict's onset the
   "collapse coming" finding (``Trend.warning``) and a guard's measured signal (a check of
   workers/engine/cause.py firing on the record, configuration-read guards left out) first
   fired; for every healthy run, whether either fired at any epoch (a false alarm).

    python -m bench.causes --datasets digits,shapes --seeds 0,1   # trains: 10-60 min on 2 CPUs
    python -m bench.causes --stored                                      # re-judges
    python -m bench.make_photo_folder --root data                        # real photos, then
    python -m bench.causes --datasets photos --seeds 0 --scenarios ...   # on them
    python -m bench.causes --backbone resnet18 --out runs/causes-resnet18 --scenarios ...
    python -m bench.causes --epochs 150 --out runs/causes-150 --seeds 0 --scenarios ...
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract import METHOD_SPECS, PRESETS, EpochRecord, resolve_config
from workers.engine.cause import CONFIGURATION_GUARDS, configuration_of, guard_findings
from workers.engine.trainer import train
from workers.engine.verdict import epoch_verdict, run_verdict

# Tiny CPU settings shared by every run (over the presets' sizes; backbone small_cnn for DINO too).
SMALL = {
    "epochs": 10,
    "image_size": 16,
    "train_size": 512,
    "probe_size": 256,
    "lidar_every": 0,
    "backbone": "small_cnn",
    "batch_size": 64,
}


@dataclass(frozen=True)
class Scenario:
    name: str
    request: dict[str, Any]
    guard: str | None  # the guard a collapse should be blamed on; None: should stay healthy
    why: str


HYPERPARAMETERS = [
    Scenario(
        "simsiam-wd",
        {"preset": "simsiam", "weight_decay": 1.0},
        "weight_decay",
        "weight decay 1.0, 2000x SimSiam's 5e-4 (Tian et al. 2021, Sec. 4)",
    ),
    Scenario(
        "byol-wd",
        {"preset": "byol", "weight_decay": 1.0},
        "weight_decay",
        "weight decay 1.0, 2000x BYOL's 5e-4",
    ),
    # Where weight decay starts to collapse at this scale (80 steps), and the optimisers on
    # which lr x wd predicts nothing (docs/causes.md, "Weight decay and the optimiser").
    Scenario(
        "simsiam-wd-0.1",
        {"preset": "simsiam", "weight_decay": 0.1},
        "weight_decay",
        "weight decay 0.1, 200x SimSiam's (peak lr x wd 4.9e-3)",
    ),
    Scenario(
        "byol-wd-0.05",
        {"preset": "byol", "weight_decay": 0.05},
        "weight_decay",
        "weight decay 0.05, 100x BYOL's (peak lr x wd 3.7e-3)",
    ),
    Scenario(
        "simsiam-wd-0.05",
        {"preset": "simsiam", "weight_decay": 0.05},
        None,
        "control: weight decay 0.05 (peak lr x wd 2.5e-3)",
    ),
    Scenario(
        "simsiam-adamw-wd",
        {"preset": "simsiam", "optimizer": "adamw", "lr": 0.12, "weight_decay": 1.0},
        "learning_rate",
        "AdamW at lr 3e-2 with weight decay 1.0 (peak lr x wd 2.9e-2): collapses as without it",
    ),
    Scenario(
        "simsiam-adamw",
        {"preset": "simsiam", "optimizer": "adamw", "lr": 0.12, "weight_decay": 0.0},
        "learning_rate",
        "control: AdamW at lr 3e-2 without weight decay",
    ),
    Scenario(
        "simsiam-lars-wd",
        {"preset": "simsiam", "optimizer": "lars", "weight_decay": 1.0},
        None,
        "LARS with weight decay 1.0 (peak lr x wd 4.9e-2): its trust ratio bounds the step",
    ),
    Scenario(
        "dino-teacher-temp",
        {
            "preset": "dino",
            "options": {"teacher_temperature": 0.1, "warmup_teacher_temperature": 0.1},
        },
        "sharpening",
        "teacher temperature raised to the student's 0.1",
    ),
    Scenario(
        "swav-large-eps",
        {"preset": "swav", "options": {"epsilon": 1.0}},
        "balancing",
        "Sinkhorn epsilon 1.0 (SwAV: 0.05)",
    ),
    Scenario(
        "swav-1-iteration",
        {"preset": "swav", "options": {"sinkhorn_iterations": 1, "epsilon": 0.5}},
        "balancing",
        "one Sinkhorn iteration with epsilon 0.5",
    ),
    # A learning rate 10-50x the preset's: `learning_rate` has no check, so a collapse here
    # should read undetermined (docs/causes.md, "Learning rate").
    Scenario(
        "simsiam-lr-10x",
        {"preset": "simsiam", "lr": 2.0},
        "learning_rate",
        "base learning rate 2.0, 10x SimSiam's 0.2",
    ),
    Scenario(
        "simsiam-lr-50x",
        {"preset": "simsiam", "lr": 10.0},
        "learning_rate",
        "base learning rate 10, 50x SimSiam's 0.2 (the config's ceiling)",
    ),
    Scenario(
        "byol-lr-10x",
        {"preset": "byol", "lr": 3.0},
        "learning_rate",
        "base learning rate 3.0, 10x BYOL's 0.3",
    ),
    Scenario(
        "byol-lr-33x",
        {"preset": "byol", "lr": 10.0},
        "learning_rate",
        "base learning rate 10, 33x BYOL's 0.3 (the config's ceiling)",
    ),
    # DirectPred (Tian, Chen & Ganguli, ICML 2021, Table 3): a symmetric linear predictor with a
    # too-fast EMA target collapses. The controls (a free linear predictor, a symmetric one with
    # BYOL's slow EMA, the MLP predictor with the fast EMA) tell which guard a collapse hinges
    # on: at this scale every linear predictor collapsed whatever the EMA, the MLP at none, so
    # the guard these runs point at is the predictor (docs/causes.md). The diagnosis names it
    # only at BYOL's slow EMA: with a fast one the paper's answer (the EMA) fits as well.
    Scenario(
        "byol-symmetric-fast-ema",
        {"preset": "byol", "options": {"predictor_kind": "symmetric", "base_momentum": 0.9}},
        "predictor",
        "a symmetric linear predictor W_p = (W + W^T)/2 with EMA base momentum 0.9 (BYOL: an "
        "MLP, 0.99)",
    ),
    Scenario(
        "byol-symmetric-no-ema",
        {"preset": "byol", "options": {"predictor_kind": "symmetric", "base_momentum": 0.0}},
        "predictor",
        "a symmetric linear predictor with no EMA (base momentum 0: the target is the online "
        "network)",
    ),
    Scenario(
        "byol-linear-fast-ema",
        {"preset": "byol", "options": {"predictor_kind": "linear", "base_momentum": 0.9}},
        "predictor",
        "control: a free linear predictor (not symmetrised) with EMA base momentum 0.9",
    ),
    Scenario(
        "byol-symmetric",
        {"preset": "byol", "options": {"predictor_kind": "symmetric"}},
        "predictor",
        "control: a symmetric linear predictor with BYOL's EMA base momentum 0.99",
    ),
    Scenario(
        "byol-fast-ema",
        {"preset": "byol", "options": {"base_momentum": 0.9}},
        None,
        "control: BYOL's MLP predictor with EMA base momentum 0.9",
    ),
    Scenario(
        "vicreg-small-variance",
        {"preset": "vicreg", "options": {"variance_weight": 0.1}},
        "variance_term",
        "variance weight 0.1 (VICReg: 25)",
    ),
]

# The guard each collapsing preset switches off (docs/causes.md); healthy presets: None.
PRESET_GUARDS: dict[str, str | None] = {
    "simsiam-no-stopgrad": "stop_gradient",
    "simsiam-no-predictor": "predictor",
    "byol-no-ema": "target_network",
    "byol-no-predictor": "predictor",
    "simclr-no-negatives": "negatives",
    "swav-no-sinkhorn": "balancing",
    "deepcluster-no-reassign": "balancing",
    "barlow-no-offdiag": "decorrelation",
    "vicreg-no-variance": "variance_term",
    "vicreg-no-covariance": "decorrelation",
    "dino-no-centering": "centering",
    "dino-no-sharpening": "sharpening",
    "dino-no-momentum": "target_network",
    "ijepa-no-ema": "target_network",
    "lejepa-no-sigreg": "variance_term",
}
# A method that trains only on some backbones (I-JEPA: vit_tiny) gets the first, this small.
TINY_VIT = {"vit_dim": 48, "vit_depth": 2}


def _preset_request(name: str) -> dict[str, Any]:
    backbones = METHOD_SPECS[PRESETS[name].config["method"]].backbones
    if not backbones:
        return {"preset": name}
    return {"preset": name, "backbone": backbones[0], **TINY_VIT}


PRESET_SCENARIOS = [
    Scenario(name, _preset_request(name), PRESET_GUARDS.get(name), PRESETS[name].description)
    for name in PRESETS
]


@dataclass
class Judged:
    scenario: Scenario
    dataset: str
    seed: int
    history: list[EpochRecord]
    configuration: dict[str, Any]

    @property
    def verdict(self) -> Any:
        return run_verdict(self.history, configuration=self.configuration)

    def first_warning(self) -> int | None:
        """First epoch whose verdict, still healthy, warned of a collapse coming."""
        for end in range(1, len(self.history) + 1):
            verdict = epoch_verdict(self.history[:end])
            if verdict.kind == "healthy" and verdict.trend.warning:
                return self.history[end - 1].epoch
        return None

    def first_signal(self) -> tuple[int, str] | None:
        """First epoch at which a guard's measured signal fired, and the guard (a named one:
        a signature the check cannot pin on one guard is no signal)."""
        for end in range(2, len(self.history) + 1):
            prefix = self.history[:end]
            kind = epoch_verdict(prefix).kind
            found, _ = guard_findings(prefix, kind, self.configuration)
            measured = [f for f in found if f.guard not in (*CONFIGURATION_GUARDS, "undetermined")]
            if measured:
                return prefix[-1].epoch, measured[0].guard
        return None


# "photos": the folder of real photographs `python -m bench.make_photo_folder --root DATA`
# builds under the data root (--data-root).
DATASET_FIELDS: dict[str, dict[str, str]] = {
    "photos": {"dataset": "imagefolder", "dataset_path": "photos"},
}


def run_scenario(
    scenario: Scenario,
    dataset: str,
    seed: int,
    out: Path,
    retrain: bool,
    data_root: Path,
    settings: dict[str, Any],
) -> Judged:
    path = out / f"{dataset}-{scenario.name}-s{seed}.json"
    if path.exists() and not retrain:
        stored = json.loads(path.read_text())
    else:
        fields = DATASET_FIELDS.get(dataset, {"dataset": dataset})
        raw = {**settings, **scenario.request, **fields, "seed": seed}
        if "options" in scenario.request:
            preset = PRESETS[scenario.request["preset"]].config.get("options", {})
            raw["options"] = {**preset, **scenario.request["options"]}
        config = resolve_config(raw)
        started = time.perf_counter()
        result = train(config, data_root=data_root)
        stored = {
            "config": config.model_dump(mode="json"),
            "history": [r.model_dump(mode="json") for r in result.history],
            "seconds": time.perf_counter() - started,
        }
        path.write_text(json.dumps(stored))
    history = [EpochRecord.model_validate(r) for r in stored["history"]]
    return Judged(scenario, dataset, seed, history, configuration_of(stored["config"]))


def _cause_row(run: Judged) -> str:
    verdict = run.verdict
    cause = verdict.cause
    kind = verdict.kind.replace("_collapse", "")
    onset = f"@{verdict.onset_epoch}" if verdict.onset_epoch is not None else ""
    if cause is None:
        guard, mark, cause_onset, reason = "—", "", "", "—"
    else:
        guard, cause_onset, reason = cause.guard, cause.onset_epoch, cause.reason
        expected = run.scenario.guard
        mark = "" if guard in (expected, "undetermined") else " ✗"
    reason = reason.replace("|", "/")
    return (
        f"| {run.scenario.name} | {run.dataset} | {run.seed} | {kind}{onset} | "
        f"{guard}{mark} | {cause_onset if cause_onset is not None else ''} | {reason} |"
    )


def _name(run: Judged) -> str:
    return f"{run.scenario.name}/{run.dataset}/s{run.seed}"


def _lead(onset: int | None, fired: int | None) -> int | None:
    """Epochs from a signal's first firing to the onset; None if it fired after (or never)."""
    if onset is None or fired is None or fired > onset:
        return None
    return onset - fired


def _text(value: int | None) -> str:
    return "—" if value is None else str(value)


# The signals each guard's check reads, in the calibration table (last epoch of each run).
CALIBRATION: list[tuple[str, Callable[[EpochRecord], float | None] | None]] = [
    ("h/lnK", lambda r: _share(r, "teacher_entropy")),
    ("KL/lnK", lambda r: _share(r, "teacher_student_kl")),
    ("τ EMA", lambda r: r.ema_momentum),
    ("target dist", lambda r: r.logs.get("target_param_distance")),
    ("online-target cos", lambda r: r.logs.get("online_target_cosine")),
    ("eff. negatives", lambda r: r.logs.get("effective_negatives")),
    ("usage after/lnK", lambda r: _share(r, "usage_entropy_after_balancing")),
    ("assignment/lnK", lambda r: _share(r, "assignment_entropy")),
    ("under hinge", lambda r: r.logs.get("dims_under_variance_hinge")),
    ("off-diag energy", lambda r: r.logs.get("off_diagonal_energy")),
    ("peak lr×wd", None),  # over the run: peak_shrink
]


def _share(record: EpochRecord, name: str) -> float | None:
    value = record.logs.get(name)
    log_k = record.logs.get("log_k")
    if log_k is None and record.projector.num_prototypes:
        log_k = math.log(record.projector.num_prototypes)
    return None if value is None or not log_k else value / log_k


def peak_shrink(run: Judged) -> float | None:
    shrinks = [
        r.lr * r.logs["weight_decay"]
        for r in run.history[1:]
        if r.lr is not None and "weight_decay" in r.logs
    ]
    return max(shrinks) if shrinks else None


def signals_table(runs: list[Judged]) -> str:
    """The signals each check reads, at the last epoch of every run (calibration)."""
    lines = [
        "| run | dataset | seed | verdict | " + " | ".join(n for n, _ in CALIBRATION) + " |",
        "|---|---|---|---|" + "---|" * len(CALIBRATION),
    ]
    for run in runs:
        last = run.history[-1]
        values = [peak_shrink(run) if read is None else read(last) for _, read in CALIBRATION]
        cells = " | ".join("" if v is None else f"{v:.3g}" for v in values)
        lines.append(
            f"| {run.scenario.name} | {run.dataset} | {run.seed} | "
            f"{run.verdict.kind.replace('_collapse', '')} | {cells} |"
        )
    return "\n".join(lines)


def report(runs: list[Judged]) -> str:
    lines = [
        "| run | dataset | seed | verdict | cause | cause onset | reason |",
        "|---|---|---|---|---|---|---|",
        *(_cause_row(run) for run in runs),
        "",
    ]
    collapsed = [r for r in runs if r.verdict.kind != "healthy"]
    healthy = [r for r in runs if r.verdict.kind == "healthy"]
    named = [r for r in collapsed if r.verdict.cause and r.verdict.cause.guard != "undetermined"]
    right = [r for r in named if r.verdict.cause and r.verdict.cause.guard == r.scenario.guard]
    lines += [
        f"Collapsed runs: {len(collapsed)}; cause named: {len(named)} ({len(right)} the "
        f"scenario's guard, {len(named) - len(right)} another); undetermined: "
        f"{len(collapsed) - len(named)}. Healthy runs: {len(healthy)}, cause null: "
        f"{sum(r.verdict.cause is None for r in healthy)}.",
        "",
        "| collapsing run | dataset | seed | onset | warning at | lead (epochs) | "
        "signal at | guard | lead (epochs) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    warning_leads: list[int | None] = []
    signal_leads: list[int | None] = []
    for run in collapsed:
        onset = run.verdict.onset_epoch
        warning = run.first_warning()
        signal = run.first_signal()
        fired = signal[0] if signal else None
        warning_leads.append(_lead(onset, warning))
        signal_leads.append(_lead(onset, fired))
        lines.append(
            f"| {run.scenario.name} | {run.dataset} | {run.seed} | {onset} | "
            f"{_text(warning)} | {_text(warning_leads[-1])} | "
            f"{_text(fired)} | {signal[1] if signal else '—'} | {_text(signal_leads[-1])} |"
        )
    lines.append("")
    for name, leads in (
        ("collapse coming (Trend.warning)", warning_leads),
        ("guard signal", signal_leads),
    ):
        by_onset = [lead for lead in leads if lead is not None]
        ahead = [lead for lead in by_onset if lead > 0]
        median = statistics.median(ahead) if ahead else 0
        lines.append(
            f"- {name}: fired by the onset in {len(by_onset)} of {len(leads)} collapsing runs, "
            f"before it in {len(ahead)} (median lead {median} epochs, max "
            f"{max(ahead, default=0)})."
        )
    warned = [_name(r) for r in healthy if r.first_warning() is not None]
    signalled = [_name(r) for r in healthy if r.first_signal() is not None]
    lines.append(
        f"- false alarms on the {len(healthy)} runs that stayed healthy: collapse coming "
        f"{len(warned)} ({', '.join(warned) or 'none'}), guard signal {len(signalled)} "
        f"({', '.join(signalled) or 'none'})."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="digits,shapes")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument(
        "--scenarios",
        default="all",
        help="comma-separated scenario names (hyperparameter ones and presets); all = every one",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/causes"))
    parser.add_argument(
        "--stored", action="store_true", help="re-judge the stored histories, train none"
    )
    parser.add_argument("--retrain", action="store_true", help="train even where stored")
    parser.add_argument(
        "--data-root", type=Path, default=Path("data"), help="where 'photos' is (and downloads)"
    )
    parser.add_argument(
        "--backbone",
        default=SMALL["backbone"],
        help="for every method that takes it (I-JEPA keeps its ViT); store under its own --out",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=SMALL["epochs"],
        help="training epochs of every run (longer runs: store them under their own --out)",
    )
    args = parser.parse_args()
    settings = {**SMALL, "backbone": args.backbone, "epochs": args.epochs}
    scenarios = [*HYPERPARAMETERS, *PRESET_SCENARIOS]
    if args.scenarios != "all":
        wanted = set(args.scenarios.split(","))
        scenarios = [s for s in scenarios if s.name in wanted]
    args.out.mkdir(parents=True, exist_ok=True)
    runs = []
    for scenario in scenarios:
        for dataset in args.datasets.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                stored = (args.out / f"{dataset}-{scenario.name}-s{seed}.json").exists()
                if args.stored and not stored:
                    continue
                run = run_scenario(
                    scenario, dataset, seed, args.out, args.retrain, args.data_root, settings
                )
                runs.append(run)
                print(_cause_row(run), flush=True)
    print()
    print(report(runs))
    print()
    print(signals_table(runs))


if __name__ == "__main__":
    main()
