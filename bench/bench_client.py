"""Client overhead: the wall time ``Monitor.log_epoch`` takes inside a training loop.

Each epoch does ``--work-ms`` of stand-in training (numpy on the calling thread, which
competes with the upload thread for the GIL as a real loop's Python side does) and then
logs a 2,048 x 128 float32 probe. Prints the median and max of the log_epoch calls (wall
time, and the calling thread's CPU time, which other processes on a shared machine do not
inflate) and how long finish() waited for the uploads. Against the stand-in server of
tests/client/fake_server.py in its own process by default (``--delay-s`` makes it slow), or
a real server with ``--url``.

    python -m bench.bench_client [--epochs 50] [--work-ms 100] [--delay-s 0] [--url URL]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

try:
    import collapse_lab
except ImportError:  # not installed: use the source folder
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "client"))
    import collapse_lab


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--work-ms", type=float, default=100.0)
    parser.add_argument("--delay-s", type=float, default=0.0, help="stand-in server's delay")
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--d", type=int, default=128)
    parser.add_argument("--url", help="a real Collapse Lab server instead of the stand-in")
    parser.add_argument("--token")
    args = parser.parse_args()

    url, server = args.url, None
    if url is None:
        server = subprocess.Popen(
            [sys.executable, "-m", "tests.client.fake_server", "--delay-s", str(args.delay_s)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert server.stdout is not None
        url = server.stdout.readline().strip()
    rng = np.random.default_rng(0)
    weights = rng.standard_normal((256, 256)).astype(np.float32)
    costs, cpu = [], []
    with collapse_lab.Monitor(url, args.token, name="bench") as monitor:
        for epoch in range(args.epochs):
            deadline = time.perf_counter() + args.work_ms / 1000
            while time.perf_counter() < deadline:  # stand-in training step
                weights = np.tanh(weights * 1.01)
            z = rng.standard_normal((args.n, args.d)).astype(np.float32)
            start, start_cpu = time.perf_counter(), time.thread_time()
            monitor.log_epoch(epoch, z, loss=float(epoch))
            costs.append(time.perf_counter() - start)
            cpu.append(time.thread_time() - start_cpu)
        drain_start = time.perf_counter()
    drain = time.perf_counter() - drain_start
    stats = monitor.stats
    ms, cpu_ms = [c * 1000 for c in costs], [c * 1000 for c in cpu]
    print(
        f"log_epoch, {args.n} x {args.d} float32, {args.epochs} epochs of {args.work_ms:g} ms "
        f"work, server delay {args.delay_s:g} s"
    )
    print(f"  wall  median {statistics.median(ms):.2f} ms   max {max(ms):.2f} ms")
    print(f"  CPU   median {statistics.median(cpu_ms):.2f} ms   max {max(cpu_ms):.2f} ms")
    print(
        f"  finish() waited {drain:.2f} s; delivered {len(stats.delivered)}, "
        f"dropped {len(stats.dropped)}"
    )
    if server is not None:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
