"""The image-folder cache on a large generated folder: decode once, start fast, stay small.

    python -m bench.bench_dataset_cache --count 200000 --steps 8   # the README's figures
    python -m bench.bench_dataset_cache                             # 20,000 images (make bench)

Writes ``--count`` images of ``--size`` px (bench/make_large_folder.py, 2 processes at low
priority; skipped when the folder is there) under ``--root``, then measures, each phase in a
fresh process (so that one's memory does not count in the next):

- first-run decode: ``load_splits`` with no cache (workers/engine/image_cache.py decodes every
  file once, in threads, into ``<root>/cache/``);
- later start-up: ``load_splits`` again (lists and stats the files, opens the memory map);
- the old path's start-up: decoding image by image into one tensor, as every run did before
  the cache, timed on ``--old-subset`` images and scaled to the folder;
- reading: ``--read-batches`` training batches (random order, ``--batch`` images, after one
  untimed) from the memory map and from the same training set held in memory as one tensor
  (today's path for in-memory datasets), in images/s;
- training: ``--steps`` steps (after one untimed) of a real run (simsiam, small_cnn)
  reading from the memory map, then the same run with the set held in memory: images/s and
  the peak resident memory (RSS: anonymous, i.e. the process's own, and file-backed, i.e.
  mapped pages the kernel may drop).

Prints one line per figure and a last line of JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path("/tmp/collapse_lab_bench/data")


def memory_mib() -> dict[str, float]:
    """This process's resident memory now (MiB): total, anonymous, file-backed, and peak."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


class PeakMemory:
    """Samples :func:`memory_mib` every 0.1 s in a thread; keeps the peaks."""

    def __init__(self) -> None:
        self.peak = {"VmRSS": 0.0, "RssAnon": 0.0, "RssFile": 0.0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            now = memory_mib()
            for key in self.peak:
                self.peak[key] = max(self.peak[key], now[key])

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def config(args: argparse.Namespace, **fields: Any) -> Any:
    from contract import resolve_config

    return resolve_config(
        {
            "method": "simsiam",
            "dataset": "imagefolder",
            "dataset_path": args.name,
            "image_size": args.size,
            "probe_size": args.probe,
            "batch_size": args.batch,
            "width": 16,
            "lidar_every": 0,
            "epochs": 1,
            **fields,
        }
    )


def load_in_memory(request: Any) -> Any:
    """A dataset loader (registered by the ``train-memory`` phase): the image folder held
    in memory as one tensor, as every image folder was before the cache."""
    from workers.engine.datasets.imagefolder import load_imagefolder

    return load_imagefolder(request).in_memory()


def phase_decode(args: argparse.Namespace) -> dict[str, Any]:
    from workers.engine.data import load_splits

    shutil.rmtree(args.root / "cache", ignore_errors=True)
    started = time.perf_counter()
    train, probe = load_splits(config(args), args.root)
    return {
        "decode_s": time.perf_counter() - started,
        "images": len(train) + len(probe),
        "cache_mib": sum(p.stat().st_size for p in (args.root / "cache").glob("*")) / 2**20,
        "peak_rss_mib": memory_mib()["VmHWM"],
    }


def phase_startup(args: argparse.Namespace) -> dict[str, Any]:
    from workers.engine.data import load_splits

    started = time.perf_counter()
    train, _ = load_splits(config(args), args.root)
    return {"startup_s": time.perf_counter() - started, "train_images": len(train)}


def phase_old_decode(args: argparse.Namespace) -> dict[str, Any]:
    """Image by image into a list, then one tensor: the loader as it was (one thread)."""
    import torch

    from workers.engine.datasets.imagefolder import decode_image, list_images

    folder = args.root / args.name
    _, files, _, _ = list_images(folder, args.root)
    step = max(1, len(files) // args.old_subset)
    chosen = [folder / name for name in files[::step][: args.old_subset]]
    started = time.perf_counter()
    images = torch.stack([torch.from_numpy(decode_image(f, args.size)) for f in chosen])
    seconds = time.perf_counter() - started
    return {
        "old_decode_images": len(images),
        "old_decode_s": seconds,
        "old_startup_s_scaled": seconds * len(files) / len(images),
    }


def phase_read(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from workers.engine.data import load_splits
    from workers.engine.images import DeviceImages, TensorImages

    train, _ = load_splits(config(args), args.root)
    device = torch.device("cpu")
    steps = args.read_batches
    result: dict[str, Any] = {}
    for label, store in (("memmap", train.store), ("memory", None)):
        if store is None:
            store = TensorImages(train.images)  # 1 copy of the training set in memory
        images = DeviceImages(store, device)
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
        batches = images.batches(order, args.batch, steps + 1)
        next(batches)  # the first batch starts threads and pays first-call costs: not timed
        started = time.perf_counter()
        for _, batch in batches:
            assert batch.shape[0] == args.batch
        result[f"read_{label}_img_s"] = steps * args.batch / (time.perf_counter() - started)
        result[f"read_{label}_rss_mib"] = memory_mib()
    return result


def phase_train(args: argparse.Namespace, in_memory: bool) -> dict[str, Any]:
    from contract import DatasetSpec
    from contract.datasets import DATASET_SPECS, register_dataset
    from workers.engine.errors import RunCancelled
    from workers.engine.trainer import TrainHooks, train

    dataset = "imagefolder"
    if in_memory:
        dataset = "imagefolder-in-memory"
        base = DATASET_SPECS["imagefolder"]
        register_dataset(
            DatasetSpec(
                name=dataset,
                title="Image folder held in memory",
                loader="bench.bench_dataset_cache:load_in_memory",
                probe=base.probe,
                takes_path=True,
            )
        )
    started = time.perf_counter()
    step_ends: list[float] = []  # seconds since start at the end of each step

    def on_progress(epoch: int, step: int, steps: int, images_per_s: float) -> None:
        step_ends.append(time.perf_counter() - started)

    hooks = TrainHooks(
        on_progress=on_progress, should_stop=lambda: len(step_ends) >= args.steps + 1
    )
    with PeakMemory() as peak, contextlib.suppress(RunCancelled):  # stopped after --steps steps
        train(config(args, dataset=dataset), data_root=args.root, hooks=hooks)
    label = "memory" if in_memory else "memmap"
    return {
        # steps after the first (which pays first-call costs)
        f"train_{label}_img_s": args.steps * args.batch / (step_ends[-1] - step_ends[0]),
        f"train_{label}_to_first_step_s": step_ends[0],
        f"train_{label}_peak_rss_mib": peak.peak,
    }


PHASES: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "decode": phase_decode,
    "startup": phase_startup,
    "old-decode": phase_old_decode,
    "read": phase_read,
    "train-memmap": lambda args: phase_train(args, in_memory=False),
    "train-memory": lambda args: phase_train(args, in_memory=True),
}


def run_phase(name: str, argv: list[str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_dataset_cache", *argv, "--phase", name],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"phase {name} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--name", default=None, help="folder name (default photos<count>)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--probe", type=int, default=512)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10, help="training steps per path")
    parser.add_argument("--read-batches", type=int, default=200)
    parser.add_argument("--old-subset", type=int, default=10_000)
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.name = args.name or f"photos{args.count // 1000}k"
    if args.phase:
        print(json.dumps(PHASES[args.phase](args)))
        return

    from bench.make_large_folder import make_large_folder

    argv = [a for a in sys.argv[1:]]
    argv += ["--name", args.name] if "--name" not in argv else []
    written = make_large_folder(args.root / args.name, args.count, args.size)
    figures: dict[str, Any] = {"images": args.count, "size": args.size, "cpus": os.cpu_count()}
    if written:
        figures["generate_s"] = written
    for name in PHASES:
        figures.update(run_phase(name, argv))
        print(f"{name}: done", file=sys.stderr)
    mib = figures
    print(f"{args.count} images of {args.size} px in {args.root / args.name}")
    print(f"first-run decode into the cache: {mib['decode_s']:.1f} s ({mib['cache_mib']:.0f} MiB)")
    print(f"later start-up (list + stat + open the map): {mib['startup_s']:.2f} s")
    print(
        f"old path's start-up (decode all, one thread): {mib['old_startup_s_scaled']:.0f} s "
        f"(timed on {mib['old_decode_images']} images)"
    )
    print(
        f"reading batches of {args.batch}: memmap {mib['read_memmap_img_s']:.0f} img/s, "
        f"in memory {mib['read_memory_img_s']:.0f} img/s"
    )
    for label in ("memmap", "memory"):
        peak = mib[f"train_{label}_peak_rss_mib"]
        print(
            f"training ({label}): {mib[f'train_{label}_img_s']:.0f} img/s, first step after "
            f"{mib[f'train_{label}_to_first_step_s']:.1f} s, peak RSS {peak['VmRSS']:.0f} MiB "
            f"(anonymous {peak['RssAnon']:.0f}, file-backed {peak['RssFile']:.0f})"
        )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
