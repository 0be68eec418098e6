"""A large generated image folder for bench/bench_dataset_cache.py: N photographs' crops.

Crops of the two photographs that ship with scikit-learn (as bench/make_photo_folder.py:
each photo cut into 2 x 4 regions, one class per region, random square crops of 48-112 px)
resized to ``--size`` px and saved alternately as PNG and JPEG (quality 90), written by
``--workers`` processes at low priority (``nice``).

    python -m bench.make_large_folder /tmp/collapse_lab_bench/data/photos200k --count 200000

Skips the work when the folder already holds ``--count`` images.
"""

from __future__ import annotations

import argparse
import os
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from bench.make_photo_folder import _PHOTO_NAMES, CROP_MAX, CROP_MIN, GRID_COLS, GRID_ROWS

CLASSES = [
    (p, r, c) for p in range(len(_PHOTO_NAMES)) for r in range(GRID_ROWS) for c in range(GRID_COLS)
]


def _write_class(task: tuple[Path, int, int, int, int]) -> int:
    """Write ``count`` images of class ``index`` into ``folder``; returns how many."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    folder, index, count, size, niceness = task
    os.nice(niceness)
    photo_index, row, col = CLASSES[index]
    photo = load_sample_images().images[photo_index]
    rng = np.random.default_rng(index)
    height, width = photo.shape[:2]
    cell_h, cell_w = height / GRID_ROWS, width / GRID_COLS
    class_dir = folder / f"{_PHOTO_NAMES[photo_index]}_r{row}c{col}"
    class_dir.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        side = int(rng.integers(CROP_MIN, CROP_MAX + 1))
        top = int(np.clip((row + rng.random()) * cell_h - side / 2, 0, height - side))
        left = int(np.clip((col + rng.random()) * cell_w - side / 2, 0, width - side))
        crop = Image.fromarray(photo[top : top + side, left : left + side])
        image = crop.resize((size, size), Image.Resampling.BILINEAR)
        if i % 2:
            image.save(class_dir / f"{i:06d}.jpg", quality=90)
        else:
            image.save(class_dir / f"{i:06d}.png")
    return count


def image_count(folder: Path) -> int:
    return sum(1 for _ in folder.glob("*/*.*")) if folder.is_dir() else 0


def make_large_folder(folder: Path, count: int, size: int = 64, workers: int = 2) -> float:
    """Write ``count`` images into ``folder`` (unless there already); returns the seconds."""
    if image_count(folder) == count:
        return 0.0
    started = time.perf_counter()
    per_class = [count // len(CLASSES) + (i < count % len(CLASSES)) for i in range(len(CLASSES))]
    tasks = [(folder, i, n, size, 10) for i, n in enumerate(per_class)]
    with Pool(workers) as pool:
        written = sum(pool.imap_unordered(_write_class, tasks))
    assert written == count
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    seconds = make_large_folder(args.folder, args.count, args.size, args.workers)
    print(f"{image_count(args.folder)} images in {args.folder} ({seconds:.0f} s to write)")


if __name__ == "__main__":
    main()
