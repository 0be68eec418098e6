"""2-D pictures of the probe embeddings, one per epoch, stable from frame to frame.

Runs on its own (the service calls it off the training path): give it the (N, d) probe
embeddings of an epoch and the previous epoch's (N, 2) layout, get the new layout.

UMAP (McInnes et al. 2018, umap-learn) with three savings over calling it from scratch:

* the exact k-nearest-neighbour graph is computed with one torch matmul and handed to UMAP as
  ``precomputed_knn`` (no NN-descent, no O(N^2) distance matrix in numba);
* from the second epoch on, the layout is warm-started from the previous one
  (``init=previous``) and optimised for far fewer epochs;
* the result is aligned to the previous layout with a Procrustes similarity transform
  (rotation/reflection, uniform scale, translation), so an animation over epochs does not
  spin or flip.

One scale for the whole run (size = spread, see docs/design.md): UMAP keeps neighbourhoods,
not scale, so the tiny differences left in a collapsed embedding would still fill the
picture. Every layout is therefore centred on the origin and scaled so that its RMS radius is
``RADIUS_PER_SPREAD x spread(z)``, spread = sqrt of the total variance of z/||z||
(``contract.metrics.spread_of``, the epoch record's ``EmbeddingMetrics.spread``): size =
spread, shape = neighbourhoods. The factor is an absolute
constant, so no state is needed to keep it (a frame projected again, out of order or on
another worker, gets the same scale), and pictures of different runs compare directly: a
run whose spread falls to a tenth shows a cloud a tenth of its epoch-0 size. Spread is at
most 1 (unit vectors), so the RMS radius never exceeds ``RADIUS_PER_SPREAD``.

PCA is the instant fallback (``method="pca"``) and what degenerate input gets: a collapsed
run has (nearly) identical embeddings, on which a neighbour graph means nothing and UMAP's
optimisation can fail; the fallback is logged and reported in ``Projector.fallback_reason``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import warnings
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal

import numpy as np
import torch
from numba.core.caching import FunctionCache
from numba.core.dispatcher import Dispatcher
from scipy.linalg import orthogonal_procrustes

from contract.metrics import spread_of
from workers.engine.metrics import singular_spectrum

logger = logging.getLogger(__name__)

ProjectionMethod = Literal["umap", "pca"]
KnnMetric = Literal["cosine", "euclidean"]

FIRST_EPOCHS = 200  # optimisation epochs without a previous layout (umap default: 500)
WARM_EPOCHS = 60  # optimisation epochs when warm-started from the previous layout
# initial SGD step size of a warm start (umap default 1.0). Measured on 2,000 x 128 mixtures:
# when 30% of the points change cluster between frames, trustworthiness 0.958 at 0.25 (60
# epochs), 0.951 at 0.1, 0.960 from scratch; on slowly drifting frames points move 11% of the
# layout's size per frame at 0.25 against 95% for from-scratch layouts (bench_projection.py)
WARM_LEARNING_RATE = 0.25
# below this total variance of the (normalised) embedding the points are one blob:
# the neighbour graph is noise, UMAP is skipped
DEGENERATE_VARIANCE = 1e-10
_JITTER = 1e-3  # spread of the deterministic jitter that keeps a collapsed cloud visible
# RMS radius of the served layout per unit of spread(z): an isotropic embedding (spread
# about 1) fills a disc of RMS radius about 10, UMAP's own order of magnitude
RADIUS_PER_SPREAD = 10.0


def exact_knn(
    z: np.ndarray, n_neighbors: int, metric: KnnMetric = "cosine"
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours of every row, the row itself first.

    z: (N, d). Returns (indices (N, k) int64, distances (N, k) float32), k = n_neighbors,
    ascending distance; cosine distance is 1 - cos. One (chunk, N) similarity block at a time.
    """
    x = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32))
    if metric == "cosine":
        x = torch.nn.functional.normalize(x, dim=1, eps=1e-12)
    squared_norms = x.pow(2).sum(dim=1)
    indices, distances = [], []
    for start in range(0, x.shape[0], 1024):
        block = x[start : start + 1024]
        similarity = block @ x.T  # (b, N)
        if metric == "cosine":
            distance = (1.0 - similarity).clamp_min(0.0)
        else:
            distance = (
                squared_norms[start : start + 1024, None] + squared_norms[None, :] - 2 * similarity
            ).clamp_min(0.0)
        rows = torch.arange(block.shape[0])
        distance[rows, rows + start] = -1.0  # the point itself comes first, even among ties
        nearest, index = distance.topk(n_neighbors, dim=1, largest=False)
        nearest = nearest.clamp_min(0.0)
        indices.append(index)
        distances.append(nearest if metric == "cosine" else nearest.sqrt())
    return torch.cat(indices).numpy(), torch.cat(distances).numpy()


def pca_2d(z: np.ndarray) -> np.ndarray:
    """First two principal components. z: (N, d) -> (N, 2) float32; a constant input gives
    all zeros (not NaN), an input with one varying direction a zero second column."""
    x = np.asarray(z, dtype=np.float64)
    centred = x - x.mean(axis=0, keepdims=True)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    coordinates = centred @ components[:2].T
    if coordinates.shape[1] < 2:
        coordinates = np.pad(coordinates, ((0, 0), (0, 2 - coordinates.shape[1])))
    # fix the sign of each axis so reruns and near-identical inputs agree
    signs = np.sign(coordinates[np.abs(coordinates).argmax(axis=0), [0, 1]])
    signs[signs == 0] = 1.0
    return np.asarray(coordinates * signs, dtype=np.float32)


def procrustes_align(
    layout: np.ndarray, reference: np.ndarray, allow_scaling: bool = True
) -> np.ndarray:
    """Best similarity transform (rotation/reflection, translation and, if allowed, uniform
    scale) of ``layout`` onto ``reference``, both (N, 2) with row i the same sample.
    Returns (N, 2). :func:`project` aligns rotation only and sets the scale itself."""
    source = layout.astype(np.float64)
    target = reference.astype(np.float64)
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    source_centred, target_centred = source - source_mean, target - target_mean
    source_norm = np.linalg.norm(source_centred)
    if source_norm == 0 or np.linalg.norm(target_centred) == 0:
        return np.asarray(source_centred + target_mean, dtype=np.float32)
    rotation, singular_sum = orthogonal_procrustes(source_centred, target_centred)
    scale = singular_sum / source_norm**2 if allow_scaling else 1.0
    return np.asarray(scale * source_centred @ rotation + target_mean, dtype=np.float32)


def rms_radius(points: np.ndarray) -> float:
    """RMS distance of 2-D points (N, 2) from their centroid."""
    x = np.asarray(points, dtype=np.float64)
    return float(np.sqrt(((x - x.mean(axis=0)) ** 2).sum(axis=1).mean()))


def to_run_scale(layout: np.ndarray, z: np.ndarray) -> np.ndarray:
    """The layout (N, 2) centred on the origin and scaled to RMS radius
    ``RADIUS_PER_SPREAD * spread(z)`` (its shape unchanged), the spread of the epoch record
    (``contract.metrics.spread_of`` of z's spectrum)."""
    spread = spread_of(singular_spectrum(torch.from_numpy(np.ascontiguousarray(z))))
    centred = np.asarray(layout, dtype=np.float64)
    centred = centred - centred.mean(axis=0)
    radius = rms_radius(centred)
    if radius == 0:
        return np.asarray(centred, dtype=np.float32)
    return np.asarray(centred * (RADIUS_PER_SPREAD * spread / radius), dtype=np.float32)


def trustworthiness(z: np.ndarray, layout: np.ndarray, n_neighbors: int = 5) -> float:
    """scikit-learn's trustworthiness of a layout (N, 2) of z (N, d): 1 = every 2-D neighbour
    is a true neighbour (Venna & Kaski 2001)."""
    # imported here: scikit-learn costs every worker process a second at start, and only
    # the projection's quality checks use it
    from sklearn.manifold import trustworthiness as sklearn_trustworthiness

    return float(sklearn_trustworthiness(z, layout, n_neighbors=n_neighbors))


def _degenerate(z: np.ndarray, metric: KnnMetric, n_neighbors: int) -> str | None:
    """Why z cannot be laid out by UMAP, or None."""
    x = np.asarray(z, dtype=np.float64)
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.where(norms > 0, norms, 1.0)
    if x.shape[0] <= n_neighbors + 1:
        return f"only {x.shape[0]} points for {n_neighbors} neighbours"
    total_variance = float(x.var(axis=0).sum())
    if total_variance < DEGENERATE_VARIANCE:
        return f"embeddings are identical (total variance {total_variance:.1e}): collapsed"
    return None


def _jitter(layout: np.ndarray, seed: int) -> np.ndarray:
    spread = float(np.abs(layout).max()) or 1.0
    noise = np.random.default_rng(seed).normal(scale=_JITTER * spread, size=layout.shape)
    return (layout + noise).astype(np.float32)


def _equal_extents(layout: np.ndarray) -> np.ndarray:
    """The layout (N, 2) rotated so that its x and y ranges are equal.

    UMAP rescales an init array to [0, 10] on each axis separately, which would stretch a
    wide layout; with equal ranges that rescaling is uniform and keeps the arrangement.
    Such a rotation exists: the range difference changes sign between angles t and t + 90°.
    """
    centred = layout.astype(np.float64) - layout.mean(axis=0)

    def rotated(angle: float) -> np.ndarray:
        cos, sin = np.cos(angle), np.sin(angle)
        return np.asarray(centred @ np.array([[cos, -sin], [sin, cos]]))

    def range_difference(angle: float) -> float:
        points = rotated(angle)
        extent = points.max(axis=0) - points.min(axis=0)
        return float(extent[0] - extent[1])

    low, high = 0.0, np.pi / 2
    low_sign = np.sign(range_difference(low))
    for _ in range(40):
        middle = (low + high) / 2
        if np.sign(range_difference(middle)) == low_sign:
            low = middle
        else:
            high = middle
    return rotated((low + high) / 2).astype(np.float32)


class _TolerantCache(FunctionCache):
    """numba's on-disk cache of a kernel, where a file that cannot be read (truncated,
    written by a crashed process) or written (disk full, quota) is a miss: the kernel is
    compiled as without a cache, and the projection does not fail for a cache's sake. An
    unreadable index is removed, so that this compile writes a good one."""

    def load_overload(self, sig: Any, target_context: Any) -> Any:
        try:
            return super().load_overload(sig, target_context)  # type: ignore[no-untyped-call]
        except Exception as error:  # whatever unpickling a damaged file raises
            logger.warning("numba cache of %s unreadable (%r): compiled again", self._name, error)
            with contextlib.suppress(OSError):
                os.remove(self._cache_file._index_path)
            return None

    def save_overload(self, sig: Any, data: Any) -> None:
        try:
            super().save_overload(sig, data)  # type: ignore[no-untyped-call]
        except Exception as error:
            logger.warning("numba cache of %s not written (%r)", self._name, error)


def cache_kernel(kernel: Dispatcher) -> None:
    """Give a numba kernel compiled without ``cache=True`` the on-disk cache (what
    ``Dispatcher.enable_caching`` does, with :class:`_TolerantCache`); a kernel whose
    file has no writable folder for its cache is left uncached."""
    # RuntimeError: numba found no writable place for this file's cache
    with contextlib.suppress(RuntimeError):
        kernel._cache = _TolerantCache(kernel.py_func)  # type: ignore[attr-defined,no-untyped-call]


_UMAP_IMPORT = threading.Lock()  # a worker's warm-up thread and its first task may race
_UMAP: list[ModuleType] = []  # umap, once _umap() has switched its kernels' cache on


def _umap() -> ModuleType:
    """umap-learn, imported on first use, with numba's on-disk cache switched on for every
    kernel of umap and pynndescent: most are compiled without ``cache=True``, so each new
    process (every projection worker, every test) compiled them again: a worker's warm-up
    took 4.7 s, 0.13 s from the cache, the same layouts to the bit. The cache lives in each
    package's ``__pycache__``, else numba's user-wide folder (``NUMBA_CACHE_DIR``)."""
    with _UMAP_IMPORT:
        if _UMAP:
            return _UMAP[0]
        import umap  # noqa: F401  (imports pynndescent, whose kernels it calls)

        for name, module in list(sys.modules.items()):
            if module is None or name.split(".")[0] not in ("umap", "pynndescent"):
                continue
            for value in list(vars(module).values()):
                if isinstance(value, Dispatcher):
                    cache_kernel(value)
        _UMAP.append(sys.modules["umap"])
        return _UMAP[0]


def _umap_layout(
    z: np.ndarray,
    previous: np.ndarray | None,
    seed: int,
    n_neighbors: int,
    metric: KnnMetric,
) -> np.ndarray:
    knn_indices, knn_distances = exact_knn(z, n_neighbors, metric)
    reducer = _umap().UMAP(
        n_neighbors=n_neighbors,
        n_components=2,
        metric=metric,
        precomputed_knn=(knn_indices, knn_distances, None),
        init="spectral" if previous is None else _equal_extents(previous),
        n_epochs=FIRST_EPOCHS if previous is None else WARM_EPOCHS,
        learning_rate=1.0 if previous is None else WARM_LEARNING_RATE,
        random_state=seed,
    )
    with warnings.catch_warnings():
        # no NNDescent index is built, so umap cannot .transform() new points: not needed
        warnings.filterwarnings("ignore", message=".*knn_search_index.*")
        # random_state makes the layout reproducible, at the price of numba parallelism
        warnings.filterwarnings("ignore", message=".*n_jobs value 1 overridden.*")
        # a near-collapsed embedding can make umap divide by zero: its NaN layout is caught
        # by _project, which draws PCA instead and says so with the projection
        warnings.filterwarnings("ignore", category=RuntimeWarning, message="invalid value")
        return np.asarray(reducer.fit_transform(np.asarray(z, dtype=np.float32)), dtype=np.float32)


def _project(
    z: np.ndarray,
    previous: np.ndarray | None,
    seed: int,
    method: ProjectionMethod,
    n_neighbors: int,
    metric: KnnMetric,
) -> tuple[np.ndarray, str | None]:
    """The layout and, when UMAP was asked for but PCA was used, the reason."""
    if previous is not None and previous.shape != (z.shape[0], 2):
        raise ValueError(f"previous layout has shape {previous.shape}, expected ({len(z)}, 2)")
    fallback_reason = None
    if method == "umap":
        fallback_reason = _degenerate(z, metric, n_neighbors)
    if method == "umap" and fallback_reason is None:
        layout = _umap_layout(z, previous, seed, n_neighbors, metric)
        if not np.isfinite(layout).all():
            fallback_reason = "UMAP produced non-finite coordinates"
    if method == "pca" or fallback_reason is not None:
        layout = _jitter(pca_2d(z), seed)
        if fallback_reason is not None:
            # expected of a collapsing run, and recorded with the projection: not a warning
            logger.info("projection: PCA instead of UMAP (%s)", fallback_reason)
    if previous is not None:
        # rotation/reflection only: the scale comes from the embedding's spread below
        layout = procrustes_align(layout, previous, allow_scaling=False)
    return to_run_scale(layout, z), fallback_reason


def project(
    z: np.ndarray,
    previous: np.ndarray | None = None,
    seed: int = 0,
    method: ProjectionMethod = "umap",
    n_neighbors: int = 15,
    metric: KnnMetric = "cosine",
) -> np.ndarray:
    """2-D layout of the embeddings z (N, d) -> (N, 2) float32, centred on the origin with
    RMS radius ``RADIUS_PER_SPREAD * spread(z)`` (one scale for every run: :func:`to_run_scale`).

    ``previous`` (N, 2): last epoch's layout of the same N samples in the same order; UMAP is
    warm-started from it and the result aligned to it (Procrustes). Same inputs and seed give
    the same layout. ``method="pca"`` is instant; degenerate (collapsed) input falls back to
    PCA with a logged warning (use :class:`Projector` to read the reason).
    """
    layout, _ = _project(z, previous, seed, method, n_neighbors, metric)
    return layout


@dataclass
class Projector:
    """Projects a run's epochs one after another, remembering the previous layout.

    ``fallback_reason`` says why the last call used PCA although UMAP was asked for (None if
    it did not)."""

    method: ProjectionMethod = "umap"
    seed: int = 0
    n_neighbors: int = 15
    metric: KnnMetric = "cosine"
    previous: np.ndarray | None = field(default=None, repr=False)
    fallback_reason: str | None = None

    def project(self, z: np.ndarray) -> np.ndarray:
        """z: (N, d) this epoch's probe embeddings -> (N, 2) layout aligned to the last."""
        layout, self.fallback_reason = _project(
            z, self.previous, self.seed, self.method, self.n_neighbors, self.metric
        )
        self.previous = layout
        return layout
