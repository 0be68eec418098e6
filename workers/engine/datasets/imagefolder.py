"""``imagefolder``: ``data_root / dataset_path`` with one sub-folder per class.

Files ending in .png, .jpg, .jpeg or .webp are the images (sub-folders and class names in
sorted order, files sorted by name); anything resolving outside the data root is refused.
They are decoded (RGB, shorter side resized to ``image_size``, centre-cropped) once into a
memory-mapped cache (workers/engine/image_cache.py) that later runs open at once and that a
change to the folder's files invalidates. One labelled set: the probe is a held-out part of
it (the registry's rule ``held_out``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from contract.datasets import DatasetError
from workers.engine.datasets import LoadRequest
from workers.engine.image_cache import CACHE_FOLDER, cached_images, file_signature
from workers.engine.images import ImageData, MemmapImages, resize_square

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def list_images(
    folder: Path, root: Path
) -> tuple[list[str], list[str], list[int], list[os.stat_result]]:
    """(class names, image paths relative to ``folder`` ("class/file.png"), their labels,
    their stat results) of an image folder. Raises :class:`DatasetError` for a folder
    without classes or images, or a link leading outside ``root``. Plain strings: a folder
    of 200,000 images is listed in about a second (pathlib objects would take ten)."""
    root = root.resolve()

    def shown(path: str | Path) -> str:
        """``path`` as the data root's own (a run's error is on its page: the server's
        folders are not shown)."""
        return repr(os.path.relpath(path, root))

    class_dirs = sorted(p for p in folder.iterdir() if p.is_dir())
    if not class_dirs:
        raise DatasetError(f"image folder {shown(folder)} has no class subfolders")
    files: list[str] = []
    labels: list[int] = []
    stats: list[os.stat_result] = []
    for label, class_dir in enumerate(class_dirs):
        if not class_dir.resolve().is_relative_to(root):
            raise DatasetError(f"{shown(class_dir)} is a link leading outside the data root")
        entries = sorted(os.scandir(class_dir), key=lambda entry: entry.name)
        for entry in entries:
            if not entry.name.lower().endswith(IMAGE_SUFFIXES) or not entry.is_file():
                continue
            # Only links can lead elsewhere: the folder itself was resolved inside the root.
            if entry.is_symlink() and not Path(entry.path).resolve().is_relative_to(root):
                raise DatasetError(f"{shown(entry.path)} is a link leading outside the data root")
            files.append(f"{class_dir.name}/{entry.name}")
            labels.append(label)
            stats.append(entry.stat())
    if not files:
        raise DatasetError(
            f"image folder {shown(folder)} has no images ({', '.join(IMAGE_SUFFIXES)}) in its "
            "subfolders"
        )
    return [p.name for p in class_dirs], files, labels, stats


def decode_image(file: Path, size: int) -> np.ndarray:
    """One image file -> uint8 (3, size, size): RGB, shorter side resized, centre-cropped."""
    from PIL import Image, UnidentifiedImageError  # only image folders need PIL

    try:
        with Image.open(file) as opened:
            pixels = np.asarray(opened.convert("RGB"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError) as exc:
        raise DatasetError(f"cannot read image {file}: {exc}") from None
    image = torch.from_numpy(pixels.copy()).permute(2, 0, 1).unsqueeze(0)
    return resize_square(image, size)[0].numpy()


def load_imagefolder(request: LoadRequest) -> ImageData:
    """Every image of the folder, memory-mapped from its cache (built on first use)."""
    folder, size = request.folder, request.config.image_size
    if folder is None:
        raise DatasetError("dataset 'imagefolder' needs dataset_path")
    class_names, files, labels, stats = list_images(folder, request.data_root)
    folder_id = hashlib.sha256(str(folder).encode()).hexdigest()[:12]
    array = cached_images(
        request.data_root / CACHE_FOLDER,
        family=f"imagefolder-{folder_id}-{size}px",
        signature=file_signature(zip(files, stats, strict=True)),
        shape=(len(files), 3, size, size),
        decode=lambda index: decode_image(folder / files[index], size),
        description=f"decoding {folder.name} ({size} px, once)",
    )
    return ImageData(
        MemmapImages(array),
        torch.tensor(labels, dtype=torch.int64),
        class_names,
        torch.arange(len(labels), dtype=torch.int64),
    )
