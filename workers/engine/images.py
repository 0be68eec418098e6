"""Labelled image sets, and the seam between a dataset and the trainer.

A set's pixels are an :class:`ImageStore`, uint8 (N, C, S, S) read by index:

- :class:`TensorImages`: one tensor in memory (shapes, digits, CIFAR, STL-10);
- :class:`MemmapImages`: rows of a memory-mapped uint8 file (an image folder decoded once
  into ``<data dir>/cache/``, workers/engine/image_cache.py), so a set larger than memory
  never has to fit in it: only the batches being read are.

The trainer reads its training set through :class:`DeviceImages` (indices -> uint8 batch on
the device): resident on the device when it fits there, otherwise read batch by batch from
the store, the next batch read ahead while the device computes. The probe and the kNN bank
are small and always held in memory.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# Share of the device's free memory a memory-mapped training set may take to be copied
# there whole (the model, its activations and the augmented views need the rest).
RESIDENT_SHARE = 0.5
# Images copied to the device at a time when a memory-mapped set is made resident.
UPLOAD_CHUNK = 8192


class ImageStore(ABC):
    """uint8 images (N, C, S, S), read by index."""

    @property
    @abstractmethod
    def shape(self) -> tuple[int, int, int, int]: ...

    @abstractmethod
    def read(self, indices: torch.Tensor) -> torch.Tensor:
        """int64 (B,) positions (on the CPU) -> uint8 (B, C, S, S) in memory, on the CPU."""

    @abstractmethod
    def subset(self, indices: torch.Tensor) -> ImageStore:
        """The images at ``indices`` (int64 (M,)), in that order."""

    @abstractmethod
    def to_tensor(self) -> torch.Tensor:
        """Every image as one uint8 tensor in memory (reads a memory-mapped set whole)."""

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape)


class TensorImages(ImageStore):
    """Images held as one uint8 tensor (N, C, S, S)."""

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor

    @property
    def shape(self) -> tuple[int, int, int, int]:
        n, c, h, w = self.tensor.shape
        return n, c, h, w

    def read(self, indices: torch.Tensor) -> torch.Tensor:
        return self.tensor[indices]

    def subset(self, indices: torch.Tensor) -> TensorImages:
        return TensorImages(self.tensor[indices])

    def to_tensor(self) -> torch.Tensor:
        return self.tensor


class MemmapImages(ImageStore):
    """Rows ``rows`` (int64 (N,)) of a memory-mapped uint8 array (M, C, S, S): the pages of
    the images read are loaded on demand, and the operating system may drop them again."""

    def __init__(self, array: np.ndarray, rows: np.ndarray | None = None) -> None:
        self.array = array
        self.rows = np.arange(len(array), dtype=np.int64) if rows is None else rows

    @property
    def shape(self) -> tuple[int, int, int, int]:
        _, c, h, w = self.array.shape
        return len(self.rows), c, h, w

    def read(self, indices: torch.Tensor) -> torch.Tensor:
        rows = self.rows[indices.numpy()]
        return torch.from_numpy(np.take(self.array, rows, axis=0))

    def subset(self, indices: torch.Tensor) -> MemmapImages:
        return MemmapImages(self.array, self.rows[indices.numpy()])

    def to_tensor(self) -> torch.Tensor:
        return torch.from_numpy(np.take(self.array, self.rows, axis=0))


@dataclass
class ImageData:
    """A labelled image set.

    store: uint8 (N, C, S, S) images; labels: int64 (N,) in [0, len(class_names));
    source_indices: int64 (N,), position of each image in the split it came from (for
    procedural data: its index in the generated stream), so disjointness can be checked.
    """

    store: ImageStore
    labels: torch.Tensor
    class_names: list[str]
    source_indices: torch.Tensor

    @classmethod
    def from_tensor(
        cls,
        images: torch.Tensor,
        labels: torch.Tensor,
        class_names: list[str],
        source_indices: torch.Tensor | None = None,
    ) -> ImageData:
        """A set held in memory; ``source_indices`` default to 0..N-1."""
        if source_indices is None:
            source_indices = torch.arange(len(labels), dtype=torch.int64)
        return cls(TensorImages(images), labels, class_names, source_indices)

    def __len__(self) -> int:
        return len(self.store)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        return self.store.shape[1]

    @property
    def images(self) -> torch.Tensor:
        """Every image as one uint8 tensor (N, C, S, S) in memory: for the probe, the kNN
        bank and small sets (a memory-mapped set is read whole)."""
        return self.store.to_tensor()

    def subset(self, indices: torch.Tensor) -> ImageData:
        """The images at ``indices`` (int64 (M,)), same classes."""
        return ImageData(
            self.store.subset(indices),
            self.labels[indices],
            self.class_names,
            self.source_indices[indices],
        )

    def in_memory(self) -> ImageData:
        """The same set with its images held as one tensor."""
        if isinstance(self.store, TensorImages):
            return self
        return ImageData.from_tensor(
            self.images, self.labels, self.class_names, self.source_indices
        )


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


def fits_on_device(nbytes: int, device: torch.device) -> bool:
    """Whether ``nbytes`` of images may be copied to ``device`` whole: on CUDA, within
    :data:`RESIDENT_SHARE` of its free memory; on the CPU never (the store already is in
    host memory, or memory-mapped, which the page cache keeps as well as a copy would)."""
    if device.type != "cuda":
        return False
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= RESIDENT_SHARE * free


class DeviceImages:
    """The training images as the trainer reads them.

    Resident (one uint8 tensor on the device, indexed there) when the store is a tensor or
    fits on the device (:func:`fits_on_device`); otherwise streamed: each batch read from
    the store on the CPU (pinned for a CUDA device) and copied over, the next batch read by
    a helper thread while the device computes.
    """

    def __init__(
        self,
        store: ImageStore,
        device: torch.device,
        fits: Callable[[int, torch.device], bool] = fits_on_device,
    ) -> None:
        self.store = store
        self.device = device
        self.resident: torch.Tensor | None = None
        if isinstance(store, TensorImages):
            self.resident = store.tensor.to(device)
        elif fits(store.nbytes, device):
            self.resident = torch.empty(store.shape, dtype=torch.uint8, device=device)
            for start in range(0, len(store), UPLOAD_CHUNK):
                rows = torch.arange(start, min(start + UPLOAD_CHUNK, len(store)))
                self.resident[start : start + len(rows)] = store.read(rows).to(device)

    def __len__(self) -> int:
        return len(self.store)

    def _fetch(self, indices: torch.Tensor) -> torch.Tensor:
        """Read ``indices`` (CPU) from the store into (pinned, when the device is CUDA)
        host memory."""
        batch = self.store.read(indices)
        return batch.pin_memory() if self.device.type == "cuda" else batch

    def batches(
        self, order: torch.Tensor, batch_size: int, steps: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(indices, uint8 images (B, C, S, S) on the device) for the first ``steps`` full
        batches of ``order`` (int64 (N,) on the device), in order."""
        slices = [order[s * batch_size : (s + 1) * batch_size] for s in range(steps)]
        if self.resident is not None:
            for indices in slices:
                yield indices, self.resident[indices]
            return
        cpu_slices = [indices.cpu() for indices in slices]
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead") as reader:
            pending = reader.submit(self._fetch, cpu_slices[0]) if steps else None
            for step, indices in enumerate(slices):
                assert pending is not None
                host = pending.result()
                if step + 1 < steps:
                    pending = reader.submit(self._fetch, cpu_slices[step + 1])
                yield indices, host.to(self.device, non_blocking=True)

    def read(self, indices: torch.Tensor) -> torch.Tensor:
        """uint8 images at ``indices`` (int64, any device) on the device."""
        if self.resident is not None:
            return self.resident[indices.to(self.device)]
        return self._fetch(indices.cpu()).to(self.device, non_blocking=True)
