"""The dataset registry's torch-free half, and dataset paths checked without touching torch.

Every dataset is one :class:`DatasetSpec` in :data:`DATASET_SPECS`: its name, whether it is
read from a folder (``dataset_path``), its classes where they are known before loading, how
its probe split is drawn, and the engine function that loads it (imported by the workers
only). The run config's ``dataset`` field, the API's class counts (:data:`DATASET_CLASSES`,
kNN chance = 1 / classes) and the engine's loading all derive from it. Dataset plugins add
entries (:mod:`contract.plugins`, group ``collapse_lab.datasets``).

The API refuses a bad ``dataset_path`` with the same rules the worker applies when it reads
the folder (:func:`resolve_inside`).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

# Longest dataset_path accepted: far above any real folder name, far below what makes
# the operating system raise instead of answering "no such folder".
MAX_DATASET_PATH_CHARS = 512
# Top-level folders of the data root that hold the service's own files, never images:
# checkpoints, and the decoded image caches (workers/engine/image_cache.py).
RESERVED_FOLDERS = frozenset({"runs", "cache"})

# How a dataset's held-out probe split is drawn (the loader returns what the rule needs;
# workers/engine/data.py applies it):
# - "own_stream": the loader returns (train, probe) itself, the probe drawn from a random
#   stream of its own (procedural data: it never repeats a training image);
# - "test_split": the loader returns (train, test); the probe is a seeded, class-stratified
#   subset of ``probe_size`` test images and ``train_size`` caps a seeded subset of train;
# - "held_out": the loader returns one labelled set; the probe is a seeded, class-stratified
#   ``min(probe_size, 25% of it)`` (at least 16 images), and train is the rest.
ProbeRule = Literal["own_stream", "test_split", "held_out"]
# A dataset's or a method's name (contract/plugins.py checks a plugin's method by these
# too): the runs table keeps both in 32 characters; lower case keeps URLs and CLI simple.
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
NAME_RULE = "must be lower case letters, digits, - or _ (<= 32)"
# What the workers import: a dataset's loader, a method's implementation.
IMPORT_PATH_PATTERN = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset's entry in the registry.

    ``loader`` (``"package.module:function"``) is the engine's loading function, imported by
    the workers only (see ``workers/engine/datasets/__init__.py`` for its signature).
    ``class_names``: the classes, when they are fixed (the loader uses these very names);
    ``classes``: their count, when only the count is fixed and the loader reads the names
    (e.g. from an archive's meta file). Neither for a dataset whose classes come from its
    files (an image folder: one per sub-folder). ``takes_path``: read from ``dataset_path``,
    a folder inside the data root (required for it, refused for the others).
    """

    name: str
    title: str
    loader: str
    probe: ProbeRule
    takes_path: bool = False
    class_names: tuple[str, ...] | None = None
    classes: int | None = None

    @property
    def num_classes(self) -> int | None:
        """The class count when known before loading (the kNN chance level is 1 / it)."""
        return len(self.class_names) if self.class_names is not None else self.classes


BUILTIN_DATASETS = (
    DatasetSpec(
        name="shapes",
        title="Shapes (procedural, rendered from the seed)",
        loader="workers.engine.datasets.shapes:load_shapes",
        probe="own_stream",
        class_names=(
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
        ),
    ),
    DatasetSpec(
        name="digits",
        title="Digits (scikit-learn's 8x8 handwritten digits)",
        loader="workers.engine.datasets.digits:load_digits",
        probe="held_out",
        class_names=tuple(str(digit) for digit in range(10)),
    ),
    DatasetSpec(
        name="cifar10",
        title="CIFAR-10",
        loader="workers.engine.datasets.archives:load_cifar10",
        probe="test_split",
        classes=10,
    ),
    DatasetSpec(
        name="cifar100",
        title="CIFAR-100 (fine labels)",
        loader="workers.engine.datasets.archives:load_cifar100",
        probe="test_split",
        classes=100,
    ),
    DatasetSpec(
        name="stl10",
        title="STL-10 (the 5,000 labelled training images)",
        loader="workers.engine.datasets.archives:load_stl10",
        probe="test_split",
        classes=10,
    ),
    DatasetSpec(
        name="fashion_mnist",
        title="Fashion-MNIST (28x28 grey clothing images)",
        loader="workers.engine.datasets.archives:load_fashion_mnist",
        probe="test_split",
        classes=10,
    ),
    DatasetSpec(
        name="imagefolder",
        title="Image folder (one sub-folder per class)",
        loader="workers.engine.datasets.imagefolder:load_imagefolder",
        probe="held_out",
        takes_path=True,
    ),
)

# name -> entry, built-ins first, then plugins (contract/plugins.py), in registration order.
DATASET_SPECS: dict[str, DatasetSpec] = {}
# name -> class count or None (known only once a worker reads the files); derived.
DATASET_CLASSES: dict[str, int | None] = {}


def known_dataset(name: str) -> str:
    """``name`` when the registry has it (plugins included); else why not, naming the choices.
    The run config's ``dataset`` field validates with it (so does every method's request,
    which copies the field)."""
    if name not in DATASET_SPECS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_SPECS)}")
    return name


def dataset_path_problem(dataset: object, path: str | None) -> str | None:
    """Why ``dataset`` cannot run with ``path``: a dataset that reads a folder needs one, the
    others take none (it would be ignored); None when it can."""
    spec = DATASET_SPECS.get(dataset) if isinstance(dataset, str) else None
    if spec is None:  # an unknown dataset is reported on its own field
        return None
    if spec.takes_path and not path:
        return f"dataset {dataset!r} needs dataset_path"
    if not spec.takes_path and path is not None:
        takes_path = ", ".join(repr(s.name) for s in DATASET_SPECS.values() if s.takes_path)
        return f"dataset_path is only for {takes_path}"
    return None


def check_dataset_spec(spec: DatasetSpec, taken: Collection[str]) -> str | None:
    """Why ``spec`` cannot join the registry, or None."""
    if not isinstance(spec.name, str) or not NAME_PATTERN.match(spec.name):
        return f"dataset name {spec.name!r} {NAME_RULE}"
    if spec.name in taken:
        return f"dataset name {spec.name!r} is already taken"
    if not isinstance(spec.loader, str) or not IMPORT_PATH_PATTERN.match(spec.loader):
        return f"loader {spec.loader!r} must be 'package.module:function'"
    if spec.probe not in get_args(ProbeRule):
        return f"probe {spec.probe!r} is not one of {list(get_args(ProbeRule))}"
    if spec.class_names is not None and (
        not spec.class_names or not all(isinstance(n, str) for n in spec.class_names)
    ):
        return "class_names must be a non-empty tuple of strings (or None)"
    if spec.classes is not None and (
        spec.class_names is not None or not isinstance(spec.classes, int) or spec.classes < 1
    ):
        return "classes must be a positive count, and only without class_names"
    return None


def register_dataset(spec: DatasetSpec) -> None:
    """Add ``spec`` to the registry (checked with :func:`check_dataset_spec` first)."""
    DATASET_SPECS[spec.name] = spec
    DATASET_CLASSES[spec.name] = spec.num_classes


for _builtin in BUILTIN_DATASETS:
    register_dataset(_builtin)


class DatasetError(ValueError):
    """A dataset that cannot be loaded; the message says why and what to do."""


def resolve_inside(data_root: Path, relative: str, root_name: str = "the data directory") -> Path:
    """``data_root / relative`` resolved, refusing NUL bytes, over-long paths, absolute paths,
    ``..``, the data root itself, its reserved folders (``runs``: checkpoints) and symlinks
    that lead outside ``data_root``. Raises :class:`DatasetError` naming the problem, and the
    data root as ``root_name`` (never its path: the API's messages do not show it)."""
    if "\x00" in relative:
        raise DatasetError("dataset_path may not contain a NUL byte")
    if len(relative) > MAX_DATASET_PATH_CHARS:
        raise DatasetError(
            f"dataset_path is {len(relative)} characters long; at most {MAX_DATASET_PATH_CHARS}"
        )
    candidate = Path(relative)
    if candidate.is_absolute() or candidate.drive:
        raise DatasetError(f"dataset_path {relative!r} must be relative to {root_name}")
    if ".." in candidate.parts:
        raise DatasetError(f"dataset_path {relative!r} may not contain '..'")
    if not candidate.parts:
        raise DatasetError(f"dataset_path must name a folder inside {root_name}, not its root")
    if candidate.parts[0] in RESERVED_FOLDERS:
        raise DatasetError(
            f"dataset_path {relative!r} is inside {candidate.parts[0]!r}, "
            "which holds the service's own files"
        )
    root = data_root.resolve()
    try:
        resolved = (root / candidate).resolve()
    except (OSError, ValueError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        problem = getattr(exc, "strerror", None) or "a symlink loop or an invalid path"
        raise DatasetError(f"dataset_path {relative!r} cannot be resolved: {problem}") from None
    if not resolved.is_relative_to(root):
        raise DatasetError(f"dataset_path {relative!r} leads outside {root_name}")
    if resolved == root or resolved.relative_to(root).parts[0] in RESERVED_FOLDERS:
        raise DatasetError(
            f"dataset_path {relative!r} leads to {root_name} itself or a reserved folder"
        )
    return resolved


def existing_folder(data_root: Path, relative: str, root_name: str = "the data directory") -> Path:
    """:func:`resolve_inside`, and a folder there: the rule the API and the command line apply
    to ``dataset_path`` before they accept a run. ``root_name``: how the message names the
    data root (the API does not show its path)."""
    folder = resolve_inside(data_root, relative, root_name)
    if not folder.is_dir():
        raise DatasetError(f"no folder {relative!r} in {root_name}")
    return folder
