"""``cifar10``, ``cifar100``, ``stl10``: the official archives, read by torchvision.

The files are expected where torchvision extracts them under the data root
(``cifar-10-batches-py/``, ``cifar-100-python/``, ``stl10_binary/``) and downloaded with
torchvision only when missing and downloading is allowed (torchvision checks the archive's
md5). Local files are read as they are, without an md5 check, so a hand-placed or trimmed
copy loads too. CIFAR files are python pickles: the data root must be trusted, as with
torchvision. Train: the train split (STL-10: its 5,000 labelled images); the probe comes from
the test split (the registry's rule ``test_split``).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision

from contract.datasets import DatasetError
from workers.engine.datasets import LoadRequest
from workers.engine.images import ImageData


def _reading_local_files(reader: Any, files: int) -> Any:
    """A subclass of the torchvision dataset class ``reader`` that trusts the local files:
    no md5 (torchvision's ``check_integrity`` then only asks that the file exists), and only
    the first ``files`` of its train files required (STL-10's unlabelled images are not read).
    """
    attributes: dict[str, Any] = {
        "train_list": [[name, None] for name, _ in reader.train_list[:files]],
        "test_list": [[name, None] for name, _ in reader.test_list],
    }
    if hasattr(reader, "meta"):
        attributes["meta"] = {**reader.meta, "md5": None}
    return type(f"Local{reader.__name__}", (reader,), attributes)


CIFAR10 = _reading_local_files(torchvision.datasets.CIFAR10, 5)
CIFAR100 = _reading_local_files(torchvision.datasets.CIFAR100, 1)
STL10 = _reading_local_files(torchvision.datasets.STL10, 2)


def _required_files(reader: Any) -> list[str]:
    files = [name for name, _ in reader.train_list + reader.test_list]
    meta = getattr(reader, "meta", None)
    return [*files, meta["filename"] if meta else reader.class_names_file]


def _fetch(name: str, stock: Any, root: Path) -> None:
    """Download and extract ``name`` into ``root`` with torchvision's own class."""
    root.mkdir(parents=True, exist_ok=True)
    try:
        if name == "stl10":
            stock(root, split="train", download=True)
        else:
            stock(root, train=True, download=True)
    except (RuntimeError, OSError) as exc:  # URLError is an OSError
        reason = str(getattr(exc, "reason", None) or exc).strip()
        raise DatasetError(
            f"could not download {name} into {root}: {reason}; "
            "put the files there or allow network access"
        ) from None


def _read(request: LoadRequest, reader: Any, stock: Any) -> tuple[ImageData, ImageData]:
    """(train, test) of one archive, downloading it first when files are missing."""
    name, root = request.spec.name, request.data_root
    folder = root / reader.base_folder

    def missing() -> list[str]:
        return [f for f in _required_files(reader) if not (folder / f).is_file()]

    if missing() and request.download:
        _fetch(name, stock, root)
    if missing():
        raise DatasetError(
            f"{name} is not in {folder} (missing {', '.join(missing())}) and downloading is "
            "disabled; put the files there or allow downloads"
        )
    try:
        return _as_image_data(name, reader, root, True), _as_image_data(name, reader, root, False)
    except (OSError, ValueError, KeyError, EOFError, pickle.UnpicklingError) as exc:
        raise DatasetError(f"{name} files in {folder} are unreadable: {exc!r}") from None


def _as_image_data(name: str, reader: Any, root: Path, train: bool) -> ImageData:
    """One split as uint8 (N, 3, H, W) images and int64 labels."""
    if name == "stl10":
        split = reader(root, split="train" if train else "test")
        images = torch.from_numpy(np.ascontiguousarray(split.data))  # (N, 3, 96, 96)
        labels = np.asarray(split.labels, dtype=np.int64)
    else:
        split = reader(root, train=train)
        images = torch.from_numpy(split.data).permute(0, 3, 1, 2).contiguous()  # from HWC
        labels = np.asarray(split.targets, dtype=np.int64)
    return ImageData.from_tensor(images, torch.from_numpy(labels), list(split.classes))


def load_cifar10(request: LoadRequest) -> tuple[ImageData, ImageData]:
    """CIFAR-10's (train, test): 50,000 and 10,000 images of 32 px."""
    return _read(request, CIFAR10, torchvision.datasets.CIFAR10)


def load_cifar100(request: LoadRequest) -> tuple[ImageData, ImageData]:
    """CIFAR-100's (train, test) with the 100 fine labels."""
    return _read(request, CIFAR100, torchvision.datasets.CIFAR100)


def load_stl10(request: LoadRequest) -> tuple[ImageData, ImageData]:
    """STL-10's labelled (train, test): 5,000 and 8,000 images of 96 px."""
    return _read(request, STL10, torchvision.datasets.STL10)
