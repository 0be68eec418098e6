"""Every method trains one step on a tiny batch, and each collapse toggle does what it says."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from contract import METHOD_SPECS, PRESETS, RunConfig, resolve_config
from contract.methods.base import MethodSpec
from workers.engine.methods import METHODS, Method, StepInfo
from workers.engine.methods.byol import BYOL
from workers.engine.methods.deepcluster import DeepCluster
from workers.engine.methods.simsiam import SimSiam
from workers.engine.methods.swav import SwAV
from workers.engine.parts import LinearPredictor
from workers.engine.vit import VisionTransformer

BATCH, CHANNELS, SIZE, REP_DIM = 8, 3, 8, 16
TINY_DIMS = {"proj_hidden_dim": 16, "proj_dim": 8, "pred_hidden_dim": 8}


def _config(method: str, **options: object) -> RunConfig:
    return resolve_config({"method": method, **TINY_DIMS, "options": options})


def _build(method: str, **options: object) -> Method:
    torch.manual_seed(0)
    backbone: nn.Module = nn.Sequential(nn.Flatten(), nn.Linear(CHANNELS * SIZE * SIZE, REP_DIM))
    if method == "ijepa":  # predicts patch tokens: a ViT (2 x 2 patches of 4 px)
        backbone = VisionTransformer(CHANNELS, SIZE, dim=REP_DIM, depth=1, heads=2)
    return METHODS[method](backbone, REP_DIM, _config(method, **options))


def _views(count: int = 2, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(BATCH, CHANNELS, SIZE, SIZE, generator=g) for _ in range(count)]


def _prepare(method: Method) -> None:
    """DeepCluster needs its k-means pseudo-labels before the first step."""
    images = torch.randn(4 * BATCH, CHANNELS, SIZE, SIZE, generator=torch.Generator())
    method.on_epoch_start(1, lambda: method.embed(images)[1])


STEP = StepInfo(epoch=1, step=0, total_steps=10)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_trains_one_step(name: str) -> None:
    method = _build(name)
    method.train()
    _prepare(method)
    out = method.training_loss(_views(), torch.arange(BATCH), STEP)
    assert out.loss.ndim == 0 and math.isfinite(out.loss.item())
    assert all(math.isfinite(v) for v in out.logs.values())
    out.loss.backward()
    grads = [p.grad for p in method.backbone.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)  # the backbone learns
    method.after_step(STEP)
    method.eval()
    h, z = method.embed(_views(1)[0])
    # z is the projector's output; I-JEPA has none and measures its target encoder's tokens
    z_dim = TINY_DIMS["proj_dim"] if hasattr(method, "projector") else REP_DIM
    assert h.shape == (BATCH, REP_DIM) and z.shape == (BATCH, z_dim)
    assigned = method.cluster_assignments(z)
    if method.num_clusters() is None:
        assert assigned is None
    else:
        assert assigned is not None and assigned.shape == (BATCH,)
        assert int(assigned.max()) < method.num_clusters()


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_catalogue_fields(name: str) -> None:
    spec = METHODS[name].spec
    assert spec.name == name
    assert spec is METHOD_SPECS[name]
    assert spec.implementation.endswith(":" + METHODS[name].__name__)
    assert spec.family in {"contrastive", "clustering", "asymmetry", "redundancy", "distillation"}
    assert any(year in spec.paper for year in ("2018", "2020", "2021", "2022", "2023", "2025"))
    schema = spec.options.model_json_schema()
    assert all(field.get("description") for field in schema["properties"].values())
    RunConfig.model_validate({"method": name, **spec.defaults})  # defaults are real fields
    # a method whose embed() gives another z than the projector's output says what it is
    default_z = MethodSpec.__dataclass_fields__["z_description"].default
    if METHODS[name].embed is not Method.embed:
        assert spec.z_description != default_z, name


@pytest.mark.parametrize(
    "name", sorted(n for n, spec in METHOD_SPECS.items() if spec.collapsed_loss is not None)
)
def test_collapsed_loss_is_the_loss_of_one_embedding_for_every_image(name: str) -> None:
    """The level the loss chart draws (MethodSpec.collapsed_loss) is what the loss becomes
    when every image has the same embedding and the predictor passes it through."""
    level = METHOD_SPECS[name].collapsed_loss
    assert level is not None
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(CHANNELS * SIZE * SIZE, REP_DIM))
    nn.init.zeros_(backbone[1].weight)  # every image maps to the layer's bias
    method = METHODS[name](backbone, REP_DIM, _config(name, predictor=False))
    method.train()
    out = method.training_loss(_views(), torch.arange(BATCH), STEP)
    assert out.loss.item() == pytest.approx(level, abs=1e-5)
    # a network that tells images apart is off that level
    healthy = _build(name, predictor=False).training_loss(_views(), torch.arange(BATCH), STEP)
    assert abs(healthy.loss.item() - level) > 1e-2


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_resolves(name: str) -> None:
    preset = PRESETS[name]
    config = resolve_config({"preset": name})
    assert config.method == preset.config["method"]
    for key, value in preset.config.get("options", {}).items():
        assert config.options[key] == value


def test_unknown_option_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"options\.stop_grad"):
        resolve_config({"method": "simsiam", "options": {"stop_grad": False}})


# -- SimSiam: the stop-gradient ---------------------------------------------------------------
def _simsiam_gradients(stop_gradient: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient reaching the projector output z, and the part of it that came through the
    predictor (the online branch). They are equal exactly when no gradient flows through the
    target branch."""
    method = _build("simsiam", stop_gradient=stop_gradient)
    assert isinstance(method, SimSiam)
    captured: dict[str, torch.Tensor] = {}

    def keep(name: str):
        def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            output.retain_grad()
            captured[name] = output

        return hook

    method.projector.register_forward_hook(keep("z"))
    method.predictor.register_forward_hook(keep("p"))
    out = method.training_loss(_views(), torch.arange(BATCH), STEP)
    out.loss.backward(retain_graph=True)
    z, p = captured["z"], captured["p"]
    total = z.grad.clone()  # before autograd.grad, whose pass also feeds retain_grad
    (through_predictor,) = torch.autograd.grad(p, z, grad_outputs=p.grad)
    return total, through_predictor


def test_simsiam_stop_gradient_blocks_the_target_branch() -> None:
    total, through_predictor = _simsiam_gradients(stop_gradient=True)
    assert torch.allclose(total, through_predictor, atol=1e-7)


def test_simsiam_without_stop_gradient_lets_both_branches_learn() -> None:
    total, through_predictor = _simsiam_gradients(stop_gradient=False)
    assert (total - through_predictor).abs().max() > 1e-4


def test_simsiam_without_predictor_compares_projections() -> None:
    method = _build("simsiam", predictor=False)
    out = method.training_loss(_views(), torch.arange(BATCH), STEP)
    z1, z2 = method.projector(method.backbone(torch.cat(_views()))).chunk(2)
    assert out.loss.item() == pytest.approx(-F.cosine_similarity(z1, z2).mean().item(), abs=1e-5)


# -- BYOL: the EMA target -------------------------------------------------------------------
def test_byol_target_gets_no_gradient_and_is_excluded_from_the_optimiser() -> None:
    method = _build("byol")
    out = method.training_loss(_views(), torch.arange(BATCH), STEP)
    out.loss.backward()
    targets = {n: p for n, p in method.named_parameters() if n.startswith("target_")}
    assert targets and all(p.grad is None and not p.requires_grad for p in targets.values())
    assert method.excluded_from_weight_decay() == set(targets)
    assert method.backbone[1].weight.grad is not None


def _train_step(method: Method, step: int) -> None:
    opt = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=0.5)
    out = method.training_loss(_views(seed=step), torch.arange(BATCH), STEP)
    opt.zero_grad()
    out.loss.backward()
    opt.step()
    method.after_step(StepInfo(epoch=1, step=step, total_steps=10))


def test_byol_without_ema_copies_the_online_network_every_step() -> None:
    method = _build("byol", base_momentum=0.0)
    assert isinstance(method, BYOL)
    for step in range(3):
        _train_step(method, step)
        assert torch.equal(method.target_backbone[1].weight, method.backbone[1].weight)
        assert method.monitor() == {"ema_momentum": 0.0}


def test_byol_frozen_target_and_ema_arithmetic() -> None:
    frozen = _build("byol", base_momentum=1.0)
    start = frozen.target_backbone[1].weight.clone()
    _train_step(frozen, 0)
    assert torch.equal(frozen.target_backbone[1].weight, start)

    method = _build("byol", base_momentum=0.9)
    before = method.target_backbone[1].weight.clone()
    _train_step(method, 0)  # step 0 of 10: tau = base = 0.9
    expected = 0.9 * before + 0.1 * method.backbone[1].weight
    assert torch.allclose(method.target_backbone[1].weight, expected, atol=1e-6)
    assert method.monitor()["ema_momentum"] == pytest.approx(0.9)


def test_byol_without_predictor_regresses_the_projection() -> None:
    assert isinstance(_build("byol", predictor=False).predictor, nn.Identity)
    assert not isinstance(_build("byol").predictor, nn.Identity)


def test_byol_symmetric_predictor_stays_symmetric_through_training() -> None:
    """W_p = (W + W^T)/2 (Tian, Chen & Ganguli 2021, Table 3): symmetric at every step, though
    W itself is not, and linear without bias: p = z W_p^T."""
    method = _build("byol", predictor_kind="symmetric", base_momentum=0.9)
    assert isinstance(method, BYOL) and isinstance(method.predictor, LinearPredictor)
    start = method.predictor.matrix().detach().clone()
    for step in range(3):
        _train_step(method, step)
        w_p = method.predictor.matrix().detach()
        assert torch.equal(w_p, w_p.T)
    assert not torch.allclose(w_p, start)  # it trained
    assert not torch.equal(method.predictor.weight, method.predictor.weight.T)
    z = torch.randn(4, TINY_DIMS["proj_dim"])
    assert torch.allclose(method.predictor(z), z @ w_p.T)
    assert torch.allclose(method.predictor(torch.zeros_like(z)), torch.zeros_like(z))


def test_byol_linear_predictor_is_a_free_matrix() -> None:
    method = _build("byol", predictor_kind="linear")
    assert isinstance(method, BYOL) and isinstance(method.predictor, LinearPredictor)
    _train_step(method, 0)
    w_p = method.predictor.matrix()
    assert w_p is method.predictor.weight and not torch.allclose(w_p, w_p.T)


def test_byol_options_of_older_configs_still_validate() -> None:
    """A config stored before predictor_kind existed loads with the MLP predictor it ran."""
    for stored in ({}, {"predictor": False}, {"base_momentum": 0.0, "predictor": True}):
        config = _config("byol", **stored)
        assert config.options["predictor_kind"] == "mlp"
        assert isinstance(
            METHODS["byol"](nn.Linear(4, REP_DIM), REP_DIM, config).predictor,
            nn.Identity if stored.get("predictor") is False else nn.Sequential,
        )
    with pytest.raises(ValueError, match="predictor_kind 'symmetric' needs predictor true"):
        _config("byol", predictor=False, predictor_kind="symmetric")


# -- SimCLR ---------------------------------------------------------------------------------
def test_simclr_without_negatives_is_pure_alignment() -> None:
    method = _build("simclr", negatives=False, temperature=0.5)
    out = method.training_loss(_views(), torch.arange(BATCH), STEP)
    z1, z2 = method.projector(method.backbone(torch.cat(_views()))).chunk(2)
    expected = -F.cosine_similarity(z1, z2).mean().item() / 0.5
    assert out.loss.item() == pytest.approx(expected, abs=1e-5)


# -- SwAV -----------------------------------------------------------------------------------
def test_swav_prototypes_stay_normalised_and_queue_fills() -> None:
    method = _build("swav", num_prototypes=5, queue_length=2 * BATCH)
    assert isinstance(method, SwAV)
    for step in range(3):
        _train_step(method, step)
        assert torch.allclose(method.prototypes.weight.norm(dim=1), torch.ones(5), atol=1e-6)
    assert bool(method.queue[:, -1].any())  # two pushes of B filled a queue of 2B
    assert torch.allclose(method.queue.norm(dim=2), torch.ones(2, 2 * BATCH), atol=1e-5)


def test_swav_local_crops_are_predicted() -> None:
    method = _build("swav", local_crops=2)
    assert method.n_local_views() == 2
    small = [v[:, :, :4, :4] for v in _views(2, seed=3)]
    # the tiny flatten backbone needs 8x8 inputs, so give it a size-agnostic one
    method.backbone = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(12, REP_DIM))
    out = method.training_loss(_views() + small, torch.arange(BATCH), STEP)
    assert math.isfinite(out.loss.item())


def test_swav_without_sinkhorn_uses_plain_softmax_codes() -> None:
    scores = torch.zeros(6, 3)
    scores[:, 0] = 1.0
    balanced = _build("swav", num_prototypes=3, epsilon=0.05).codes(scores)
    plain = _build("swav", num_prototypes=3, sinkhorn=False, epsilon=0.05).codes(scores)
    assert torch.allclose(plain, torch.softmax(scores / 0.05, dim=1))
    assert plain.sum(dim=0)[0] > 5.9 and balanced.sum(dim=0).max() < 2.5


# -- DeepCluster ----------------------------------------------------------------------------
def test_deepcluster_pseudo_labels_and_balanced_sampling() -> None:
    method = _build("deepcluster", num_clusters=4)
    assert isinstance(method, DeepCluster)
    n = 40
    features = torch.cat([torch.eye(4, 8)[[0]].repeat(25, 1), torch.eye(4, 8)[1:].repeat(5, 1)])
    method.on_epoch_start(1, lambda: features + 0.01 * torch.randn(n, 8))
    assert method.pseudo_labels.shape == (n,)
    sizes = torch.bincount(method.pseudo_labels, minlength=4)
    assert sorted(sizes.tolist()) == [5, 5, 5, 25]
    weights = method.sampling_weights()
    assert weights is not None and weights.shape == (n,)
    per_cluster = torch.zeros(4, dtype=torch.double).index_add_(0, method.pseudo_labels, weights)
    assert torch.allclose(per_cluster, torch.ones(4, dtype=torch.double))  # equal cluster mass
    assert method.monitor()["kmeans_nonempty_clusters"] == 4

    uniform = _build("deepcluster", num_clusters=4, balanced_sampling=False)
    uniform.on_epoch_start(1, lambda: features)
    assert uniform.sampling_weights() is None


def test_deepcluster_loss_uses_pseudo_labels_of_the_batch_indices() -> None:
    method = _build("deepcluster", num_clusters=3, temperature=0.1)
    images = torch.randn(20, CHANNELS, SIZE, SIZE)
    method.eval()
    method.on_epoch_start(1, lambda: method.embed(images)[1])
    indices = torch.tensor([3, 7, 11, 2, 0, 19, 5, 8])
    views = [images[indices], images[indices]]
    out = method.training_loss(views, indices, STEP)
    z = method.projector(method.backbone(torch.cat(views)))
    logits = F.normalize(z, dim=1) @ method.centroids.t() / 0.1
    expected = F.cross_entropy(logits, method.pseudo_labels[indices].repeat(2))
    assert out.loss.item() == pytest.approx(expected.item(), abs=1e-5)


@pytest.mark.parametrize("reassign", [False, True])
def test_deepcluster_warm_start_and_dead_clusters(reassign: bool) -> None:
    method = _build("deepcluster", num_clusters=4, reassign_empty=reassign)
    blobs = torch.eye(4, 8).repeat_interleave(10, dim=0)
    method.on_epoch_start(1, lambda: blobs + 0.01 * torch.randn(40, 8))
    assert bool(method.centroids_fitted)
    assert method.monitor()["kmeans_nonempty_clusters"] == 4
    # the features drift: the last blob merges into the first, its centroid is left empty
    moved = blobs.clone()
    moved[30:] = torch.eye(4, 8)[0]
    method.on_epoch_start(2, lambda: moved + 0.01 * torch.randn(40, 8))
    nonempty = method.monitor()["kmeans_nonempty_clusters"]
    assert nonempty == (4 if reassign else 3)
