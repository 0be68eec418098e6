"""``imagefolder``: ``data_root / dataset_path`` with one sub-folder per class.

The layout torchvision's ``ImageFolder`` reads: each sub-folder is a class (sorted by name),
its images every file below it, at any depth, ending in one of ``IMAGE_SUFFIXES``
(torchvision's ``IMG_EXTENSIONS``; sorted by path). Names starting with a dot (.git,
.ipynb_checkpoints, macOS's ._ files) are passed over; images beside the class folders, a
class folder without images, an unreadable folder, a link resolving outside the data root
or an image reached from two classes (through a link) are refused, naming the path in the
data root. Images are decoded (EXIF orientation applied, 16-bit greyscale scaled to 8 bits,
float greyscale in [0, 1] to 0..255, RGB, shorter side resized to ``image_size``,
centre-cropped) once into a memory-mapped cache (workers/engine/image_cache.py) that later
runs open at once and that a change to the folder's files invalidates. One labelled set:
the probe is a held-out part of it (the registry's rule ``held_out``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from contract.datasets import DatasetError
from workers.engine.datasets import LoadRequest
from workers.engine.image_cache import CACHE_FOLDER, cached_images, file_signature
from workers.engine.images import ImageData, MemmapImages, resize_square

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
# PIL's modes of 16-bit (and wider) greyscale, which its RGB conversion clips at 255
WIDE_GREYSCALE = ("I;16", "I;16B", "I;16L", "I")


def list_images(
    folder: Path, root: Path
) -> tuple[list[str], list[str], list[int], list[os.stat_result]]:
    """(class names, image paths relative to ``folder`` ("class/file.png",
    "class/sub/file.png"), their labels, their stat results) of an image folder. Raises
    :class:`DatasetError` for a folder without classes, images beside its class folders, a
    class without images, a folder it cannot read, a link leading outside ``root`` or an
    image reached from two classes. Plain
    strings: a folder of 200,000 images is listed in about a second (pathlib objects would
    take ten)."""
    root = root.resolve()

    def shown(path: str | Path) -> str:
        """``path`` as the data root's own (a run's error is on its page: the server's
        folders are not shown)."""
        return repr(os.path.relpath(path, root))

    def entries(directory: str | Path) -> list[os.DirEntry[str]]:
        """The entries of ``directory`` not named with a leading dot, sorted by name."""
        try:
            with os.scandir(directory) as listing:
                found = [entry for entry in listing if not entry.name.startswith(".")]
        except OSError as exc:
            raise DatasetError(f"cannot read folder {shown(directory)}: {exc.strerror}") from None
        return sorted(found, key=lambda entry: entry.name)

    def inside(entry: os.DirEntry[str]) -> None:
        # Only links can lead elsewhere: the folder itself was resolved inside the root.
        if entry.is_symlink() and not Path(entry.path).resolve().is_relative_to(root):
            raise DatasetError(f"{shown(entry.path)} is a link leading outside the data root")

    walked: set[str] = set()  # real paths of a class's folders listed: a link loop once
    owner: dict[str, tuple[int, str]] = {}  # real path of each image -> (label, path listed)

    def images_below(
        directory: os.DirEntry[str], prefix: str
    ) -> Iterator[tuple[str, os.DirEntry[str], str]]:
        """(path relative to ``folder``, entry, real path) of every image below
        ``directory``."""
        inside(directory)
        real = os.path.realpath(directory.path)
        if real in walked:
            return
        walked.add(real)
        for entry in entries(directory.path):
            if entry.is_dir():
                yield from images_below(entry, f"{prefix}{entry.name}/")
            elif entry.is_file() and entry.name.lower().endswith(IMAGE_SUFFIXES):
                inside(entry)
                # A plain file's real path is its folder's: only links need resolving.
                linked = entry.is_symlink()
                real_file = os.path.realpath(entry.path) if linked else f"{real}/{entry.name}"
                yield f"{prefix}{entry.name}", entry, real_file

    top = entries(folder)
    class_dirs = [entry for entry in top if entry.is_dir()]
    if not class_dirs:
        raise DatasetError(f"image folder {shown(folder)} has no class subfolders")
    beside = [e for e in top if e.is_file() and e.name.lower().endswith(IMAGE_SUFFIXES)]
    if beside:
        raise DatasetError(
            f"image folder {shown(folder)} has images beside its class folders ({len(beside)}, "
            f"e.g. {beside[0].name!r}), which would not be trained on: put each image in the "
            "folder of its class"
        )
    files: list[str] = []
    labels: list[int] = []
    stats: list[os.stat_result] = []
    for label, class_dir in enumerate(class_dirs):
        count = len(files)
        walked.clear()  # a class linking to another's folder is walked, so the clash is seen
        for name, entry, real in images_below(class_dir, f"{class_dir.name}/"):
            # A link to another class's images gives them two labels: the kNN probe would
            # score a neighbour that is the image itself under the other label.
            first_label, first_name = owner.setdefault(real, (label, name))
            if first_label != label:
                raise DatasetError(
                    f"{shown(Path(folder, name))} is the image {shown(Path(folder, first_name))} "
                    f"of another class (a link): an image must belong to one class"
                )
            files.append(name)
            labels.append(label)
            stats.append(entry.stat())
        if len(files) == count:
            raise DatasetError(
                f"class folder {shown(class_dir.path)} has no images "
                f"({', '.join(IMAGE_SUFFIXES)}): remove it, or move it out of the image folder"
            )
    return [entry.name for entry in class_dirs], files, labels, stats


def decode_image(file: Path, size: int, shown: str | None = None) -> np.ndarray:
    """One image file -> uint8 (3, size, size): EXIF orientation applied, RGB, shorter side
    resized, centre-cropped. ``shown``: the file's name in errors, in place of its path."""
    from PIL import Image, ImageOps, UnidentifiedImageError  # only image folders need PIL

    try:
        with Image.open(file) as opened:
            image = ImageOps.exif_transpose(opened)
            if image.mode in WIDE_GREYSCALE or image.mode == "F":
                values = np.asarray(image, dtype=np.float64)
                if image.mode == "F":  # floats: in [0, 1] as most tools write them, else 0..255
                    scale = 255.0 if np.nanmax(values, initial=0.0) <= 1.0 else 1.0
                else:  # 0..65535 to 0..255, not clipped at 255
                    scale = 1 / 257.0
                grey = np.clip(np.rint(np.nan_to_num(values * scale)), 0, 255).astype(np.uint8)
                pixels = np.repeat(grey[:, :, None], 3, axis=2)
            else:
                if image.mode == "P" and "transparency" in image.info:
                    image = image.convert("RGBA")  # as PIL asks: its RGB conversion warns
                pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        name = shown or str(file)
        detail = str(exc).replace(str(file), name)  # PIL's own messages name the path too
        raise DatasetError(f"cannot read image {name!r}: {detail}") from None
    image_tensor = torch.from_numpy(pixels.copy()).permute(2, 0, 1).unsqueeze(0)
    return resize_square(image_tensor, size)[0].numpy()


def load_imagefolder(request: LoadRequest) -> ImageData:
    """Every image of the folder, memory-mapped from its cache (built on first use)."""
    folder, size = request.folder, request.config.image_size
    if folder is None:
        raise DatasetError("dataset 'imagefolder' needs dataset_path")
    root = request.data_root.resolve()
    class_names, files, labels, stats = list_images(folder, root)
    folder_id = hashlib.sha256(str(folder).encode()).hexdigest()[:12]
    shown_folder = os.path.relpath(folder, root)  # errors name files inside the data root
    array = cached_images(
        request.data_root / CACHE_FOLDER,
        family=f"imagefolder-{folder_id}-{size}px",
        signature=file_signature(zip(files, stats, strict=True)),
        shape=(len(files), 3, size, size),
        decode=lambda index: decode_image(
            folder / files[index], size, shown=f"{shown_folder}/{files[index]}"
        ),
        description=f"decoding {folder.name} ({size} px, once)",
    )
    return ImageData(
        MemmapImages(array),
        torch.tensor(labels, dtype=torch.int64),
        class_names,
        torch.arange(len(labels), dtype=torch.int64),
    )
