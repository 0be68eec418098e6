"""Images decoded once into a memory-mapped uint8 file under ``<data dir>/cache/``.

A set of image files is decoded (and resized) the first time a run needs it, with a progress
bar, into ``cache/<family>-<signature>.npy``: a NumPy ``.npy`` file (its header holds the
shape) of uint8 (N, C, S, S), opened memory-mapped by every later run, so start-up costs a
listing of the files instead of decoding them, and training reads only the pages of the
batches it takes. ``family`` names the set and its image size (e.g. a folder at 64 px);
``signature`` is a digest of its file list with each file's size, modification and change
time (:func:`file_signature`): a file added, removed, replaced or touched gives a new signature,
hence a new cache, and the stale ones of the family are deleted once it is built.

Builds are atomic: the file is written under a temporary name and renamed when complete
(flushed to disk), so a reader never sees a partial cache, and two workers building the same
one at once both end with the same file.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

CACHE_FOLDER = "cache"  # inside the data root; reserved (contract/datasets.py)
# Bumped when decoding changes, so caches written by an older decoder are rebuilt.
DECODER_VERSION = 2
# Decoding threads: PIL's decoders and torch's resize release the GIL.
DECODE_THREADS = max(1, min(8, os.cpu_count() or 1))
# Images decoded per block (bounds the decoded images and futures held at a time).
DECODE_BLOCK = 512
# A temporary file not written to for this long belongs to a build that died.
STALE_BUILD_S = 3600.0


def file_signature(files: Iterable[tuple[str, os.stat_result]]) -> str:
    """A digest of (name, size, modification and change time) of every file, in order: 16 hex
    digits. The change time catches a file replaced by one of the same size whose
    modification time was carried over (``cp -p``, ``rsync -t``, ``touch -r``, ``tar x``):
    no one can set it."""
    digest = hashlib.sha256(f"decoder {DECODER_VERSION}\n".encode())
    for name, stat in files:
        line = f"{name}\t{stat.st_size}\t{stat.st_mtime_ns}\t{stat.st_ctime_ns}\n"
        digest.update(line.encode("utf-8", "surrogateescape"))  # names as the disk has them
    return digest.hexdigest()[:16]


def _open(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The cache at ``path`` memory-mapped read-only, or None if absent or not ``shape``."""
    try:
        array: np.ndarray = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return None
    if array.shape != shape or array.dtype != np.uint8:
        return None
    return array


def _remove_stale(cache_dir: Path, family: str, keep: Path) -> None:
    """Delete the family's other caches, and temporary files of builds that died."""
    now = time.time()
    for path in cache_dir.glob(f"{family}-*"):
        if path == keep:
            continue
        try:
            if path.suffix == ".tmp" and now - path.stat().st_mtime < STALE_BUILD_S:
                continue  # another process may be building it right now
            path.unlink()
        except FileNotFoundError:
            pass  # another process removed it first


def cached_images(
    cache_dir: Path,
    family: str,
    signature: str,
    shape: tuple[int, int, int, int],
    decode: Callable[[int], np.ndarray],
    description: str,
) -> np.ndarray:
    """uint8 ``shape`` (N, C, S, S) memory-mapped read-only: the cache of ``family`` with
    ``signature``, built first when missing by calling ``decode(i)`` (-> uint8 (C, S, S)) for
    i in 0..N-1, in threads, under a progress bar labelled ``description``. An exception
    from ``decode`` stops the build (nothing is left behind) and propagates."""
    path = cache_dir / f"{family}-{signature}.npy"
    cached = _open(path, shape)
    if cached is not None:
        return cached
    cache_dir.mkdir(parents=True, exist_ok=True)
    temporary = cache_dir / f"{family}-{signature}.{uuid.uuid4().hex}.tmp"
    try:
        target = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.uint8, shape=shape)
        with (
            ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="decode") as pool,
            tqdm(
                total=shape[0], desc=description, unit="img", file=sys.stderr, mininterval=1.0
            ) as bar,
        ):
            for start in range(0, shape[0], DECODE_BLOCK):
                stop = min(start + DECODE_BLOCK, shape[0])
                target[start:stop] = np.stack(list(pool.map(decode, range(start, stop))))
                bar.update(stop - start)
        target.flush()
        del target
        with temporary.open("rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    _remove_stale(cache_dir, family, path)
    built = _open(path, shape)
    if built is None:  # replaced by a concurrent build of another shape: cannot happen
        raise OSError(f"the image cache {path} cannot be read back")
    return built
