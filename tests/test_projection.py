"""2-D projection: shapes, reproducibility, frame alignment and degenerate inputs."""

from __future__ import annotations

import errno
import math
from pathlib import Path

import numba
import numba.core.caching
import numpy as np
import pytest
import torch

from contract.metrics import spread_of
from workers.engine import projection
from workers.engine.metrics import singular_spectrum


def _clusters(n: int = 400, d: int = 16, seed: int = 0, drift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(42).normal(size=(5, d)) * 3.0
    labels = np.arange(n) % 5
    return centres[labels] + rng.normal(size=(n, d)) + drift


def test_exact_knn_lists_each_point_first_then_true_neighbours() -> None:
    z = _clusters()
    for metric in ("cosine", "euclidean"):
        indices, distances = projection.exact_knn(z, 15, metric)
        assert indices.shape == distances.shape == (400, 15)
        assert (indices[:, 0] == np.arange(400)).all()
        assert (distances[:, 0] == 0).all()
        assert (np.diff(distances, axis=1) >= -1e-6).all()
    brute = np.linalg.norm(z[:, None] - z[None], axis=2)
    expected = np.sort(brute, axis=1)[:, :15]
    np.testing.assert_allclose(distances, expected, atol=1e-3)


def test_umap_layout_shape_and_determinism() -> None:
    z = _clusters()
    first = projection.project(z, seed=3)
    assert first.shape == (400, 2)
    assert first.dtype == np.float32
    assert np.isfinite(first).all()
    np.testing.assert_array_equal(first, projection.project(z, seed=3))
    # a good layout keeps neighbourhoods
    assert projection.trustworthiness(z, first) > 0.9


def test_umap_kernels_are_compiled_once_per_machine_not_once_per_process() -> None:
    projection.project(_clusters(), seed=3)
    umap = projection._umap()
    # kernels of the graph and of the layout's optimisation that umap compiles uncached
    kernels = [umap.umap_.smooth_knn_dist, umap.umap_.compute_membership_strengths]
    kernels += [umap.layouts._nb_optimize_layout_euclidean_single_epoch]
    for kernel in kernels:
        stats = kernel.stats
        assert stats.cache_path is not None, f"{kernel.__name__} is compiled without a cache"
        assert sum(stats.cache_hits.values()) + sum(stats.cache_misses.values()) > 0


def _add_one(x: int) -> int:
    return x + 1


def test_a_numba_cache_that_cannot_be_written_or_read_only_costs_a_compile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path))

    def fresh_kernel() -> numba.core.dispatcher.Dispatcher:
        kernel = numba.njit(_add_one)
        projection.cache_kernel(kernel)
        assert kernel.stats.cache_path.startswith(str(tmp_path))
        return kernel

    def disk_full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(numba.core.caching.IndexDataCacheFile, "save", disk_full)
        assert fresh_kernel()(1) == 2
    assert not list(tmp_path.rglob("*.nbi"))
    assert fresh_kernel()(1) == 2  # this one writes its cache
    written = list(tmp_path.rglob("*.nb*"))
    assert written
    for path in written:  # a crashed writer's leftovers
        path.write_bytes(b"\x80\x04truncated")
    kernel = fresh_kernel()
    assert kernel(2) == 3
    assert sum(kernel.stats.cache_misses.values()) == 1
    healed = fresh_kernel()  # the damaged index was replaced by this compile's
    assert healed(2) == 3
    assert sum(healed.stats.cache_hits.values()) == 1


def test_procrustes_aligned_frame_is_closer_to_the_previous_one() -> None:
    previous = projection.project(_clusters(), seed=0)
    # the same points a little later in training
    drifted = _clusters() + 0.1 * np.random.default_rng(1).normal(size=(400, 16))
    unaligned = projection.project(drifted, seed=1)  # from scratch, its own frame
    aligned = projection.procrustes_align(unaligned, previous)
    warm = projection.project(drifted, previous=previous, seed=1)
    unaligned_gap = np.linalg.norm(unaligned - previous)
    assert np.linalg.norm(aligned - previous) < unaligned_gap
    # warm start + alignment keeps the previous arrangement
    assert np.linalg.norm(warm - previous) < 0.75 * unaligned_gap


def test_procrustes_undoes_rotation_scale_and_shift() -> None:
    reference = np.random.default_rng(0).normal(size=(100, 2)).astype(np.float32)
    angle = 1.1
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = 3.0 * reference @ rotation + np.array([5.0, -2.0])
    np.testing.assert_allclose(projection.procrustes_align(moved, reference), reference, atol=1e-4)


def test_projector_warm_starts_and_stays_trustworthy() -> None:
    projector = projection.Projector(seed=0)
    layouts = [projector.project(_clusters(seed=s, drift=0.05 * s)) for s in range(3)]
    assert projector.fallback_reason is None
    assert all(layout.shape == (400, 2) for layout in layouts)
    assert projection.trustworthiness(_clusters(seed=2, drift=0.1), layouts[-1]) > 0.9


def test_pca_fallback_is_exact_on_a_plane() -> None:
    rng = np.random.default_rng(0)
    plane = rng.normal(size=(200, 2)) * np.array([5.0, 1.0])
    basis = np.linalg.qr(rng.normal(size=(8, 2)))[0].T  # (2, 8) orthonormal rows
    layout = projection.pca_2d(plane @ basis)
    # PCA recovers the plane up to sign: the same pairwise distances
    original = np.linalg.norm(plane[:, None] - plane[None], axis=2)
    recovered = np.linalg.norm(layout[:, None] - layout[None], axis=2)
    np.testing.assert_allclose(recovered, original, rtol=1e-3, atol=1e-3)
    assert projection.project(plane @ basis, method="pca").shape == (200, 2)


@pytest.mark.parametrize("method", ["umap", "pca"])
def test_collapsed_constant_input_does_not_crash(method: str) -> None:
    z = np.ones((300, 32)) * np.random.default_rng(1).normal(size=(1, 32))
    assert np.abs(projection.pca_2d(z)).max() < 1e-6
    projector = projection.Projector(method=method)
    layout = projector.project(z)
    assert layout.shape == (300, 2)
    assert np.isfinite(layout).all()
    if method == "umap":
        assert "collapsed" in projector.fallback_reason
    # and the next, healthy epoch aligns to the collapsed frame without NaNs
    assert np.isfinite(projector.project(_clusters(n=300, d=32))).all()


def _collapsing(weight: float, n: int = 400, d: int = 16, seed: int = 0) -> np.ndarray:
    """The cluster embedding pulled towards one fixed point: weight 1 = healthy, 0 = a point."""
    centre = 5.0 * np.random.default_rng(7).normal(size=(1, d))
    return centre + weight * _clusters(n=n, d=d, seed=seed)


@pytest.mark.parametrize("method", ["umap", "pca"])
def test_cloud_radius_follows_the_spread_so_collapse_shows(method: str) -> None:
    # size = spread: RMS radius proportional to spread(z/||z||), one scale for the whole run
    projector = projection.Projector(method=method, seed=0)
    radii, spreads = [], []
    for epoch, weight in enumerate([1.0, 0.5, 0.1, 0.02]):
        z = _collapsing(weight, seed=epoch)
        layout = projector.project(z)
        assert np.abs(layout.mean(axis=0)).max() < 1e-4  # centred on the origin
        radii.append(projection.rms_radius(layout))
        spreads.append(spread_of(singular_spectrum(torch.from_numpy(z))))
    ratios = np.array(radii) / radii[0]
    np.testing.assert_allclose(ratios, np.array(spreads) / spreads[0], rtol=1e-4)
    assert ratios[-1] < 0.3  # the collapsed frame is a small dot
    assert radii[0] == pytest.approx(projection.RADIUS_PER_SPREAD * spreads[0], rel=1e-4)


def test_a_healthy_run_keeps_its_cloud_size() -> None:
    projector = projection.Projector(seed=0)
    first = projector.project(_clusters(seed=0))
    later = [projector.project(_clusters(seed=s, drift=0.05 * s)) for s in range(1, 4)]
    for layout in later:
        assert projection.rms_radius(layout) > 0.6 * projection.rms_radius(first)


def test_scale_needs_no_state_and_ignores_the_raw_norm() -> None:
    z = _collapsing(0.3)
    alone = projection.project(z, method="pca")
    after = projection.project(z, previous=projection.project(_clusters(), method="pca"))
    assert projection.rms_radius(alone) == pytest.approx(projection.rms_radius(after), rel=1e-4)
    # spread is measured on z/||z||: scaling every vector changes nothing
    scaled = projection.project(100.0 * z, method="pca")
    assert projection.rms_radius(scaled) == pytest.approx(projection.rms_radius(alone), rel=1e-4)


def test_an_unnormalised_embedding_keeps_its_picture_in_float16() -> None:
    """The projection keeps z as float16 (workers/lifecycle.py): a z beyond its range is
    divided by a power of two first, and the picture, scale-free, is the same."""
    from workers.lifecycle import in_float16_range

    z16 = _clusters().astype(np.float16)
    huge = z16.astype(np.float32) * 2.0**30  # an unnormalised projector's output, ~1e10
    with np.errstate(over="ignore"):
        assert not np.isfinite(huge.astype(np.float16)).all()
    kept = in_float16_range(huge).astype(np.float16)
    assert np.isfinite(kept).all() and np.abs(kept).max() <= 2.0**15
    shift = round(math.log2(float(np.abs(huge).max() / np.abs(kept).max())))
    np.testing.assert_array_equal(kept, z16 * np.float16(2.0 ** (30 - shift)))  # exact
    assert in_float16_range(z16) is z16  # in range: untouched
    picture = projection.project(z16.astype(np.float32), seed=3)
    scaled = projection.project(kept.astype(np.float32), seed=3)
    np.testing.assert_allclose(scaled, picture, atol=1e-3 * np.abs(picture).max())
