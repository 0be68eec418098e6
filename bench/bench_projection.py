"""Per-epoch 2-D projection: umap-learn's defaults from scratch vs the warm-started projector.

Synthetic but structured probe embeddings: 2,000 x 128, a 10-component Gaussian mixture
whose clusters sharpen and drift a little from one 'epoch' to the next (as in a healthy
run). Both contenders are warmed up first (numba compiles on the first call), then each
epoch is projected by

* baseline: ``umap.UMAP()`` with its defaults, from scratch (random_state fixed);
* ours: ``workers.engine.projection.Projector`` (exact torch kNN graph, warm start from the
  previous layout, Procrustes alignment).

Prints the mean seconds per epoch of each, the speed-up, scikit-learn trustworthiness of both
layouts (must agree within 0.02) and how far each layout moves between epochs (relative to
its size: the animation's stability). Run: ``OMP_NUM_THREADS=2 python bench/bench_projection.py``.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import umap

from workers.engine.projection import Projector, procrustes_align, trustworthiness


def drifting_mixture(n: int, d: int, epochs: int, seed: int) -> list[np.ndarray]:
    """(n, d) embeddings per epoch: cluster structure sharpening from 0.5 to 1 and drifting."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    centres = rng.normal(size=(10, d)) * 1.5
    position = rng.normal(size=(n, d))
    frames = []
    for epoch in range(epochs):
        sharpness = 0.5 + 0.5 * epoch / max(epochs - 1, 1)
        centres = centres + 0.1 * rng.normal(size=centres.shape)
        position = position + 0.1 * rng.normal(size=position.shape)
        frames.append((sharpness * centres[labels] + position).astype(np.float32))
    return frames


def relative_motion(layout: np.ndarray, previous: np.ndarray) -> float:
    """How far points move between frames, relative to the frame's size (after the best
    similarity alignment, so only real motion counts)."""
    aligned = procrustes_align(layout, previous)
    return float(np.linalg.norm(aligned - previous) / np.linalg.norm(previous - previous.mean(0)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs after warm-up")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", module="umap")
    frames = drifting_mixture(args.n, args.dim, args.epochs + 1, seed=0)

    start = time.perf_counter()
    umap.UMAP(random_state=0).fit_transform(frames[0])
    projector = Projector(seed=0)
    projector.project(frames[0])  # first frame: spectral init, also the warm-up of our path
    print(f"warm-up (numba compilation, first frame): {time.perf_counter() - start:.1f} s")

    baseline_times, ours_times = [], []
    baseline_trust, ours_trust = [], []
    baseline_motion, ours_motion = [], []
    baseline_previous = umap.UMAP(random_state=0).fit_transform(frames[0])
    ours_previous = projector.previous
    assert ours_previous is not None  # the warm-up frame's layout
    for epoch, z in enumerate(frames[1:], start=1):
        start = time.perf_counter()
        baseline = umap.UMAP(random_state=0).fit_transform(z)
        baseline_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        ours = projector.project(z)
        ours_times.append(time.perf_counter() - start)
        baseline_trust.append(trustworthiness(z, baseline))
        ours_trust.append(trustworthiness(z, ours))
        baseline_motion.append(relative_motion(baseline, baseline_previous))
        ours_motion.append(relative_motion(ours, ours_previous))
        baseline_previous, ours_previous = baseline, ours
        print(
            f"epoch {epoch}: umap defaults {baseline_times[-1]:.2f} s "
            f"(trust {baseline_trust[-1]:.4f}) | ours {ours_times[-1]:.2f} s "
            f"(trust {ours_trust[-1]:.4f})"
        )

    mean_baseline, mean_ours = float(np.mean(baseline_times)), float(np.mean(ours_times))
    trust_gap = float(np.mean(baseline_trust) - np.mean(ours_trust))
    print(f"\n{args.n} x {args.dim} embeddings, mean of {args.epochs} epochs after warm-up")
    print(f"umap-learn defaults, from scratch : {mean_baseline:.2f} s/epoch")
    print(f"warm-started projector (ours)     : {mean_ours:.2f} s/epoch (target <= 1.5 s)")
    print(f"speed-up                          : {mean_baseline / mean_ours:.1f}x")
    print(
        f"trustworthiness (k=5)             : defaults {np.mean(baseline_trust):.4f}, "
        f"ours {np.mean(ours_trust):.4f}, gap {trust_gap:+.4f} (must be within 0.02)"
    )
    print(
        f"frame-to-frame motion             : defaults {np.mean(baseline_motion):.2f}, "
        f"ours {np.mean(ours_motion):.2f} (relative to the layout's size)"
    )


if __name__ == "__main__":
    main()
