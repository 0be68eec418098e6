"""An image folder of real photographs, from the two photos that ship with scikit-learn.

``sklearn.datasets.load_sample_images()`` holds two 427 x 640 colour photographs (a Chinese
temple, ``china.jpg``, and a flower, ``flower.jpg``; no download). Each photo is cut into a
grid of regions; each region is one class, and its images are random square crops of 48-112
pixels from inside the region (a crop may reach a little into the neighbouring region, as
photos' objects do), saved as 64 px PNGs. The result is an ``imagefolder`` dataset of real
photographic texture, colour and lighting with labels that a representation can learn
(region identity) and that a collapsed one cannot.

    python -m bench.make_photo_folder [--root data] [--name photos] [--per-class 150]

writes ``<root>/<name>/<photo>_r<row>c<col>/<index>.png`` and prints the folder; train on it
with ``collapse-lab train --dataset imagefolder --set dataset_path=<name>`` (the folder must be
below the data root, ``./data`` by default).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

GRID_ROWS, GRID_COLS = 2, 4  # 8 regions per photo, 16 classes in all
CROP_MIN, CROP_MAX = 48, 112  # crop side in pixels of the 427 x 640 photo
SAVED_SIZE = 64  # the loader resizes to image_size (32 by default)
_PHOTO_NAMES = ("china", "flower")


def make_photo_folder(
    root: Path, name: str = "photos", per_class: int = 150, seed: int = 0
) -> Path:
    """Write the folder ``root / name`` (replacing its PNGs) and return its path."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(seed)
    folder = Path(root) / name
    photos = load_sample_images().images
    for photo_name, photo in zip(_PHOTO_NAMES, photos, strict=True):
        height, width = photo.shape[:2]
        cell_h, cell_w = height / GRID_ROWS, width / GRID_COLS
        for row in range(GRID_ROWS):
            for col in range(GRID_COLS):
                class_dir = folder / f"{photo_name}_r{row}c{col}"
                class_dir.mkdir(parents=True, exist_ok=True)
                for stale in class_dir.glob("*.png"):
                    stale.unlink()
                for index in range(per_class):
                    side = int(rng.integers(CROP_MIN, CROP_MAX + 1))
                    # the crop's centre lies inside the region; the crop stays in the photo
                    cy = (row + rng.random()) * cell_h
                    cx = (col + rng.random()) * cell_w
                    top = int(np.clip(cy - side / 2, 0, height - side))
                    left = int(np.clip(cx - side / 2, 0, width - side))
                    crop = photo[top : top + side, left : left + side]
                    image = Image.fromarray(crop).resize(
                        (SAVED_SIZE, SAVED_SIZE), Image.Resampling.BILINEAR
                    )
                    image.save(class_dir / f"{index:04d}.png")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("data"))
    parser.add_argument("--name", default="photos")
    parser.add_argument("--per-class", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    folder = make_photo_folder(args.root, args.name, args.per_class, args.seed)
    count = sum(1 for _ in folder.rglob("*.png"))
    print(f"{folder}: {count} images in {GRID_ROWS * GRID_COLS * len(_PHOTO_NAMES)} classes")


if __name__ == "__main__":
    main()
