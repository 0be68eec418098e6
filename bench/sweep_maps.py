"""The collapse maps of the README: sweeps on digits on the CPU through the real service
(redis-server, API, two train workers, a projection worker), printed as tables and
screenshotted from the sweep page in Chromium (docs/screenshots/sweep-*.png).

1. VICReg variance_weight x covariance_weight (Bardes et al. 2022: without the variance term
   the embedding collapses to a point; without the covariance term dimensions go redundant).
2. BYOL predictor on/off x EMA base momentum (Grill et al. 2020, Table 5: no predictor or no
   EMA collapses; Chen & He 2021: with a predictor, no EMA is needed).
3. LeJEPA SIGReg weight lambda x views (Balestriero & LeCun 2025: lambda = 0 leaves only the
   views' agreement, which every image satisfies at one point).
4. DINO teacher temperature x centre momentum (Caron et al. 2021, Sec. 5.3 and Fig. 7: a
   teacher as warm as the student (0.1) is not sharpened and drifts to uniform; the centre
   is what keeps one prototype from taking all).
5. I-JEPA target momentum x stop-gradient (Assran et al. 2023 rely on the slow target;
   without the stop-gradient a target that is the context encoder is trained towards the
   predictions too).

Every run uses the preset's defaults on digits (small_cnn, seed 0), the first two for 20
epochs at 32 px, the new two on a smaller budget (a run of about a minute on a busy 2-core
CPU), and stops once complete collapse has held 3 epochs (the sweep default). The tables
also give each run's method signals from its last epoch record (``logs``: DINO's teacher
entropy and teacher-student KL, LeJEPA's loss terms), read from ``/api/runs/<id>/epochs``.
Run from the repository root: ``python -m bench.sweep_maps [--only lejepa,dino]``.
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import sync_playwright

from bench.local_stack import local_stack
from tests.service.stack import REPO, wait_until

# The stack's test timeouts (5 s without a heartbeat = a dead worker) are for an idle
# machine; on a shared one a busy worker misses them and its run is requeued.
PATIENT_HEARTBEATS = {"HEARTBEAT_TIMEOUT_S": "120"}

# The budget of the LeJEPA and DINO maps: about a minute a run on a busy 2-core CPU.
SMALL = {"dataset": "digits", "backbone": "small_cnn", "image_size": 32, "train_size": 512}

SWEEPS: dict[str, dict[str, Any]] = {
    "vicreg": {
        "name": "VICReg: variance weight x covariance weight (digits)",
        "base": {"preset": "vicreg", "dataset": "digits", "epochs": 20},
        "grid": {"variance_weight": [0, 1, 25], "covariance_weight": [0, 1]},
        "seeds": [0],
        "concurrency": 2,
    },
    "byol": {
        "name": "BYOL: predictor x EMA base momentum (digits)",
        "base": {"preset": "byol", "dataset": "digits", "epochs": 20},
        "grid": {"predictor": [True, False], "base_momentum": [0, 0.9, 0.996]},
        "seeds": [0],
        "concurrency": 2,
    },
    "lejepa": {
        "name": "LeJEPA: SIGReg weight x views (digits)",
        "base": {"preset": "lejepa", **SMALL, "epochs": 15, "batch_size": 64},
        "grid": {"sigreg_weight": [0, 0.01, 0.05, 0.2], "views": [2, 4]},
        "seeds": [0],
        "concurrency": 2,
    },
    "dino": {
        "name": "DINO: teacher temperature x centre momentum (digits, small_cnn)",
        # the preset's own CPU settings (16 px, the whole training split): at 32 px on 512
        # images even the healthy preset collapses (README, "DINO on a small ViT")
        "base": {"preset": "dino", "dataset": "digits", "epochs": 12},
        "grid": {"teacher_temperature": [0.04, 0.07, 0.1], "center_momentum": [0, 0.9, 0.99]},
        "seeds": [0],
        "concurrency": 2,
    },
    "ijepa": {
        "name": "I-JEPA: target momentum x stop-gradient (digits, 48-wide 2-block ViT)",
        # bench/causes.py's I-JEPA budget: the smallest ViT that trains in about a minute
        "base": {
            "preset": "ijepa",
            **SMALL,
            "backbone": "vit_tiny",
            "image_size": 16,
            "vit_dim": 48,
            "vit_depth": 2,
            "epochs": 10,
            "batch_size": 64,
        },
        "grid": {"target_momentum": [0, 0.9, 0.996], "stop_gradient": [True, False]},
        "seeds": [0],
        "concurrency": 2,
    },
}

# The method signals of each map's table, under a column title: the last epoch record's logs
# (training terms and probe_logs of workers/engine/methods/lejepa.py and dino.py).
SIGNALS: dict[str, dict[str, str]] = {
    "lejepa": {"prediction": "prediction", "sigreg": "SIGReg", "sigreg_statistic": "SIGReg probe"},
    "dino": {"teacher_entropy": "h(P_t)", "teacher_student_kl": "KL(P_t‖P_s)"},
    "ijepa": {
        "target_param_distance": "target distance",
        "online_target_cosine": "online–target cos",
        "rank_differential": "rank diff.",
    },
}


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _run_row(client: httpx.Client, run: dict[str, Any], signals: dict[str, str]) -> list[str]:
    """A run's verdict, cause, final z and h metrics, kNN from epoch 0 and its signals."""
    records = client.get(f"/api/runs/{run['id']}/epochs").json()
    detail = client.get(f"/api/runs/{run['id']}").json()
    final = run["final"] or {}
    kind = (run["verdict_kind"] or "-").replace("_collapse", "")
    onset = f" @{run['onset_epoch']}" if run["onset_epoch"] is not None else ""
    stopped = f" (stopped at {run['last_epoch']})" if run["stopped_early"] else ""
    cause = run["cause"]["guard"] if run["cause"] else "-"
    first_knn = (records[0].get("backbone") or {}).get("knn_top1") if records else None
    logs = records[-1].get("logs", {}) if records else {}
    seconds = "-"
    if detail.get("started_at") and detail.get("finished_at"):
        started = datetime.fromisoformat(detail["started_at"])
        elapsed = datetime.fromisoformat(detail["finished_at"]) - started
        seconds = f"{elapsed.total_seconds():.0f}"
    return [
        f"{kind}{onset}{stopped}",
        cause,
        _number(final.get("std_l2_sqrt_d")),
        _number(final.get("effective_rank")),
        f"{_number(first_knn)} → {_number(final.get('knn_top1'))}",
        *(_number(logs.get(key)) for key in signals),
        seconds,
    ]


def table(client: httpx.Client, name: str, sweep: dict[str, Any]) -> str:
    """One markdown row per run: grid values, verdict (@ onset), cause, std·√d and effective
    rank of z, kNN top-1 of h at epoch 0 and last, the map's signals, seconds of training."""
    signals = SIGNALS.get(name, {})
    keys = [axis["key"] for axis in sweep["axes"]]
    header = [*keys, "seed", "verdict", "cause", "std·√d z", "rank z", "kNN h 0 → last"]
    header += [*signals.values(), "s"]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    for cell in sweep["cells"]:
        for run in cell["runs"]:
            values = [str(cell["point"][key]) for key in keys] + [str(run["seed"])]
            values += _run_row(client, run, signals)
            lines.append("| " + " | ".join(values) + " |")
    return "\n".join(lines)


def _names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SWEEPS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"choose among {', '.join(SWEEPS)}; got {text!r}")
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--only", type=_names, help=f"comma-separated maps to make, of {', '.join(SWEEPS)}"
    )
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    args = parser.parse_args()
    names = args.only or list(SWEEPS)
    with local_stack(workers=True, extra_env=PATIENT_HEARTBEATS) as stack:
        stack.start_worker("bench-train-2", "train")
        stack.wait_for_workers(train=2)
        with httpx.Client(base_url=stack.base_url, timeout=30) as client:
            for name in names:  # the grid as the server expands it, before anything runs
                response = client.post("/api/sweeps/preview", json=SWEEPS[name])
                response.raise_for_status()
                axes = {a["field"]: a["values"] for a in response.json()["axes"]}
                print(f"{name}: {response.json()['runs']} runs over {axes}")
            created, finished = {}, {}
            started = time.perf_counter()
            for name in names:
                response = client.post("/api/sweeps", json=SWEEPS[name])
                response.raise_for_status()
                created[name] = response.json()["id"]

            def done() -> bool:
                for name, sweep_id in created.items():
                    status = client.get(f"/api/sweeps/{sweep_id}").json()["status"]
                    if status == "finished" and name not in finished:
                        finished[name] = time.perf_counter() - started
                return len(finished) == len(created)

            wait_until(done, 7200, interval=5, what="the sweeps")
            print(f"all sweeps finished in {time.perf_counter() - started:.0f} s")
            args.out.mkdir(parents=True, exist_ok=True)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox"]
                )
                page = browser.new_page(viewport={"width": 1100, "height": 800})
                for name, sweep_id in created.items():
                    sweep = client.get(f"/api/sweeps/{sweep_id}").json()
                    print(
                        f"\n{sweep['name']} ({sweep['runs_total']} runs, finished after "
                        f"{finished[name]:.0f} s)\n{table(client, name, sweep)}"
                    )
                    for cell in sweep["cells"]:
                        for run in cell["runs"]:
                            stopped = f", {run['stopped_early']}" if run["stopped_early"] else ""
                            reason = f"; {run['cause']['reason']}" if run["cause"] else ""
                            print(f"  {cell['point']}: {run['verdict_kind']}{stopped}{reason}")
                    page.goto(f"{stack.base_url}/sweeps/{sweep_id}")
                    page.wait_for_function(
                        "document.getElementById('sweep-map')?.data !== undefined"
                    )
                    page.locator("#sweep-map").screenshot(path=str(args.out / f"sweep-{name}.png"))
                browser.close()


if __name__ == "__main__":
    main()
