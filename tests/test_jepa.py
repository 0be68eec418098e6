"""LeJEPA and I-JEPA against lightly's reference implementations (the installed ``lightly``
package: ``lightly/loss/lejepa_loss.py``, ``lightly/data/ijepa_collate.py`` and the loss of
lightly's I-JEPA example, ``examples/pytorch/ijepa.py``, rebuilt from ``lightly.models.utils``)
on identical inputs, values and gradients to 1e-5; and the parts' own behaviour."""

from __future__ import annotations

import math

import pytest
import torch
from lightly.data.ijepa_collate import IJEPAMaskCollator
from lightly.loss.lejepa_loss import SIGReg, lejepa_invariance_loss
from lightly.models.utils import apply_masks, repeat_interleave_batch

from contract import resolve_config
from workers.engine.backbones import build_backbone
from workers.engine.methods import METHODS, StepInfo
from workers.engine.methods.ijepa import IJEPA, Predictor, ijepa_loss, linear_momentum
from workers.engine.methods.lejepa import (
    lejepa_loss,
    prediction_loss,
    random_directions,
    sigreg,
)
from workers.engine.parts.multiblock import multiblock_masks
from workers.engine.vit import VisionTransformer

TOLERANCE = 1e-5


def _embeddings(views: int, n: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(views, n, d, generator=g) * 0.7 + 0.2).requires_grad_(True)


# -- LeJEPA ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("views", "n", "d", "slices"), [(2, 32, 16, 64), (6, 20, 8, 300)])
@pytest.mark.parametrize("weight", [0.05, 0.0, 1.0])
def test_lejepa_loss_matches_lightly(views: int, n: int, d: int, slices: int, weight: float):
    """Same embeddings, same random slices (lightly draws them from the global stream, we
    from a generator with the same seed): loss and gradient to 1e-5."""
    reference_z = _embeddings(views, n, d, seed=views + n)
    torch.manual_seed(11)
    lightly_sigreg = SIGReg(num_vectors=slices)(reference_z)
    invariance = lejepa_invariance_loss(all_proj=reference_z, global_proj=reference_z[:2])
    expected = weight * lightly_sigreg + (1 - weight) * invariance
    expected.backward()

    z = reference_z.detach().clone().requires_grad_(True)
    directions = random_directions(d, slices, torch.Generator().manual_seed(11))
    loss, terms = lejepa_loss(z, 2, directions, weight)
    loss.backward()
    assert loss.item() == pytest.approx(expected.item(), rel=TOLERANCE, abs=TOLERANCE)
    assert terms["sigreg"] == pytest.approx(lightly_sigreg.item(), rel=TOLERANCE)
    assert terms["prediction"] == pytest.approx(invariance.item(), rel=TOLERANCE)
    assert reference_z.grad is not None and z.grad is not None
    torch.testing.assert_close(z.grad, reference_z.grad, rtol=TOLERANCE, atol=TOLERANCE)


def test_sigreg_separates_a_gaussian_from_a_collapsed_embedding() -> None:
    g = torch.Generator().manual_seed(0)
    directions = random_directions(32, 256, g)
    gaussian = torch.randn(1, 512, 32, generator=g)
    point = torch.full((1, 512, 32), 0.3) + 1e-3 * torch.randn(1, 512, 32, generator=g)
    low_rank = torch.randn(1, 512, 2, generator=g) @ torch.randn(2, 32, generator=g)
    statistic = {
        name: sigreg(z, directions).item()
        for name, z in [("gaussian", gaussian), ("point", point), ("low_rank", low_rank)]
    }
    # N x a squared distance whose mean is integral (1 - phi^2) phi dt / N: about 1.1 for
    # any N when the samples are Gaussian; it grows with N for anything else
    assert statistic["gaussian"] < 2.0
    assert statistic["point"] > 50 * statistic["gaussian"]
    assert statistic["low_rank"] > 10 * statistic["gaussian"]


def test_prediction_loss_is_the_distance_to_the_global_views_mean() -> None:
    z = _embeddings(4, 5, 3, seed=1).detach()
    centre = (z[0] + z[1]) / 2
    expected = sum(((z[v] - centre) ** 2).sum() for v in range(4)) / z.numel()
    assert prediction_loss(z, 2).item() == pytest.approx(float(expected), rel=1e-6)
    same = z[:1].expand(4, -1, -1)
    assert prediction_loss(same, 2).item() == 0.0


def test_lejepa_logs_both_terms_and_uses_its_local_views() -> None:
    config = resolve_config(
        {
            "method": "lejepa",
            "proj_hidden_dim": 32,
            "proj_dim": 16,
            "options": {"views": 4, "num_projections": 32},
        }
    )
    torch.manual_seed(0)
    backbone = torch.nn.Sequential(
        torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(12, 24)
    )
    method = METHODS["lejepa"](backbone, 24, config)
    assert method.n_local_views() == 2
    g = torch.Generator().manual_seed(0)
    views = [torch.randn(8, 3, 16, 16, generator=g) for _ in range(2)]
    views += [torch.randn(8, 3, 8, 8, generator=g) for _ in range(2)]
    out = method.training_loss(views, torch.arange(8), StepInfo(1, 3, 10))
    assert set(out.logs) == {"prediction", "sigreg"}
    expected = 0.95 * out.logs["prediction"] + 0.05 * out.logs["sigreg"]
    assert out.loss.item() == pytest.approx(expected, rel=1e-5)


# -- I-JEPA masks ---------------------------------------------------------------------------
PAPER_MASKS = {
    "pred_mask_scale": (0.15, 0.2),
    "aspect_ratio": (0.75, 1.5),
    "enc_mask_scale": (0.85, 1.0),
    "npred": 4,
    "nenc": 1,
}


@pytest.mark.parametrize(("image_size", "patch_size", "batch"), [(32, 4, 6), (224, 16, 4)])
def test_multiblock_masks_are_lightlys_draw_for_draw(
    image_size: int, patch_size: int, batch: int
) -> None:
    """The I-JEPA paper's scales (4 targets 0.15-0.2, aspect 0.75-1.5; context 0.85-1.0):
    lightly's collator and ours, given the same step and global random state, cut the same
    blocks for several steps."""
    grid = image_size // patch_size
    collator = IJEPAMaskCollator(input_size=image_size, patch_size=patch_size, **PAPER_MASKS)
    for step in range(5):
        torch.manual_seed(100 + step)
        _, lightly_context, lightly_targets = collator([torch.zeros(1)] * batch)
        torch.manual_seed(100 + step)
        ours = multiblock_masks(batch, (grid, grid), seed=step)
        assert len(lightly_context) == 1 and len(lightly_targets) == 4
        torch.testing.assert_close(ours.context, lightly_context[0])
        for mine, theirs in zip(ours.targets, lightly_targets, strict=True):
            torch.testing.assert_close(mine, theirs)


def test_multiblock_masks_have_the_papers_shapes() -> None:
    torch.manual_seed(0)
    grid = (14, 14)
    for step in range(20):
        masks = multiblock_masks(8, grid, seed=step)
        n = grid[0] * grid[1]
        assert 0.15 * n * 0.7 <= masks.targets[0].shape[1] <= 0.2 * n * 1.3
        for image in range(8):
            context = set(masks.context[image].tolist())
            for target in masks.targets:
                # the context never sees a target patch, unless the draw had to relax
                assert not context & set(target[image].tolist()) or len(context) <= 4


def test_small_blocks_do_not_loop_forever() -> None:
    """On a 4 x 4 grid a target block has 2 patches, fewer than min_keep: accepted."""
    torch.manual_seed(0)
    masks = multiblock_masks(3, (4, 4), seed=0)
    assert masks.targets[0].shape[1] >= 1 and masks.context.shape[1] >= 1


# -- I-JEPA loss, predictor, method ---------------------------------------------------------
@pytest.mark.parametrize("loss", ["smooth_l1", "l2"])
def test_ijepa_loss_matches_lightlys_example(loss: str) -> None:
    """lightly's example: targets F.layer_norm'ed, apply_masks, repeat_interleave_batch,
    then nn.SmoothL1Loss against the predictor output (its L2 twin: nn.MSELoss)."""
    torch.manual_seed(0)
    batch, n, d = 5, 64, 12
    masks = multiblock_masks(batch, (8, 8), seed=3)
    k = masks.targets[0].shape[1]
    predicted = torch.randn(4 * batch, k, d, requires_grad=True)
    tokens = (torch.randn(batch, n, d) * 2 + 1).requires_grad_(True)

    h = torch.nn.functional.layer_norm(tokens, (tokens.size(-1),))
    h = repeat_interleave_batch(apply_masks(h, masks.targets), batch, repeat=1)
    criterion = torch.nn.SmoothL1Loss() if loss == "smooth_l1" else torch.nn.MSELoss()
    expected = criterion(predicted, h)
    expected_grads = torch.autograd.grad(expected, [predicted, tokens])

    ours = ijepa_loss(predicted, tokens, masks.targets, loss)
    grads = torch.autograd.grad(ours, [predicted, tokens])
    assert ours.item() == pytest.approx(expected.item(), rel=TOLERANCE)
    for mine, theirs in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=TOLERANCE, atol=TOLERANCE)


def test_vit_adds_positions_before_selecting_patches() -> None:
    """Attention is permutation-equivariant, so tokens selected in any order are the full
    sequence's tokens in that order only if each kept its own position embedding."""
    torch.manual_seed(0)
    vit = VisionTransformer(3, 16, dim=32, depth=2, heads=2).eval()
    images = torch.randn(2, 3, 16, 16)
    full = vit.forward_tokens(images)
    assert full.shape == (2, 16, 32) and vit(images).shape == (2, 32)
    order = torch.stack([torch.randperm(16), torch.randperm(16)])
    torch.testing.assert_close(
        vit.forward_tokens(images, order),
        torch.gather(full, 1, order[..., None].expand(-1, -1, 32)),
    )
    subset = vit.forward_tokens(images, order[:, :5])
    assert subset.shape == (2, 5, 32) and not torch.allclose(
        subset, torch.gather(full, 1, order[:, :5, None].expand(-1, -1, 32)), atol=1e-4
    )


def test_predictor_predicts_every_target_block() -> None:
    torch.manual_seed(0)
    predictor = Predictor(encoder_dim=48, width=32, depth=2)
    masks = multiblock_masks(3, (8, 8), seed=1)
    context = torch.randn(3, masks.context.shape[1], 48)
    out = predictor(context, masks.context, masks.targets, (8, 8))
    assert out.shape == (4 * 3, masks.targets[0].shape[1], 48)
    # the queries differ by position: two blocks of one image get different predictions
    assert not torch.allclose(out[:3], out[3:6])


def _ijepa(**options: object) -> IJEPA:
    config = resolve_config({"method": "ijepa", "image_size": 32, "options": options})
    torch.manual_seed(0)
    encoder = VisionTransformer(3, 32, dim=32, depth=1, heads=2)
    method = METHODS["ijepa"](encoder, 32, config)
    assert isinstance(method, IJEPA)
    return method


def _ijepa_step(method: IJEPA) -> None:
    images = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    out = method.training_loss([images, images], torch.arange(4), StepInfo(1, 0, 10))
    assert math.isfinite(out.loss.item()) and out.logs["target_patches"] >= 1
    out.loss.backward()


def test_ijepa_ema_target_takes_no_gradient_and_follows_the_schedule() -> None:
    method = _ijepa()
    assert method.target_backbone is not None
    _ijepa_step(method)
    assert all(p.grad is None for p in method.target_backbone.parameters())
    assert method.backbone.patch_embed.weight.grad is not None
    before = method.target_backbone.patch_embed.weight.clone()
    with torch.no_grad():
        method.backbone.patch_embed.weight.add_(1.0)
    method.after_step(StepInfo(1, 5, 10))
    assert method.current_momentum == pytest.approx(0.998)
    moved = method.target_backbone.patch_embed.weight - before
    torch.testing.assert_close(moved, torch.full_like(moved, 0.002), rtol=1e-3, atol=1e-5)
    assert linear_momentum(0.0, 5, 10) == 0.0 and linear_momentum(0.5, 10, 10) == 1.0


def test_ijepa_without_ema_targets_the_context_encoder_itself() -> None:
    method = _ijepa(target_momentum=0.0)
    assert method.target_backbone is None and method.target_encoder() is method.backbone
    images = torch.randn(4, 3, 32, 32)
    h, z = method.embed(images)
    torch.testing.assert_close(h, z)


def _target_branch_gradient(stop_gradient: bool) -> float:
    """Gradient the loss sends to the encoder through the target features alone."""
    method = _ijepa(target_momentum=0.0, stop_gradient=stop_gradient)
    method.predictor.requires_grad_(False)
    for p in method.predictor.parameters():
        p.zero_()  # the prediction no longer depends on the context: only the target branch
    _ijepa_step(method)
    grad = method.backbone.patch_embed.weight.grad
    return 0.0 if grad is None else float(grad.abs().sum())


def test_ijepa_stop_gradient_switch() -> None:
    assert _target_branch_gradient(stop_gradient=True) == 0.0
    assert _target_branch_gradient(stop_gradient=False) > 0.0


def test_ijepa_needs_a_token_backbone() -> None:
    # the config refuses any other backbone (tests/test_config.py); the engine still checks
    # the module it is given
    with pytest.raises(ValueError, match="I-JEPA trains only on 'vit_tiny'"):
        resolve_config({"method": "ijepa", "backbone": "small_cnn"})
    config = resolve_config({"method": "ijepa"})
    with pytest.raises(ValueError, match="needs the 'vit_tiny' backbone"):
        METHODS["ijepa"](torch.nn.Flatten(), 8, config)


@pytest.mark.parametrize("vit_dim", [48, 96, 192])
def test_vit_backbone_width_follows_the_config(vit_dim: int) -> None:
    model, rep_dim = build_backbone("vit_tiny", 3, 32, 32, vit_dim=vit_dim, vit_heads=3)
    assert rep_dim == vit_dim
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, rep_dim)
