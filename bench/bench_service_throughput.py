"""Training throughput through the service vs the engine's command line, same config.

(a) CLI: ``collapse-lab train ... --jsonl`` in a subprocess (no server, no checkpoints),
    with exactly the worker's environment (same thread settings).
(b) Service: a real redis-server, API, train worker and projection worker (UMAP of every
    epoch, niced); the run is launched with ``POST /api/runs`` and trained by the worker,
    with heartbeats, per-epoch checkpoints, database writes and live events.
Both report ``images_per_s`` per epoch (training steps only, measured by the trainer); the
figure is the mean over epochs 1..E. Rounds alternate CLI, service, service, CLI to share out
the drift of a busy machine. Prints both and the ratio service / CLI (target >= 0.95).

Run from the repository root: ``python -m bench.bench_service_throughput [--epochs 4]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.local_stack import local_stack
from tests.service.stack import REPO, ServiceStack, wait_until


def config(epochs: int) -> dict[str, Any]:
    return {
        "method": "simsiam",
        "dataset": "digits",
        "backbone": "small_cnn",
        "epochs": epochs,
        "batch_size": 256,
        "probe_size": 512,
        "seed": 0,
    }


def mean_throughput(records: list[dict[str, Any]]) -> float:
    return statistics.fmean(r["images_per_s"] for r in records if r["epoch"] >= 1)


def cli_round(epochs: int, workdir: Path, env: dict[str, str]) -> float:
    jsonl = workdir / "cli.jsonl"
    settings = config(epochs)
    command = [
        sys.executable,
        "-m",
        "workers.cli",
        "--data-dir",
        str(workdir / "data"),
        "train",
        "--method",
        "simsiam",
        "--dataset",
        "digits",
        "--epochs",
        str(epochs),
        "--batch-size",
        str(settings["batch_size"]),
        "--seed",
        "0",
        "--set",
        f"probe_size={settings['probe_size']}",
        "--jsonl",
        str(jsonl),
    ]
    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL, env=env)
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    return mean_throughput([r for r in records if "epoch" in r])


def service_round(stack: ServiceStack, epochs: int) -> float:
    with httpx.Client(base_url=stack.base_url, timeout=30) as client:
        run = client.post("/api/runs", json=config(epochs)).json()

        def finished() -> bool:
            return client.get(f"/api/runs/{run['id']}").json()["status"] in (
                "succeeded",
                "failed",
            )

        wait_until(finished, 1800, interval=1, what="the service run")
        detail = client.get(f"/api/runs/{run['id']}").json()
        if detail["status"] != "succeeded":
            raise RuntimeError(f"the service run failed: {detail['error']}")
        return mean_throughput(client.get(f"/api/runs/{run['id']}/epochs").json())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    extra_env = {"HEARTBEAT_INTERVAL_S": "2", "PROGRESS_INTERVAL_S": "0.25"}
    with local_stack(workers=True, extra_env=extra_env) as stack:
        cli, service = [], []
        for order in ("cli", "service", "service", "cli"):
            started = time.perf_counter()
            if order == "cli":
                cli.append(cli_round(args.epochs, stack.workdir, stack.env()))
                value = cli[-1]
            else:
                service.append(service_round(stack, args.epochs))
                value = service[-1]
            print(f"{order:8s} {value:8.1f} images/s  ({time.perf_counter() - started:.0f} s)")
    cli_mean, service_mean = statistics.fmean(cli), statistics.fmean(service)
    print(f"CLI      {cli_mean:8.1f} images/s (mean of {len(cli)} rounds)")
    print(f"service  {service_mean:8.1f} images/s (mean of {len(service)} rounds)")
    print(f"ratio service / CLI: {service_mean / cli_mean:.3f}  (target >= 0.95)")


if __name__ == "__main__":
    main()
