"""The collapse maps of the README: two sweeps on digits on the CPU through the real service
(redis-server, API, two train workers, a projection worker), printed as tables and
screenshotted from the sweep page in Chromium (docs/screenshots/sweep-*.png).

1. VICReg variance_weight x covariance_weight (Bardes et al. 2022: without the variance term
   the embedding collapses to a point; without the covariance term dimensions go redundant).
2. BYOL predictor on/off x EMA base momentum (Grill et al. 2020, Table 5: no predictor or no
   EMA collapses; Chen & He 2021: with a predictor, no EMA is needed).

Every run uses the method's defaults on digits (small_cnn, 20 epochs, seed 0) and stops once
complete collapse has held 3 epochs (the sweep default). Run from the repository root:
``python -m bench.sweep_maps``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import sync_playwright

from bench.local_stack import local_stack
from tests.service.stack import REPO, wait_until

# The stack's test timeouts (5 s without a heartbeat = a dead worker) are for an idle
# machine; on a shared one a busy worker misses them and its run is requeued.
PATIENT_HEARTBEATS = {"HEARTBEAT_TIMEOUT_S": "120"}

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
}


def table(sweep: dict[str, Any]) -> str:
    first, second = sweep["axes"]
    lines = [
        f"| {first['key']} \\\\ {second['key']} | " + " | ".join(map(str, second["values"])) + " |",
        "| --- | " + " | ".join("---" for _ in second["values"]) + " |",
    ]
    for row, value in enumerate(first["values"]):
        cells = sweep["cells"][row * len(second["values"]) : (row + 1) * len(second["values"])]
        texts = []
        for cell in cells:
            kind = (cell["verdict_kind"] or "-").replace("_collapse", "")
            onset = f" @{cell['onset_epoch']}" if cell["onset_epoch"] is not None else ""
            spread = cell["final_spread"]
            rank = cell["final_effective_rank"]
            texts.append(f"{kind}{onset} (spread {spread:.2f}, rank {rank:.1f})")
        lines.append(f"| {value} | " + " | ".join(texts) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=list(SWEEPS), action="append")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    args = parser.parse_args()
    names = args.only or list(SWEEPS)
    with local_stack(workers=True, extra_env=PATIENT_HEARTBEATS) as stack:
        stack.start_worker("bench-train-2", "train")
        stack.wait_for_workers(train=2)
        with httpx.Client(base_url=stack.base_url, timeout=30) as client:
            created = {}
            started = time.perf_counter()
            for name in names:
                response = client.post("/api/sweeps", json=SWEEPS[name])
                response.raise_for_status()
                created[name] = response.json()["id"]

            def done() -> bool:
                sweeps = [client.get(f"/api/sweeps/{i}").json() for i in created.values()]
                return all(s["status"] == "finished" for s in sweeps)

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
                    print(f"\n{sweep['name']} ({sweep['runs_total']} runs)\n{table(sweep)}")
                    for cell in sweep["cells"]:
                        for run in cell["runs"]:
                            stopped = f", {run['stopped_early']}" if run["stopped_early"] else ""
                            print(f"  {cell['point']}: {run['verdict_kind']}{stopped}")
                    page.goto(f"{stack.base_url}/sweeps/{sweep_id}")
                    page.wait_for_function(
                        "document.getElementById('sweep-map')?.data !== undefined"
                    )
                    page.locator("#sweep-map").screenshot(path=str(args.out / f"sweep-{name}.png"))
                browser.close()


if __name__ == "__main__":
    main()
