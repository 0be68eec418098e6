"""Datasets as (train, probe) splits, loaded through the dataset registry.

Every dataset is an entry of ``contract.datasets.DATASET_SPECS`` whose loader
(workers/engine/datasets/) returns its images; :func:`load_splits` calls it and draws the
probe split by the entry's rule, so that every dataset comes out the same way: RGB uint8
images (N, 3, S, S) with S = ``config.image_size``, the probe never sharing an image with
train, both seeded:

- ``own_stream`` (shapes): the loader's own (train, probe);
- ``test_split`` (CIFAR-10/100, STL-10): train from the train split (a seeded subset of
  ``train_size``), probe a seeded, stratified ``probe_size`` subset of the test split;
- ``held_out`` (digits, image folders): a seeded, stratified held-out part of
  ``min(probe_size, 25% of N)`` images, at least ``MIN_HELD_OUT_PROBE``; train is the rest.

The probe is always held in memory; the training set may be memory-mapped (an image folder:
workers/engine/images.py says how the trainer reads it). Splits held in memory up to 512
MiB are cached per process (not memory-mapped ones, whose files may change); callers must
treat the tensors as read-only.
"""

from __future__ import annotations

from pathlib import Path

import torch

from contract import RunConfig
from contract.datasets import DATASET_SPECS, DatasetError, DatasetSpec, resolve_inside
from workers.engine.datasets import LoadRequest, dataset_loader, stream_generator
from workers.engine.images import ImageData, TensorImages, resize_square

HELD_OUT_FRACTION = 0.25  # largest probe share of datasets without a test split
# Fewest images held out as the probe, however small the set: a probe of n images has at most
# n - 1 directions, so a tiny one reads collapsed whatever the network does (4 images gave a
# probe of 1, spread 0: complete collapse from epoch 1). 16 leaves the dimensional limit of 4
# directions (workers/engine/verdict.py) well inside what the probe can show.
MIN_HELD_OUT_PROBE = 16

_CACHE: dict[tuple[object, ...], tuple[ImageData, ImageData]] = {}
_CACHE_MAX_ENTRIES = 4
_CACHE_MAX_BYTES = 512 * 2**20  # larger splits (e.g. CIFAR at 224 px) are not kept around


def load_splits(
    config: RunConfig, data_root: Path, download: bool = True
) -> tuple[ImageData, ImageData]:
    """Load ``config.dataset`` as (train, probe) at ``config.image_size``.

    The probe split never shares an image with train. ``download`` allows a loader to fetch
    its files (CIFAR/STL) into ``data_root``. Raises :class:`DatasetError` with a readable
    reason.
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
    spec = DATASET_SPECS.get(config.dataset)
    if spec is None:
        raise DatasetError(f"unknown dataset {config.dataset!r}")
    loaded = dataset_loader(spec.name)(
        LoadRequest(config, spec, data_root, download, _folder(spec, config, data_root))
    )
    train, probe = _split(spec, loaded, config)
    train, probe = _at_size(train, config.image_size), _at_size(probe, config.image_size)
    _check_classes(spec, train, probe)
    splits = train, probe.in_memory()
    in_memory = all(isinstance(part.store, TensorImages) for part in splits)
    if in_memory and sum(part.store.nbytes for part in splits) <= _CACHE_MAX_BYTES:
        if len(_CACHE) >= _CACHE_MAX_ENTRIES:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = splits
    return splits


def _folder(spec: DatasetSpec, config: RunConfig, data_root: Path) -> Path | None:
    """The folder a dataset that ``takes_path`` is read from, checked to exist."""
    if not spec.takes_path:
        return None
    if not config.dataset_path:
        raise DatasetError(f"dataset {spec.name!r} needs dataset_path")
    folder = resolve_inside(data_root, config.dataset_path)
    if not folder.is_dir():
        # named as the request did: the server's own folders are not shown on the run's page
        raise DatasetError(f"folder {config.dataset_path!r} does not exist in the data directory")
    return folder


def _split(
    spec: DatasetSpec, loaded: ImageData | tuple[ImageData, ImageData], config: RunConfig
) -> tuple[ImageData, ImageData]:
    """(train, probe) from what the loader returned, by the entry's probe rule."""
    expects_one = spec.probe == "held_out"
    if isinstance(loaded, ImageData) != expects_one:
        wanted = "one ImageData" if expects_one else "a (train, probe or test) pair"
        raise DatasetError(
            f"the loader of {spec.name!r} (probe rule {spec.probe}) must return {wanted}"
        )
    if isinstance(loaded, ImageData):
        return _held_out_split(loaded, config)
    first, second = loaded
    if spec.probe == "own_stream":
        return first, second
    train = _random_subset(first, config.train_size, stream_generator(config.seed, 0))
    probe_order = stratified_order(second.labels, stream_generator(config.seed, 1))
    return train, second.subset(torch.sort(probe_order[: config.probe_size]).values)


def _at_size(data: ImageData, size: int) -> ImageData:
    """``data`` with its images at ``size`` px: resized when held in memory; a memory-mapped
    set must have been decoded at that size."""
    if isinstance(data.store, TensorImages):
        data.store = TensorImages(resize_square(data.store.tensor, size))
    elif data.store.shape[-2:] != (size, size):
        raise DatasetError(f"images are {data.store.shape[-1]} px, not {size} px")
    return data


def _check_classes(spec: DatasetSpec, train: ImageData, probe: ImageData) -> None:
    """The loaded classes agree with the registry, and every label names one of them."""
    expected = spec.num_classes
    if expected is not None and train.num_classes != expected:
        raise DatasetError(
            f"{spec.name} files name {train.num_classes} classes, the registry {expected}"
        )
    for part in (train, probe):
        if len(part.labels) != len(part) or (
            len(part)
            and not 0 <= int(part.labels.min()) <= int(part.labels.max()) < part.num_classes
        ):
            raise DatasetError(
                f"{spec.name}: labels must be 0..{part.num_classes - 1}, one per image"
            )


# -- splits -------------------------------------------------------------------------------------


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
    """Seeded stratified probe of min(probe_size, 25% of N) images, at least
    ``MIN_HELD_OUT_PROBE``; train = the rest."""
    probe_count = min(
        config.probe_size, max(MIN_HELD_OUT_PROBE, int(len(full) * HELD_OUT_FRACTION))
    )
    if len(full) - probe_count < MIN_HELD_OUT_PROBE:
        raise DatasetError(
            f"{_named(config)} has only {len(full)} images: too few to split (at least "
            f"{2 * MIN_HELD_OUT_PROBE}: {MIN_HELD_OUT_PROBE} held out for the diagnostics, "
            "the rest to train on)"
        )
    order = stratified_order(full.labels, stream_generator(config.seed, 2))
    probe_indices = torch.sort(order[:probe_count]).values
    train_indices = order[probe_count:]
    if config.train_size is not None:
        train_indices = train_indices[: config.train_size]
    train_indices = torch.sort(train_indices).values
    return full.subset(train_indices), full.subset(probe_indices)


def _named(config: RunConfig) -> str:
    """The dataset as a message names it: an image folder by its path in the data root."""
    if config.dataset_path:
        return f"image folder {config.dataset_path!r}"
    return config.dataset


def _random_subset(data: ImageData, size: int | None, generator: torch.Generator) -> ImageData:
    if size is None or size >= len(data):
        return data
    keep = torch.sort(torch.randperm(len(data), generator=generator)[:size]).values
    return data.subset(keep)
