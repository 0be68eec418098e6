"""Dataset paths, checked without touching torch: the API refuses a bad ``dataset_path`` with
the same rules the worker applies when it reads the folder."""

from __future__ import annotations

from pathlib import Path

# Longest dataset_path accepted: far above any real folder name, far below what makes
# the operating system raise instead of answering "no such folder".
MAX_DATASET_PATH_CHARS = 512
# Top-level folders of the data root that hold the service's own files, never images.
RESERVED_FOLDERS = frozenset({"runs"})


class DatasetError(ValueError):
    """A dataset that cannot be loaded; the message says why and what to do."""


def resolve_inside(data_root: Path, relative: str) -> Path:
    """``data_root / relative`` resolved, refusing NUL bytes, over-long paths, absolute paths,
    ``..``, the data root itself, its reserved folders (``runs``: checkpoints) and symlinks
    that lead outside ``data_root``. Raises :class:`DatasetError` naming the problem."""
    if "\x00" in relative:
        raise DatasetError("dataset_path may not contain a NUL byte")
    if len(relative) > MAX_DATASET_PATH_CHARS:
        raise DatasetError(
            f"dataset_path is {len(relative)} characters long; at most {MAX_DATASET_PATH_CHARS}"
        )
    candidate = Path(relative)
    if candidate.is_absolute() or candidate.drive:
        raise DatasetError(f"dataset_path {relative!r} must be relative to the data root")
    if ".." in candidate.parts:
        raise DatasetError(f"dataset_path {relative!r} may not contain '..'")
    if not candidate.parts:
        raise DatasetError("dataset_path must name a folder inside the data root, not the root")
    if candidate.parts[0] in RESERVED_FOLDERS:
        raise DatasetError(
            f"dataset_path {relative!r} is inside {candidate.parts[0]!r}, "
            "which holds the service's own files"
        )
    root = data_root.resolve()
    try:
        resolved = (root / candidate).resolve()
    except (OSError, ValueError) as exc:
        raise DatasetError(f"dataset_path {relative!r} cannot be resolved: {exc}") from None
    if not resolved.is_relative_to(root):
        raise DatasetError(f"dataset_path {relative!r} leads outside the data root {root}")
    if resolved == root or resolved.relative_to(root).parts[0] in RESERVED_FOLDERS:
        raise DatasetError(f"dataset_path {relative!r} leads to the data root or a reserved folder")
    return resolved
