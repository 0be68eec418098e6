"""The verdict on real short runs, with each preset's CPU defaults on ``digits``: 12 epochs
for healthy SimSiam (its kNN lead over the collapsed run needs them), 8 for the collapsing
presets (settled from epoch 1 or 2: at epoch 8 every measure asserted here is where it is at 12).

These train for real (a minute or so each on two cores): the defence against collapse is
removed and the verdict must say so; with the defence in place it must not.
"""

from pathlib import Path

import numpy as np
import pytest

from contract import resolve_config
from workers.engine.projection import Projector, rms_radius
from workers.engine.trainer import RunResult, TrainHooks, train

pytestmark = pytest.mark.slow

# per preset, as the module's docstring explains
EPOCHS = {"simsiam": 12, "simsiam-no-stopgrad": 8, "vicreg-no-covariance": 8}
_RESULTS: dict[str, RunResult] = {}
_EMBEDDINGS: dict[str, dict[int, np.ndarray]] = {}  # preset -> epoch -> probe z (N, d)


def run_preset(name: str, data_root: Path) -> RunResult:
    """``name`` trained for its :data:`EPOCHS`, once per module (later calls reuse it)."""
    if name not in _RESULTS:
        raw = {"preset": name, "epochs": EPOCHS[name]}
        embeddings: dict[int, np.ndarray] = {}
        hooks = TrainHooks(on_embeddings=lambda epoch, z, _labels: embeddings.update({epoch: z}))
        _RESULTS[name] = train(resolve_config(raw), data_root=data_root, hooks=hooks)
        _EMBEDDINGS[name] = embeddings
    return _RESULTS[name]


def _radius_ratio(name: str) -> float:
    """RMS radius of the served UMAP picture at the last epoch over epoch 0's, each frame
    warm-started from the one before, as the projection worker does."""
    projector = Projector(seed=0)
    frames = _EMBEDDINGS[name]
    radii = [rms_radius(projector.project(frames[epoch])) for epoch in sorted(frames)]
    return radii[-1] / radii[0]


def test_the_picture_shrinks_when_the_run_collapses_and_only_then(tmp_path: Path) -> None:
    # one scale per run: the cloud's RMS radius follows the spread of z/||z||
    run_preset("simsiam-no-stopgrad", tmp_path)
    run_preset("simsiam", tmp_path)
    assert _radius_ratio("simsiam-no-stopgrad") < 0.3
    assert _radius_ratio("simsiam") > 0.6


def test_simsiam_without_stop_gradient_collapses_completely(tmp_path: Path) -> None:
    result = run_preset("simsiam-no-stopgrad", tmp_path)
    assert result.verdict.kind == "complete_collapse", result.verdict
    assert result.verdict.onset_epoch is not None
    last = result.history[-1].projector
    assert last.std_l2_sqrt_d < 0.2
    assert last.cos_rand > 0.9


def test_simsiam_stays_healthy_and_beats_the_collapsed_run_on_knn(tmp_path: Path) -> None:
    healthy = run_preset("simsiam", tmp_path)
    collapsed = run_preset("simsiam-no-stopgrad", tmp_path)
    assert healthy.verdict.kind != "complete_collapse", healthy.verdict
    healthy_knn = healthy.history[-1].backbone.knn_top1
    collapsed_knn = collapsed.history[-1].backbone.knn_top1
    assert healthy_knn > collapsed_knn + 0.05


def test_vicreg_without_covariance_loses_dimensions(tmp_path: Path) -> None:
    # the preset's 20 epochs cut to 8: below the threshold from epoch 2 on digits; at epoch 8
    # participation 1.5 (collapsed below 2.2), effective rank 11 of 128 (98 at epoch 0)
    result = run_preset("vicreg-no-covariance", tmp_path)
    assert result.verdict.kind == "dimensional_collapse", result.verdict
    last, first = result.history[-1].projector, result.history[0].projector
    assert last.effective_rank < first.effective_rank
