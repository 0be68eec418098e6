"""Datasets as in-memory uint8 tensors: train split and held-out probe split.

Every dataset is returned as RGB (3 channels) uint8 images of shape (N, 3, S, S) with
S = ``config.image_size``, so augmentations and backbones see one layout everywhere:

- ``shapes``: procedural, rendered with torch from ``config.seed``; 10 classes (the shape kind),
  with colour, size, position, rotation and background (colour + gradient + noise) as nuisance
  factors. The probe is drawn from a separate random stream, so it never repeats train images.
- ``digits``: scikit-learn's bundled 8x8 digits (1,797 images), upscaled bilinearly and
  replicated to 3 channels (so colour jitter and the lightly recipe treat it as RGB, like the
  other datasets). The probe is a seeded, stratified held-out part of
  ``min(probe_size, 25% of N)`` images.
- ``cifar10``, ``cifar100``, ``stl10``: the official archives' layouts under ``data_root``
  (as torchvision extracts them: ``cifar-10-batches-py/``, ``cifar-100-python/``,
  ``stl10_binary/``), downloaded with torchvision only when missing and ``download`` is true;
  train from the train split (STL-10: the 5,000 labelled images), probe from the test split
  (a seeded, stratified ``probe_size`` subset). The files are read directly (no md5 check on
  local files, so a hand-placed or trimmed copy loads too). CIFAR files are python pickles:
  the data root must be trusted, as with torchvision.
- ``imagefolder``: ``data_root / config.dataset_path`` with one subfolder per class; anything
  resolving outside ``data_root`` is refused. Probe: seeded stratified held-out part, as digits.

Loaded splits up to 512 MiB are cached per process (not image folders, whose files may change);
callers must treat the tensors as read-only.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from contract import RunConfig
from contract.datasets import DatasetError, resolve_inside

SHAPES_TRAIN_SIZE = 8192
SHAPE_NAMES = (
    "disk",
    "ring",
    "square",
    "frame",
    "triangle",
    "star",
    "cross",
    "half_disk",
    "crescent",
    "ellipse",
)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
HELD_OUT_FRACTION = 0.25  # largest probe share of datasets without a test split


@dataclass
class ImageData:
    """A labelled image set held in memory.

    images: uint8 (N, C, S, S); labels: int64 (N,) in [0, num_classes);
    source_indices: int64 (N,), position of each image in the split it came from (for
    procedural data: its index in the generated stream), so disjointness can be checked.
    """

    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    class_names: list[str]
    source_indices: torch.Tensor

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    def subset(self, indices: torch.Tensor) -> ImageData:
        """The images at ``indices`` (int64 (M,)), same classes."""
        return ImageData(
            self.images[indices],
            self.labels[indices],
            self.num_classes,
            self.class_names,
            self.source_indices[indices],
        )


_CACHE: dict[tuple[object, ...], tuple[ImageData, ImageData]] = {}
_CACHE_MAX_ENTRIES = 4
_CACHE_MAX_BYTES = 512 * 2**20  # larger splits (e.g. CIFAR at 224 px) are not kept around


def load_splits(
    config: RunConfig, data_root: Path, download: bool = True
) -> tuple[ImageData, ImageData]:
    """Load ``config.dataset`` as (train, probe) at ``config.image_size``.

    The probe split never shares an image with train. ``download`` allows torchvision to
    fetch CIFAR/STL into ``data_root``. Raises :class:`DatasetError` with a readable reason.
    """
    data_root = Path(data_root)
    key = (
        config.dataset,
        config.dataset_path,
        str(data_root.resolve()),
        config.image_size,
        config.seed,
        config.train_size,
        config.probe_size,
    )
    if key in _CACHE:
        return _CACHE[key]
    if config.dataset == "shapes":
        splits = _load_shapes(config)
    elif config.dataset == "digits":
        splits = _load_digits(config)
    elif config.dataset in ("cifar10", "cifar100", "stl10"):
        splits = _load_archive(config, data_root, download)
    elif config.dataset == "imagefolder":
        splits = _load_imagefolder(config, data_root)
    else:
        raise DatasetError(f"unknown dataset {config.dataset!r}")
    size_bytes = sum(part.images.numel() for part in splits)
    if config.dataset != "imagefolder" and size_bytes <= _CACHE_MAX_BYTES:
        if len(_CACHE) >= _CACHE_MAX_ENTRIES:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = splits
    return splits


# -- shapes ---------------------------------------------------------------------------------


def _stream_generator(seed: int, stream: int) -> torch.Generator:
    """Independent random streams per (seed, purpose): 0 = train, 1 = probe, 2 = splits."""
    return torch.Generator().manual_seed(seed * 1_000_003 + stream * 7_919 + 17)


def _shape_distance(kind: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Approximate signed distance (negative inside, in shape units, radius about 1) of shape
    ``kind`` at local coordinates u, v (any shape, same shape)."""
    r = torch.sqrt(u * u + v * v)
    angle = torch.atan2(v, u)
    if kind == 0:  # disk
        return r - 1.0
    if kind == 1:  # ring
        return (r - 0.78).abs() - 0.22
    if kind == 2:  # square
        return torch.maximum(u.abs(), v.abs()) - 0.8
    if kind == 3:  # frame (hollow square)
        return (torch.maximum(u.abs(), v.abs()) - 0.68).abs() - 0.17
    if kind == 4:  # equilateral triangle, circumradius 1
        sector = 2 * math.pi / 3
        local = torch.remainder(angle, sector) - sector / 2
        return r * torch.cos(local) - 0.5
    if kind == 5:  # five-pointed star
        sector = 2 * math.pi / 5
        local = (torch.remainder(angle, sector) - sector / 2).abs() / (sector / 2)
        return (r - (0.45 + 0.6 * local)) * 0.6
    if kind == 6:  # cross (plus sign)
        bar_h = torch.maximum(u.abs() - 0.95, v.abs() - 0.3)
        bar_v = torch.maximum(v.abs() - 0.95, u.abs() - 0.3)
        return torch.minimum(bar_h, bar_v)
    if kind == 7:  # half disk
        return torch.maximum(r - 1.0, -v - 0.15)
    if kind == 8:  # crescent: disk minus a shifted disk
        r_shift = torch.sqrt((u - 0.5) ** 2 + v * v)
        return torch.maximum(r - 1.0, 0.85 - r_shift)
    if kind == 9:  # ellipse, semi-axes 1.0 and 0.45
        return (torch.sqrt(u * u + (v / 0.45) ** 2) - 1.0) * 0.45
    raise ValueError(f"no shape kind {kind}")


def render_shapes(
    count: int, image_size: int, generator: torch.Generator, chunk: int = 2048
) -> tuple[torch.Tensor, torch.Tensor]:
    """Render ``count`` random shape images, vectorised in torch.

    Returns (images uint8 (count, 3, S, S), labels int64 (count,)), classes balanced (shuffled
    ``arange % 10``). Nuisance factors per image: shape size (radius 25-40% of the side),
    position (anywhere the shape stays mostly inside), rotation (uniform), foreground colour
    (uniform RGB), background colour (contrasting), a linear background gradient, pixel noise.
    """
    num_classes = len(SHAPE_NAMES)
    labels = (torch.arange(count) % num_classes)[torch.randperm(count, generator=generator)]
    params = torch.rand(count, 12, generator=generator)
    noise_seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    images = torch.empty(count, 3, image_size, image_size, dtype=torch.uint8)
    # Pixel-centre coordinates in [-1, 1].
    axis = (torch.arange(image_size, dtype=torch.float32) + 0.5) / image_size * 2 - 1
    grid_y, grid_x = torch.meshgrid(axis, axis, indexing="ij")
    noise_generator = torch.Generator().manual_seed(noise_seed)
    pixels_per_unit_side = image_size / 2
    for start in range(0, count, chunk):
        stop = min(start + chunk, count)
        p = params[start:stop]
        n = stop - start
        radius = 0.5 + 0.3 * p[:, 0]  # in [-1, 1] coordinates: 25%-40% of the side
        margin = 1 - radius * 0.9
        centre_x = (p[:, 1] * 2 - 1) * margin
        centre_y = (p[:, 2] * 2 - 1) * margin
        theta = p[:, 3] * 2 * math.pi
        foreground = p[:, 4:7]
        background = (1 - foreground) * 0.65 + 0.35 * p[:, 7:10]
        gradient_angle = p[:, 10] * 2 * math.pi
        gradient_strength = 0.35 * p[:, 11]

        dx = grid_x - centre_x.view(n, 1, 1)
        dy = grid_y - centre_y.view(n, 1, 1)
        cos_t = torch.cos(theta).view(n, 1, 1)
        sin_t = torch.sin(theta).view(n, 1, 1)
        u = (cos_t * dx + sin_t * dy) / radius.view(n, 1, 1)
        v = (-sin_t * dx + cos_t * dy) / radius.view(n, 1, 1)
        distance = torch.empty(n, image_size, image_size)
        chunk_labels = labels[start:stop]
        for kind in range(num_classes):
            members = (chunk_labels == kind).nonzero().squeeze(1)
            if members.numel():
                distance[members] = _shape_distance(kind, u[members], v[members])
        # Distance in pixels -> anti-aliased coverage in [0, 1].
        distance_px = distance * (radius * pixels_per_unit_side).view(n, 1, 1)
        coverage = (0.5 - distance_px).clamp(0, 1).unsqueeze(1)
        ramp = (
            torch.cos(gradient_angle).view(n, 1, 1) * grid_x
            + torch.sin(gradient_angle).view(n, 1, 1) * grid_y
        )
        shade = (1 + gradient_strength.view(n, 1, 1) * ramp).unsqueeze(1)
        back = background.view(n, 3, 1, 1) * shade
        picture = back + coverage * (foreground.view(n, 3, 1, 1) - back)
        picture += 0.03 * torch.randn(picture.shape, generator=noise_generator)
        images[start:stop] = (picture.clamp(0, 1) * 255).round_().to(torch.uint8)
    return images, labels


def _load_shapes(config: RunConfig) -> tuple[ImageData, ImageData]:
    train_size = config.train_size or SHAPES_TRAIN_SIZE
    splits = []
    for stream, size in ((0, train_size), (1, config.probe_size)):
        images, labels = render_shapes(
            size, config.image_size, _stream_generator(config.seed, stream)
        )
        # Index offset marks the stream so train and probe indices never coincide.
        offset = stream * 1_000_000_000
        indices = torch.arange(offset, offset + size, dtype=torch.int64)
        splits.append(ImageData(images, labels, len(SHAPE_NAMES), list(SHAPE_NAMES), indices))
    return splits[0], splits[1]


# -- digits -----------------------------------------------------------------------------------


def _load_digits(config: RunConfig) -> tuple[ImageData, ImageData]:
    from sklearn.datasets import load_digits  # lazily: scikit-learn is only needed for digits

    bunch = load_digits()
    pixels = torch.from_numpy(bunch.images.astype(np.float32) * (255.0 / 16.0))  # (N, 8, 8)
    upscaled = F.interpolate(
        pixels.unsqueeze(1),
        size=(config.image_size, config.image_size),
        mode="bilinear",
        align_corners=False,
    )
    images = upscaled.round_().clamp_(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    full = ImageData(
        images,
        labels,
        10,
        [str(d) for d in range(10)],
        torch.arange(len(labels), dtype=torch.int64),
    )
    return _held_out_split(full, config)


# -- splits and resizing ------------------------------------------------------------------------


def stratified_order(labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A permutation of range(N) whose every prefix is (nearly) class-stratified.

    Each class is shuffled, its members get keys (rank + 0.5) / class_size, and samples are
    ordered by key (random tie-break), so taking the first k yields about k * class share of
    each class. labels: int64 (N,) -> int64 (N,).
    """
    count = labels.numel()
    shuffle = torch.randperm(count, generator=generator)
    shuffled = labels[shuffle]
    by_class = torch.sort(shuffled, stable=True).indices  # positions grouped by class
    sorted_labels = shuffled[by_class]
    class_sizes = torch.bincount(sorted_labels)
    class_start = torch.cumsum(class_sizes, 0) - class_sizes
    rank = torch.arange(count) - class_start[sorted_labels]
    key = torch.empty(count, dtype=torch.float64)
    key[by_class] = (rank.double() + 0.5) / class_sizes[sorted_labels].double()
    order = torch.sort(key, stable=True).indices
    return shuffle[order]


def _held_out_split(full: ImageData, config: RunConfig) -> tuple[ImageData, ImageData]:
    """Seeded stratified probe of min(probe_size, 25% of N) images; train = the rest."""
    probe_count = min(config.probe_size, int(len(full) * HELD_OUT_FRACTION))
    if probe_count < 1 or len(full) - probe_count < 1:
        raise DatasetError(f"{config.dataset} has only {len(full)} images: too few to split")
    order = stratified_order(full.labels, _stream_generator(config.seed, 2))
    probe_indices = torch.sort(order[:probe_count]).values
    train_indices = order[probe_count:]
    if config.train_size is not None:
        train_indices = train_indices[: config.train_size]
    train_indices = torch.sort(train_indices).values
    return full.subset(train_indices), full.subset(probe_indices)


def _random_subset(data: ImageData, size: int | None, generator: torch.Generator) -> ImageData:
    if size is None or size >= len(data):
        return data
    keep = torch.sort(torch.randperm(len(data), generator=generator)[:size]).values
    return data.subset(keep)


def resize_square(images: torch.Tensor, size: int, chunk: int = 1024) -> torch.Tensor:
    """uint8 (N, C, H, W) -> uint8 (N, C, size, size): shorter side resized to ``size``
    (bilinear, antialiased when shrinking), then centre-cropped."""
    height, width = images.shape[-2:]
    if height == width == size:
        return images
    scale = size / min(height, width)
    new_h, new_w = max(size, round(height * scale)), max(size, round(width * scale))
    top, left = (new_h - size) // 2, (new_w - size) // 2
    out = torch.empty(images.shape[0], images.shape[1], size, size, dtype=torch.uint8)
    for start in range(0, images.shape[0], chunk):
        part = images[start : start + chunk].float()
        resized = F.interpolate(
            part, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=scale < 1
        )
        cropped = resized[..., top : top + size, left : left + size]
        out[start : start + chunk] = cropped.round_().clamp_(0, 255).to(torch.uint8)
    return out


# -- CIFAR / STL ------------------------------------------------------------------------------

# Folder torchvision extracts each archive to, and the files read from it.
_ARCHIVE_FOLDERS = {
    "cifar10": "cifar-10-batches-py",
    "cifar100": "cifar-100-python",
    "stl10": "stl10_binary",
}
_REQUIRED_FILES = {
    "cifar10": [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"],
    "cifar100": ["train", "test", "meta"],
    "stl10": ["train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin", "class_names.txt"],
}


def _unpickle(path: Path) -> dict[str, Any]:
    """One CIFAR batch file (the python-pickle layout of the official archives)."""
    with path.open("rb") as handle:
        batch: dict[str, Any] = pickle.load(handle, encoding="latin1")
    return batch


def _read_cifar(name: str, folder: Path, train: bool) -> ImageData:
    """Read the official CIFAR python layout: pickled dicts with 'data' uint8 (N, 3072) and
    'labels' / 'fine_labels'."""
    if name == "cifar10":
        files = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
        label_key, meta_file, names_key = "labels", "batches.meta", "label_names"
    else:
        files = ["train" if train else "test"]
        label_key, meta_file, names_key = "fine_labels", "meta", "fine_label_names"
    batches = [_unpickle(folder / file) for file in files]
    data = np.concatenate([np.asarray(batch["data"], dtype=np.uint8) for batch in batches])
    labels = np.concatenate([np.asarray(batch[label_key], dtype=np.int64) for batch in batches])
    classes = list(_unpickle(folder / meta_file)[names_key])
    images = torch.from_numpy(data.reshape(-1, 3, 32, 32))
    return ImageData(
        images, torch.from_numpy(labels), len(classes), classes, torch.arange(len(labels))
    )


def _read_stl10(folder: Path, train: bool) -> ImageData:
    """Read STL-10's binary layout: uint8 images stored column-major (N, 3, 96, 96) and
    1-based uint8 labels. Train = the 5,000 labelled images."""
    split = "train" if train else "test"
    data = np.fromfile(folder / f"{split}_X.bin", dtype=np.uint8).reshape(-1, 3, 96, 96)
    labels = np.fromfile(folder / f"{split}_y.bin", dtype=np.uint8).astype(np.int64) - 1
    classes = (folder / "class_names.txt").read_text().split()
    images = torch.from_numpy(np.ascontiguousarray(data.transpose(0, 1, 3, 2)))
    return ImageData(
        images, torch.from_numpy(labels), len(classes), classes, torch.arange(len(labels))
    )


def _fetch_with_torchvision(name: str, root: Path) -> None:
    """Download and extract ``name`` into ``root`` (torchvision checks the archive's md5)."""
    import torchvision  # lazily: only a download needs it

    root.mkdir(parents=True, exist_ok=True)
    try:
        if name == "stl10":
            torchvision.datasets.STL10(root, split="train", download=True)
        elif name == "cifar10":
            torchvision.datasets.CIFAR10(root, train=True, download=True)
        else:
            torchvision.datasets.CIFAR100(root, train=True, download=True)
    except (RuntimeError, OSError) as exc:  # URLError is an OSError
        reason = str(getattr(exc, "reason", None) or exc).strip()
        raise DatasetError(
            f"could not download {name} into {root}: {reason}; "
            "put the files there or allow network access"
        ) from None


def _load_archive(
    config: RunConfig, data_root: Path, download: bool
) -> tuple[ImageData, ImageData]:
    name = config.dataset
    folder = data_root / _ARCHIVE_FOLDERS[name]
    missing = [f for f in _REQUIRED_FILES[name] if not (folder / f).is_file()]
    if missing and download:
        _fetch_with_torchvision(name, data_root)
        missing = [f for f in _REQUIRED_FILES[name] if not (folder / f).is_file()]
    if missing:
        raise DatasetError(
            f"{name} is not in {folder} (missing {', '.join(missing)}) and downloading is "
            "disabled; put the files there or allow downloads"
        )
    try:
        if name == "stl10":
            train, test = _read_stl10(folder, True), _read_stl10(folder, False)
        else:
            train, test = _read_cifar(name, folder, True), _read_cifar(name, folder, False)
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise DatasetError(f"{name} files in {folder} are unreadable: {exc!r}") from None
    train = _random_subset(train, config.train_size, _stream_generator(config.seed, 0))
    probe_order = stratified_order(test.labels, _stream_generator(config.seed, 1))
    probe = test.subset(torch.sort(probe_order[: config.probe_size]).values)
    for part in (train, probe):
        part.images = resize_square(part.images, config.image_size)
    return train, probe


# -- image folder -----------------------------------------------------------------------------


def _load_imagefolder(config: RunConfig, data_root: Path) -> tuple[ImageData, ImageData]:
    from PIL import Image, UnidentifiedImageError  # lazily: only image folders need PIL

    if not config.dataset_path:
        raise DatasetError("dataset 'imagefolder' needs dataset_path")
    root = data_root.resolve()
    folder = resolve_inside(data_root, config.dataset_path)
    if not folder.is_dir():
        raise DatasetError(f"image folder {folder} does not exist")
    class_dirs = sorted(p for p in folder.iterdir() if p.is_dir())
    if not class_dirs:
        raise DatasetError(f"image folder {folder} has no class subfolders")
    images: list[torch.Tensor] = []
    labels: list[int] = []
    for label, class_dir in enumerate(class_dirs):
        for file in sorted(class_dir.iterdir()):
            if file.suffix.lower() not in IMAGE_SUFFIXES or not file.is_file():
                continue
            if not file.resolve().is_relative_to(root):
                raise DatasetError(f"{file} is a link leading outside the data root {root}")
            try:
                with Image.open(file) as opened:
                    pixels = np.asarray(opened.convert("RGB"), dtype=np.uint8)
            except (OSError, UnidentifiedImageError) as exc:
                raise DatasetError(f"cannot read image {file}: {exc}") from None
            image = torch.from_numpy(pixels.copy()).permute(2, 0, 1).unsqueeze(0)
            images.append(resize_square(image, config.image_size)[0])
            labels.append(label)
    if not images:
        raise DatasetError(
            f"image folder {folder} has no images ({', '.join(IMAGE_SUFFIXES)}) in its subfolders"
        )
    full = ImageData(
        torch.stack(images),
        torch.tensor(labels, dtype=torch.int64),
        len(class_dirs),
        [p.name for p in class_dirs],
        torch.arange(len(labels), dtype=torch.int64),
    )
    return _held_out_split(full, config)
