"""Mechanism signals (workers/engine/mechanisms.py) on constructed cases whose true value is
known, and each built-in method's probe hook returning its family's declared signals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from contract import resolve_config
from contract.metrics import METHOD_INTERNALS
from workers.engine import mechanisms as mech
from workers.engine.methods import METHODS
from workers.engine.methods.simclr import nt_xent
from workers.engine.parts import KMeansStats, kmeans, sinkhorn_knopp
from workers.engine.vit import VisionTransformer


def _gaussian(n: int, d: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _spread_correlation(d: int = 8) -> torch.Tensor:
    """A correlation matrix F with eigenvalues 1, 2, 4 ... 2^(d-1) in a random basis."""
    basis = torch.linalg.qr(_gaussian(d, d, seed=3))[0]
    eigenvalues = 2.0 ** torch.arange(d, dtype=torch.float64)
    return basis @ torch.diag(eigenvalues) @ basis.T


# ---------------------------------------------------------------- asymmetric branch


def test_online_target_cosine_is_one_for_a_copy_and_near_zero_for_independent_rows() -> None:
    z = _gaussian(500, 64)
    assert mech.online_target_cosine(z, 3 * z) == pytest.approx(1.0)
    assert abs(mech.online_target_cosine(z, _gaussian(500, 64, seed=1))) < 0.05


def test_parameter_distance_is_zero_for_the_online_network_and_relative_otherwise() -> None:
    online = [torch.ones(3, 4), torch.ones(5)]
    assert mech.parameter_distance([p.clone() for p in online], online) == 0.0
    assert mech.parameter_distance([2 * p for p in online], online) == pytest.approx(1.0)


def test_least_squares_predictor_recovers_a_linear_map_with_a_bias() -> None:
    z = _gaussian(300, 6)
    weight = _gaussian(6, 6, seed=2)
    p = z @ weight.T + 5.0
    assert torch.allclose(mech.least_squares_predictor(z, p), weight, atol=1e-8)


def test_commutator_is_zero_for_a_function_of_f_and_large_for_a_random_predictor() -> None:
    f = _spread_correlation()
    assert mech.predictor_commutator(f, f @ f + 0.5 * f) == pytest.approx(0, abs=1e-12)
    assert mech.predictor_commutator(f, _gaussian(8, 8, seed=4)) > 0.3
    assert mech.predictor_commutator(f, torch.zeros(8, 8)) == 0.0


def test_eigen_alignment_is_one_for_f_minus_one_reversed_and_small_for_a_rotation() -> None:
    f = _spread_correlation()
    assert mech.predictor_eigen_alignment(f, f) == pytest.approx(1.0)
    assert mech.predictor_eigen_alignment(f, -torch.eye(8)) == pytest.approx(-1.0)
    rotation = torch.linalg.qr(_gaussian(8, 8, seed=9))[0]
    assert abs(mech.predictor_eigen_alignment(f, rotation)) < 0.5


def test_eigen_alignment_ignores_directions_without_variance() -> None:
    f = torch.diag(torch.tensor([2.0, 1.0, 0.0, 0.0], dtype=torch.float64))
    w = torch.diag(torch.tensor([1.0, 1.0, -1.0, -1.0]))  # reverses only the empty directions
    assert mech.predictor_eigen_alignment(f, w) == pytest.approx(1.0)
    assert mech.predictor_eigen_alignment(torch.zeros(4, 4, dtype=torch.float64), w) == 0.0


def test_symmetry_is_one_symmetric_zero_antisymmetric_and_about_root_half_random() -> None:
    a = _gaussian(200, 200, seed=5)
    assert mech.predictor_symmetry(a + a.T) == pytest.approx(1.0)
    assert mech.predictor_symmetry(a - a.T) == pytest.approx(0.0, abs=1e-12)
    assert mech.predictor_symmetry(a) == pytest.approx(1 / math.sqrt(2), abs=0.02)


def test_rank_differential_is_the_gap_between_effective_ranks() -> None:
    target = _gaussian(2000, 16)
    low_rank = target[:, :2] @ _gaussian(2, 16, seed=6)  # every prediction on a plane
    assert mech.rank_differential(target, target) == 0.0
    assert mech.rank_differential(target, low_rank) > 12  # erank ~16 against ~2


def test_the_projection_target_cosine_compares_z_and_the_online_cosine_p() -> None:
    """z equal to the target gives 1 before the predictor whatever p does after it; a p
    that undoes a rotation of z to reach the target closes the gap the z-side cosine shows."""
    target = _gaussian(500, 8)
    same = mech.asymmetric_signals(target, 2 * target + _gaussian(500, 8, seed=1), target)
    assert same["projection_target_cosine"] == pytest.approx(1.0)
    assert same["online_target_cosine"] < 0.99
    rotation = torch.linalg.qr(_gaussian(8, 8))[0]
    gap = mech.asymmetric_signals(target @ rotation, target, target)
    assert gap["online_target_cosine"] == pytest.approx(1.0)
    assert gap["projection_target_cosine"] < 0.5


def test_asymmetric_signals_of_an_identity_predictor_are_perfectly_aligned() -> None:
    z = _gaussian(400, 8)
    signals = mech.asymmetric_signals(z, z, z, torch.eye(8, dtype=torch.float64))
    assert signals["predictor_commutator"] == pytest.approx(0, abs=1e-12)
    assert signals["predictor_eigen_alignment"] == pytest.approx(1.0)
    assert signals["predictor_symmetry"] == pytest.approx(1.0)
    assert signals["online_target_cosine"] == pytest.approx(1.0)
    assert signals["rank_differential"] == 0.0


def test_asymmetric_signals_read_a_nonlinear_predictor_through_its_linear_fit() -> None:
    z = _gaussian(600, 8)
    f = mech.input_correlation(z)
    p = z @ f.float().double().T  # W_p = F: aligned by construction
    signals = mech.asymmetric_signals(z, p, _gaussian(600, 8, seed=1))
    assert signals["predictor_eigen_alignment"] > 0.99
    assert signals["predictor_symmetry"] > 0.99


# ---------------------------------------------------------------- contrastive


def test_infonce_split_sums_to_the_nt_xent_loss() -> None:
    z1, z2 = _gaussian(32, 16).float(), _gaussian(32, 16, seed=1).float()
    split = mech.infonce_split(z1, z2, 0.5)
    total = split["infonce_alignment"] + split["infonce_repulsion"]
    assert total == pytest.approx(float(nt_xent(z1, z2, 0.5)), rel=1e-5)


def test_effective_negatives_of_a_point_are_all_and_of_tight_pairs_about_one() -> None:
    n = 16
    point = torch.ones(n, 4)
    assert mech.infonce_split(point, point, 0.1)["effective_negatives"] == pytest.approx(2 * n - 2)
    # images in pairs: each anchor's one hard negative (its twin image) takes the softmax mass
    centres = F.normalize(_gaussian(n // 2, 64), dim=1).repeat_interleave(2, dim=0)
    near = centres + 0.01 * _gaussian(n, 64, seed=2)
    split = mech.infonce_split(near, near + 0.01 * _gaussian(n, 64, seed=3), 0.05)
    assert split["effective_negatives"] < 3


def test_projector_layer_alignment_is_one_when_singular_vectors_meet_and_small_at_random() -> None:
    h = 256
    u = torch.linalg.qr(_gaussian(h, h, seed=1))[0]
    rotation_in = torch.linalg.qr(_gaussian(32, 32, seed=2))[0]
    rotation_out = torch.linalg.qr(_gaussian(16, 16, seed=3))[0]
    # first (h, 32): left singular vectors u[:, :32]; second (16, h): right ones u[:, :16]
    first = u[:, :32] @ torch.diag(torch.linspace(3, 1, 32, dtype=torch.float64)) @ rotation_in
    second = rotation_out @ torch.diag(torch.linspace(5, 1, 16, dtype=torch.float64)) @ u[:, :16].T
    assert mech.projector_layer_alignment([first, second]) == pytest.approx(1.0, abs=1e-6)
    random = [_gaussian(h, 32, seed=4), _gaussian(16, h, seed=5)]
    assert mech.projector_layer_alignment(random) < 0.2
    assert mech.projector_layer_alignment([first]) is None


def test_top_singular_vectors_match_the_svd_on_either_side() -> None:
    for shape in ((12, 40), (40, 12)):
        matrix = _gaussian(*shape, seed=7)
        u, _, vh = torch.linalg.svd(matrix, full_matrices=False)
        left, right = mech.top_singular_vectors(matrix, 5)
        assert torch.allclose(
            (left * u[:, :5]).sum(dim=0).abs(), torch.ones(5, dtype=torch.float64)
        )
        assert torch.allclose(
            (right * vh[:5].T).sum(dim=0).abs(), torch.ones(5, dtype=torch.float64)
        )


# ---------------------------------------------------------------- clustering


def test_balancing_signals_see_sinkhorn_spread_a_collapsed_assignment() -> None:
    k, n = 8, 256
    scores = torch.zeros(n, k)
    scores[:, 0] = 1.0  # every image prefers prototype 0
    scores += 0.01 * _gaussian(n, k).float()
    before = F.softmax(scores / 0.05, dim=1)
    after = sinkhorn_knopp(scores, 0.05, 3)
    signals = mech.balancing_signals(before, after)
    assert signals["usage_entropy_before_balancing"] < 0.1
    assert signals["usage_entropy_after_balancing"] == pytest.approx(math.log(k), abs=0.01)
    assert mech.balancing_signals(after, F.one_hot(torch.arange(n) % k, k).float())[
        "assignment_entropy"
    ] == pytest.approx(0.0)
    uniform = torch.full((n, k), 1 / k)
    assert mech.balancing_signals(uniform, uniform)["assignment_entropy"] == pytest.approx(
        math.log(k)
    )


def test_kmeans_counts_the_clusters_it_reassigns() -> None:
    x = torch.cat([torch.tensor([[1.0, 0.0]]).repeat(20, 1), torch.tensor([[0.0, 1.0]])])
    init = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]), dim=1)
    with_fix, without = KMeansStats(), KMeansStats()
    kmeans(x, 4, 3, torch.Generator().manual_seed(0), True, init=init, stats=with_fix)
    kmeans(x, 4, 3, torch.Generator().manual_seed(0), False, init=init, stats=without)
    assert with_fix.reassigned >= 2  # the two clusters no point is near
    assert without.reassigned == 0


# ---------------------------------------------------------------- redundancy reduction


def test_dims_under_the_variance_hinge() -> None:
    z = _gaussian(4000, 8) * torch.tensor([2.0] * 4 + [0.1] * 4, dtype=torch.float64)
    assert mech.dims_under_variance_hinge(z) == pytest.approx(0.5)
    assert mech.dims_under_variance_hinge(torch.zeros(10, 8)) == 1.0


def test_off_diagonal_energy_is_zero_decorrelated_and_d_minus_one_for_copies() -> None:
    z = _gaussian(20000, 8)
    assert mech.off_diagonal_energy(z) < 0.01
    one_variable = _gaussian(500, 1).repeat(1, 8) * torch.arange(1.0, 9, dtype=torch.float64)
    assert mech.off_diagonal_energy(one_variable) == pytest.approx(7.0)
    assert mech.off_diagonal_energy(torch.ones(10, 8)) == 0.0


# ---------------------------------------------------------------- the methods' probe hooks

FAMILY_SIGNALS = {
    "byol": {
        "online_target_cosine",
        "projection_target_cosine",
        "target_param_distance",
        "rank_differential",
        "predictor_commutator",
        "predictor_eigen_alignment",
        "predictor_symmetry",
    },
    "simsiam": {
        "online_target_cosine",
        "projection_target_cosine",
        "rank_differential",
        "predictor_commutator",
        "predictor_eigen_alignment",
        "predictor_symmetry",
    },
    "simclr": {
        "infonce_alignment",
        "infonce_repulsion",
        "effective_negatives",
        "projector_layer_alignment",
    },
    "swav": {
        "assignment_entropy",
        "usage_entropy_before_balancing",
        "usage_entropy_after_balancing",
    },
    "deepcluster": {
        "assignment_entropy",
        "usage_entropy_before_balancing",
        "usage_entropy_after_balancing",
        "clusters_reassigned",
    },
    "vicreg": {
        "loss_invariance",
        "loss_variance",
        "loss_covariance",
        "dims_under_variance_hinge",
        "off_diagonal_energy",
    },
    "barlow_twins": {"loss_on_diagonal", "loss_off_diagonal", "off_diagonal_energy"},
    "lejepa": {"sigreg_statistic", "off_diagonal_energy"},
    "ijepa": {
        "online_target_cosine",
        "projection_target_cosine",
        "target_param_distance",
        "rank_differential",
        "predictor_commutator",
        "predictor_eigen_alignment",
        "predictor_symmetry",
    },
    "dino": {
        "teacher_entropy",
        "teacher_student_kl",
        "center_norm",
        "log_k",
        "assignment_entropy",
        "usage_entropy_before_balancing",
        "usage_entropy_after_balancing",
        "target_param_distance",
    },
}


def _method(name: str, **options: object) -> nn.Module:
    torch.manual_seed(0)
    raw: dict[str, object] = {"method": name, "options": options}
    raw |= {"proj_hidden_dim": 32, "proj_dim": 16, "pred_hidden_dim": 8}
    if name == "ijepa":  # patch tokens: a one-block ViT on 32 px images
        config = resolve_config({**raw, "image_size": 32})
        return METHODS[name](VisionTransformer(3, 32, dim=32, depth=1, heads=2), 32, config)
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 24))
    return METHODS[name](backbone, 24, resolve_config(raw))


def test_signals_at_the_edges_of_floating_point() -> None:
    """An independent float64 reference (an audit, docs/causes.md) found these reading wrong:
    rows of size 1e-10 read nearly orthogonal by F.cosine_similarity's norm floor, a
    collapsed z's least-squares map fitted to rounding noise, constant columns at 1e6
    correlating perfectly through their rounding noise, and no negatives at N = 1."""
    a, b = _gaussian(64, 8, seed=1), _gaussian(64, 8, seed=2)
    mixed = a + 0.1 * b
    expected = mech.online_target_cosine(a, mixed)
    assert mech.online_target_cosine(1e-10 * a, 1e-10 * mixed) == pytest.approx(expected, rel=1e-9)
    point = torch.full((64, 8), 5.0, dtype=torch.float64) + 1e-17 * a
    weight = mech.least_squares_predictor(point, _gaussian(64, 8, seed=4))
    assert float(weight.abs().max()) == 0.0
    constant = torch.full((64, 3), 1e6, dtype=torch.float64) + 0.1
    assert mech.off_diagonal_energy(constant) == 0.0
    assert mech.off_diagonal_energy(constant + _gaussian(64, 3, seed=5)) < 0.2
    assert mech.infonce_split(a[:1], mixed[:1], 0.5) == {}
    tiny_predictor = 1e-9 * torch.eye(8, dtype=torch.float64)
    alignment = mech.predictor_eigen_alignment(mech.input_correlation(a), tiny_predictor)
    assert alignment == pytest.approx(1.0)


@pytest.mark.parametrize("name", sorted(FAMILY_SIGNALS))
def test_each_method_logs_its_familys_declared_signals_on_the_probe(name: str) -> None:
    method = _method(name)
    size = 32 if name == "ijepa" else 8
    g = torch.Generator().manual_seed(1)
    views = [torch.randn(64, 3, size, size, generator=g) for _ in range(2)]
    if name == "deepcluster":  # its before/after come from the epoch's k-means
        images = torch.randn(256, 3, size, size, generator=g)
        method.on_epoch_start(1, lambda: method.embed(images)[1])
        method.on_epoch_start(2, lambda: method.embed(images)[1])
    method.eval()
    logs = method.probe_logs(views)
    assert set(logs) == FAMILY_SIGNALS[name]
    assert set(logs) <= set(METHOD_INTERNALS)
    assert all(math.isfinite(value) for value in logs.values())


def test_byol_momentum_zero_target_is_the_online_network() -> None:
    method = _method("byol", base_momentum=0.0)
    from workers.engine.methods.base import StepInfo

    method.after_step(StepInfo(epoch=1, step=0, total_steps=1))
    g = torch.Generator().manual_seed(1)
    logs = method.eval().probe_logs([torch.randn(32, 3, 8, 8, generator=g) for _ in range(2)])
    assert logs["target_param_distance"] == 0.0


def test_byol_without_predictor_measures_the_identity() -> None:
    method = _method("byol", predictor=False)
    g = torch.Generator().manual_seed(1)
    logs = method.eval().probe_logs([torch.randn(32, 3, 8, 8, generator=g) for _ in range(2)])
    assert logs["predictor_eigen_alignment"] == pytest.approx(1.0)
    assert logs["predictor_symmetry"] == pytest.approx(1.0)


@pytest.mark.parametrize("kind", ["symmetric", "linear"])
def test_byol_linear_predictor_is_measured_through_its_own_matrix(kind: str) -> None:
    """The predictor signals read W_p itself, not a least-squares fit: the symmetric one
    measures 1, the free one below 1, whatever the probe's z."""
    from workers.engine.mechanisms import predictor_signals

    method = _method("byol", predictor_kind=kind)
    g = torch.Generator().manual_seed(1)
    views = [torch.randn(32, 3, 8, 8, generator=g) for _ in range(2)]
    logs = method.eval().probe_logs(views)
    w_p = method.predictor.matrix().detach()
    z = method.projector(method.backbone(torch.cat(views))).detach()
    for name, value in predictor_signals(z, w_p).items():
        assert logs[name] == pytest.approx(value, rel=1e-5)
    if kind == "symmetric":
        assert logs["predictor_symmetry"] == pytest.approx(1.0)
    else:
        assert logs["predictor_symmetry"] < 0.99


def test_ijepa_without_ema_targets_the_context_encoder_itself() -> None:
    method = _method("ijepa", target_momentum=0.0)
    images = torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    first = method.eval().probe_logs([images, images])
    assert first["target_param_distance"] == 0.0
    assert method.probe_logs([images, images]) == first  # fixed masks: the same every epoch


def test_swav_without_sinkhorn_has_the_same_usage_before_and_after() -> None:
    method = _method("swav", sinkhorn=False)
    g = torch.Generator().manual_seed(1)
    logs = method.eval().probe_logs([torch.randn(32, 3, 8, 8, generator=g) for _ in range(2)])
    assert logs["usage_entropy_before_balancing"] == pytest.approx(
        logs["usage_entropy_after_balancing"]
    )


def test_swav_draws_its_epsilon_and_temperature_as_schedules() -> None:
    """The balancing's ε and the prediction's τ (Caron et al. 2020, Sec. 3.1, Eq. 2): logged
    every epoch under their declared names, the settings the run was given."""
    schedules = _method("swav", epsilon=0.5, temperature=0.2).schedules()
    assert schedules == {"sinkhorn_epsilon": 0.5, "prediction_temperature": 0.2}
    assert set(schedules) <= set(METHOD_INTERNALS)


def test_every_declared_mechanism_signal_has_a_chart_and_a_help_sentence() -> None:
    for name, metric in METHOD_INTERNALS.items():
        assert metric.chart is not None, name
        assert metric.help.endswith("."), name


# ---------------------------------------------------------------- external runs' internals


def test_external_internals_give_the_engines_signals() -> None:
    from workers.engine.probe import mechanism_signals, probe_epoch_record

    rng = np.random.default_rng(0)
    z = rng.standard_normal((256, 8))
    weight = rng.standard_normal((8, 8))
    p, target = z @ weight.T, z + 0.1 * rng.standard_normal((256, 8))
    logits = rng.standard_normal((256, 16)) * 2
    teacher = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    student = np.full((256, 16), 1 / 16)
    internals = {"target": target, "p": p, "teacher": teacher, "student": student}
    signals = mechanism_signals(z, internals, {"loss_variance": 0.5})
    expected = mech.asymmetric_signals(
        torch.from_numpy(z), torch.from_numpy(p), torch.from_numpy(target)
    )
    for name, value in expected.items():
        assert signals[name] == pytest.approx(value), name
    weight_t = torch.from_numpy(weight)
    least_squares = mech.least_squares_predictor(torch.from_numpy(z), torch.from_numpy(p))
    assert torch.allclose(least_squares, weight_t)  # p is linear in z: the fit is W itself
    assert signals["predictor_symmetry"] == pytest.approx(mech.predictor_symmetry(weight_t))
    teacher_t = torch.from_numpy(teacher)
    assert signals["teacher_entropy"] == pytest.approx(float(mech.mean_entropy(teacher_t)))
    assert signals["teacher_student_kl"] == pytest.approx(
        float(mech.mean_kl(teacher_t, torch.from_numpy(student)))
    )
    assert signals["log_k"] == pytest.approx(math.log(16))
    assert signals["dims_under_variance_hinge"] == mech.dims_under_variance_hinge(
        torch.from_numpy(z)
    )
    # p without a target (lightly's SimSiam names): the predictor is measured all the same
    alone = mechanism_signals(z, {"p": p}, {})
    for name in ("predictor_commutator", "predictor_eigen_alignment", "predictor_symmetry"):
        assert alone[name] == pytest.approx(signals[name]), name
    assert "rank_differential" not in alone and "online_target_cosine" not in alone
    # a linear predictor's matrix given: its own signals, not the least-squares fit's
    given = mechanism_signals(z, {"target": target, "p": p, "predictor_weight": weight.T}, {})
    assert given["predictor_symmetry"] == pytest.approx(mech.predictor_symmetry(weight_t.T))
    record = probe_epoch_record(
        0, z.astype(np.float32), history=[], scalars={"ema_momentum": 0.99}, internals=internals
    )
    assert record.ema_momentum == 0.99
    assert set(record.logs) == set(mechanism_signals(z, internals, {})) | {"ema_momentum"}
    assert set(record.logs) <= set(METHOD_INTERNALS) | {"ema_momentum"}


def test_internals_that_are_not_matrices_are_refused_not_measured() -> None:
    """A teacher broadcast against lightly's (1, 1, K) centre is (1, N, K): its rows would be
    renormalised over the wrong axis and ln K read from N. The wire format cannot carry it;
    an in-process caller gets the problem named."""
    from workers.engine.probe import ProbeError, mechanism_signals

    rng = np.random.default_rng(2)
    z = rng.standard_normal((64, 8))
    logits = rng.standard_normal((1, 64, 16))
    teacher = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    with pytest.raises(ProbeError, match=r"teacher must be a matrix .* \(1, 64, 16\)"):
        mechanism_signals(z, {"teacher": teacher}, {})
    assert mechanism_signals(z, {"teacher": teacher[0]}, {})["log_k"] == pytest.approx(math.log(16))


def test_an_external_contrastive_loop_gets_the_infonce_split_from_its_views() -> None:
    """Views and the loop's temperature give the split the built-in SimCLR logs; without
    the temperature nothing is guessed."""
    from workers.engine.probe import probe_epoch_record

    rng = np.random.default_rng(1)
    z = rng.standard_normal((128, 16)).astype(np.float32)
    views = (z[:64] + 0.1 * rng.standard_normal((64, 16)), z[:64].copy())
    views = (views[0].astype(np.float32), views[1].astype(np.float32))
    record = probe_epoch_record(
        0, z, history=[], views=views, scalars={"temperature": 0.2}, internals={}
    )
    expected = mech.infonce_split(
        torch.from_numpy(views[0]).double(), torch.from_numpy(views[1]).double(), 0.2
    )
    for name, value in expected.items():
        assert record.logs[name] == pytest.approx(value), name
    bare = probe_epoch_record(0, z, history=[], views=views, internals={})
    assert "infonce_repulsion" not in bare.logs
