"""``cifar10``, ``cifar100``, ``stl10``, ``fashion_mnist``: the official archives, read by
torchvision.

The files are expected where torchvision extracts them under the data root
(``cifar-10-batches-py/``, ``cifar-100-python/``, ``stl10_binary/``, ``FashionMNIST/raw/``)
and downloaded with torchvision only when missing and downloading is allowed (torchvision
checks the archive's md5). Local files are read as they are, without an md5 check, so a
hand-placed or trimmed copy loads too. CIFAR files are python pickles: the data root must be
trusted, as with torchvision. Train: the train split (STL-10: its 5,000 labelled images); the
probe comes from the test split (the registry's rule ``test_split``). Fashion-MNIST's grey
images are replicated to 3 channels, like ``digits``.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision

from contract.datasets import DatasetError
from workers.engine.datasets import LoadRequest
from workers.engine.images import ImageData


@dataclass(frozen=True)
class _Archive:
    """One archive as torchvision reads it: ``reader`` (a class that reads the local files
    without an md5 check) and ``stock`` (torchvision's own, for downloads), the ``files`` it
    needs in ``folder`` (below the data root), the keyword arguments that pick each split,
    the attribute holding a split's labels, and ``to_nchw``, which turns a split's ``data``
    into uint8 (N, 3, H, W) images."""

    reader: Any
    stock: Any
    folder: str
    files: tuple[str, ...]
    train: dict[str, Any]
    test: dict[str, Any]
    labels: str
    to_nchw: Callable[[torch.Tensor], torch.Tensor]


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


def _listed_archive(stock: Any, train_files: int, **fields: Any) -> _Archive:
    """CIFAR's and STL-10's archive: torchvision's class lists its files (``train_list``,
    ``test_list``, a meta file) in its ``base_folder``."""
    reader = _reading_local_files(stock, train_files)
    listed = [name for name, _ in reader.train_list + reader.test_list]
    meta = getattr(reader, "meta", None)
    files = (*listed, meta["filename"] if meta else reader.class_names_file)
    return _Archive(reader, stock, reader.base_folder, files, **fields)


def _from_hwc(data: torch.Tensor) -> torch.Tensor:
    return data.permute(0, 3, 1, 2)


def _from_nchw(data: torch.Tensor) -> torch.Tensor:
    return data


def _from_grey(data: torch.Tensor) -> torch.Tensor:
    return data.unsqueeze(1).expand(-1, 3, -1, -1)


_TRAIN_FLAG = {"train": {"train": True}, "test": {"train": False}}
CIFAR10 = _listed_archive(
    torchvision.datasets.CIFAR10, 5, **_TRAIN_FLAG, labels="targets", to_nchw=_from_hwc
)
CIFAR100 = _listed_archive(
    torchvision.datasets.CIFAR100, 1, **_TRAIN_FLAG, labels="targets", to_nchw=_from_hwc
)
STL10 = _listed_archive(
    torchvision.datasets.STL10,
    2,
    train={"split": "train"},
    test={"split": "test"},
    labels="labels",
    to_nchw=_from_nchw,  # stored (N, 3, 96, 96)
)
# MNIST's readers check no md5 of local files; they read the uncompressed files of
# ``resources`` in <root>/<class name>/raw.
_FASHION = torchvision.datasets.FashionMNIST
FASHION_MNIST = _Archive(
    _FASHION,
    _FASHION,
    f"{_FASHION.__name__}/raw",
    tuple(name.removesuffix(".gz") for name, _ in _FASHION.resources),
    **_TRAIN_FLAG,
    labels="targets",
    to_nchw=_from_grey,
)


def _fetch(name: str, archive: _Archive, root: Path) -> None:
    """Download and extract ``name`` into ``root`` with torchvision's own class."""
    root.mkdir(parents=True, exist_ok=True)
    try:
        archive.stock(root, download=True, **archive.train)
    except (RuntimeError, OSError) as exc:  # URLError is an OSError
        reason = str(getattr(exc, "reason", None) or exc).strip()
        raise DatasetError(
            f"could not download {name} into {root}: {reason}; "
            "put the files there or allow network access"
        ) from None


def _read(request: LoadRequest, archive: _Archive) -> tuple[ImageData, ImageData]:
    """(train, test) of one archive, downloading it first when files are missing."""
    name, root = request.spec.name, request.data_root
    folder = root / archive.folder

    def missing() -> list[str]:
        return [f for f in archive.files if not (folder / f).is_file()]

    if missing() and request.download:
        _fetch(name, archive, root)
    if missing():
        raise DatasetError(
            f"{name} is not in {folder} (missing {', '.join(missing())}) and downloading is "
            "disabled; put the files there or allow downloads"
        )
    try:
        return _split_data(archive, root, archive.train), _split_data(archive, root, archive.test)
    except (OSError, ValueError, KeyError, EOFError, pickle.UnpicklingError) as exc:
        raise DatasetError(f"{name} files in {folder} are unreadable: {exc!r}") from None


def _split_data(archive: _Archive, root: Path, split_kwargs: dict[str, Any]) -> ImageData:
    """One split as uint8 (N, 3, H, W) images and int64 labels."""
    split = archive.reader(root, **split_kwargs)
    images = archive.to_nchw(torch.as_tensor(np.ascontiguousarray(split.data)))
    labels = torch.from_numpy(np.asarray(getattr(split, archive.labels), dtype=np.int64))
    return ImageData.from_tensor(images.contiguous(), labels, list(split.classes))


def load_cifar10(request: LoadRequest) -> tuple[ImageData, ImageData]:
    """CIFAR-10's (train, test): 50,000 and 10,000 images of 32 px."""
    return _read(request, CIFAR10)


def load_cifar100(request: LoadRequest) -> tuple[ImageData, ImageData]:
    """CIFAR-100's (train, test) with the 100 fine labels."""
    return _read(request, CIFAR100)


def load_stl10(request: LoadRequest) -> tuple[ImageData, ImageData]:
    """STL-10's labelled (train, test): 5,000 and 8,000 images of 96 px."""
    return _read(request, STL10)


def load_fashion_mnist(request: LoadRequest) -> tuple[ImageData, ImageData]:
    """Fashion-MNIST's (train, test): 60,000 and 10,000 grey clothing images of 28 px."""
    return _read(request, FASHION_MNIST)
