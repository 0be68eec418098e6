"""The loaders of the dataset registry's entries (contract/datasets.py).

A loader is a function ``load(request: LoadRequest) -> ImageData | tuple[ImageData,
ImageData]`` named by its entry's ``loader`` (``"package.module:function"``) and imported on
first use, for the built-in datasets (the modules beside this one) and plugins alike. What
it returns depends on the entry's probe rule (``contract.datasets.ProbeRule``): one labelled
set (``held_out``), (train, test) (``test_split``) or (train, probe) (``own_stream``).
Images held in memory may be of any size (they are resized to ``image_size`` after the
split); a memory-mapped set must be decoded at ``image_size``. A loader raises
:class:`contract.datasets.DatasetError` with a readable reason when it cannot load.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from contract import PLUGIN_DATASETS, RunConfig
from contract.datasets import DATASET_SPECS, DatasetError, DatasetSpec
from workers.engine.images import ImageData

Loaded = ImageData | tuple[ImageData, ImageData]


@dataclass(frozen=True)
class LoadRequest:
    """What a loader gets: the run config, its registry entry, the data root (where it may
    download, and whose ``cache/`` folder it may write), whether downloading is allowed, and
    for an entry that ``takes_path`` the folder ``dataset_path`` names, resolved inside the
    data root."""

    config: RunConfig
    spec: DatasetSpec
    data_root: Path
    download: bool
    folder: Path | None = None


Loader = Callable[[LoadRequest], Loaded]
_LOADERS: dict[str, Loader] = {}


def dataset_loader(name: str) -> Loader:
    """The loading function of dataset ``name`` (imported once, from its entry's
    ``loader``). Raises :class:`DatasetError` naming the plugin when it cannot."""
    if name in _LOADERS:
        return _LOADERS[name]
    spec = DATASET_SPECS.get(name)
    if spec is None:
        raise DatasetError(f"dataset {name!r} is not installed here")
    origin = f"dataset plugin {PLUGIN_DATASETS[name]}" if name in PLUGIN_DATASETS else name
    module_name, _, attribute = spec.loader.partition(":")
    try:
        # Loaders are named by the registry, at run time: a plugin's is an optional import.
        loader: Loader = getattr(importlib.import_module(module_name), attribute)
    except Exception as exc:
        raise DatasetError(
            f"{origin}: cannot import its loader {spec.loader} ({exc.__class__.__name__}: {exc})"
        ) from exc
    if not callable(loader):
        raise DatasetError(f"{origin}: loader {spec.loader} is not a function")
    _LOADERS[name] = loader
    return loader


def stream_generator(seed: int, stream: int) -> torch.Generator:
    """Independent random streams per (seed, purpose): 0 = train, 1 = probe, 2 = splits."""
    return torch.Generator().manual_seed(seed * 1_000_003 + stream * 7_919 + 17)
