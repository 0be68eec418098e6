"""A training job as a SLURM batch script would run it, for tests/service/test_workflow.py:
it logs synthetic probe embeddings that collapse epoch by epoch with ``collapse_lab.Monitor``
and nothing else (run with the client package alone on the path). SIGTERM, as SLURM sends it
at preemption, ends it through ``SystemExit`` (as Lightning's and most training scripts'
handlers do), so the monitor closes its run as failed on the way out; the requeued job, with
the same ``SLURM_JOB_ID``, continues that run.

    PREEMPTIBLE_JOB="--start 2 --last 8 --other-data-from 5" python preemptible_job.py URL

The options come from ``$PREEMPTIBLE_JOB``, not the command line, which a requeue repeats
(the default resume key digests it): they stand for what a requeued job reads from its
checkpoint. ``--start``: the first epoch logged (a restart from the checkpoint of that
epoch); ``--other-data-from``: epochs from there on get other data (training after a restart
is not bit-identical). Prints one JSON line when the run is registered and one with its
stats.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time

import collapse_lab
import numpy as np


def embeddings(epoch: int, seed: int) -> np.ndarray:
    """(128, 16): a shared vector plus a spread that halves every epoch."""
    rng = np.random.default_rng(seed * 10_000 + epoch)
    return 1.0 + 0.5**epoch * rng.standard_normal((128, 16))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--last", type=int, default=6)
    parser.add_argument("--other-data-from", type=int, default=None)
    parser.add_argument("--pause", type=float, default=0.0)
    args = parser.parse_args([*sys.argv[1:], *os.environ.get("PREEMPTIBLE_JOB", "").split()])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with collapse_lab.Monitor(args.url, name="preemptible", config={"lr": 0.1}) as monitor:
        started = {
            "run_id": monitor.run_id,
            "resumed": monitor.resumed,
            "last_stored_epoch": monitor.last_stored_epoch,
            "resume_key": monitor.resume_key,
        }
        print(json.dumps(started), flush=True)
        for epoch in range(args.start, args.last + 1):
            other = args.other_data_from is not None and epoch >= args.other_data_from
            loss = 1.0 / (1 + epoch) + (0.01 if other else 0.0)
            monitor.log_epoch(epoch, embeddings(epoch, seed=1 if other else 0), loss=loss)
            time.sleep(args.pause)
    stats = monitor.stats
    print(json.dumps({"delivered": stats.delivered, "dropped": stats.dropped}), flush=True)


if __name__ == "__main__":
    main()
