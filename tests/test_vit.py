"""The small Vision Transformer backbone: shapes, patch counts, position embeddings at other
sizes, patch tokens for I-JEPA, and every method training a step on it."""

from __future__ import annotations

import math

import pytest
import torch

from contract import resolve_config
from workers.engine.backbones import build_backbone
from workers.engine.methods import METHODS, StepInfo
from workers.engine.trainer import (
    CPU_EVAL_BATCH_WITHOUT_BATCHNORM,
    EVAL_BATCH,
    eval_batch_size,
)
from workers.engine.vit import VisionTransformer

SMALL = {"patch_size": 4, "vit_dim": 24, "vit_depth": 2, "vit_heads": 2}


def _vit(image_size: int = 32, channels: int = 3, **shape: int) -> VisionTransformer:
    torch.manual_seed(0)
    model, rep_dim = build_backbone("vit_tiny", channels, image_size, 32, **{**SMALL, **shape})
    assert isinstance(model, VisionTransformer) and rep_dim == model.rep_dim
    return model


def test_default_vit_tiny_is_the_documented_size() -> None:
    model, rep_dim = build_backbone("vit_tiny", 3, 32, 32)
    assert isinstance(model, VisionTransformer)
    assert rep_dim == 192 and len(model.blocks) == 6 and model.blocks[0].attn.heads == 3
    assert model.grid == 8 and model.pos_embed.shape == (1, 64, 192)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(2.69e6, rel=0.01)


@pytest.mark.parametrize(("image_size", "patch_size"), [(32, 4), (64, 4), (96, 8), (36, 4)])
@pytest.mark.parametrize("channels", [1, 3])
def test_one_vector_per_image_and_one_token_per_patch(
    image_size: int, patch_size: int, channels: int
) -> None:
    model = _vit(image_size, channels, patch_size=patch_size)
    x = torch.randn(2, channels, image_size, image_size)
    assert model(x).shape == (2, 24)
    patches = (image_size // patch_size) ** 2
    assert model.forward_tokens(x).shape == (2, patches, 24)


def test_other_image_sizes_use_interpolated_position_embeddings() -> None:
    model = _vit(32)
    local = torch.randn(3, 3, 16, 16)  # DINO's local crops: half the side, a 4x4 grid
    assert model(local).shape == (3, 24)
    assert model.forward_tokens(local).shape == (3, 16, 24)
    table = model.position_embeddings(4, 4)
    assert table.shape == (1, 16, 24)
    # the same grid is the learned table itself; interpolating it back and forth is smooth
    assert model.position_embeddings(8, 8) is model.pos_embed
    assert not torch.allclose(table, model.pos_embed[:, :16])


def test_position_embeddings_are_added_before_patches_are_selected() -> None:
    model = _vit(32).eval()
    x = torch.randn(2, 3, 32, 32)
    every = torch.arange(64).expand(2, -1)
    with torch.no_grad():
        assert torch.allclose(model.forward_tokens(x, every), model.forward_tokens(x), atol=1e-5)
        kept = torch.tensor([[0, 9, 63], [5, 6, 7]])
        tokens = model.forward_tokens(x, kept)
        assert tokens.shape == (2, 3, 24)
        # a lone patch attends only to itself: its output depends on its position
        alone = model.forward_tokens(x[:1], torch.tensor([[9]]))
        embedded = model.embed_patches(x[:1])[:, 9:10]
        assert torch.allclose(alone, model._blocks(embedded), atol=1e-6)
        moved = model.forward_tokens(x[:1].roll(4, dims=-1), torch.tensor([[10]]))
        assert not torch.allclose(alone, moved, atol=1e-3)  # same pixels, another position


def test_cls_and_mean_pooling() -> None:
    model = _vit(32).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        cls = model(x)
        model.pool = "mean"
        assert torch.allclose(model(x), model.forward_tokens(x).mean(dim=1))
    assert not torch.allclose(cls, model(x))


def test_gradients_reach_every_parameter_and_channels_last_agrees() -> None:
    model = _vit(32)
    x = torch.randn(4, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        reference = model(x)
        out = model.to(memory_format=torch.channels_last)(
            x.contiguous(memory_format=torch.channels_last)
        )
    assert torch.allclose(reference, out, atol=1e-5)
    model.train()
    (model(x).pow(2).mean() + model(x[:, :, :16, :16]).pow(2).mean()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert missing == []


def test_vit_shape_is_validated() -> None:
    with pytest.raises(ValueError, match="multiple of vit_heads"):
        resolve_config({"method": "simclr", "backbone": "vit_tiny", "vit_dim": 100})
    with pytest.raises(ValueError, match="patch_size 32 is larger than half the image_size"):
        resolve_config({"method": "simclr", "backbone": "vit_tiny", "patch_size": 32})
    with pytest.raises(ValueError, match="multiple of vit_heads"):
        VisionTransformer(3, 32, dim=100, heads=3)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_trains_a_step_on_the_vit(name: str) -> None:
    config = resolve_config(
        {
            "method": name,
            "backbone": "vit_tiny",
            "image_size": 16,
            **SMALL,
            "proj_hidden_dim": 16,
            "proj_dim": 8,
            "pred_hidden_dim": 8,
        }
    )
    backbone, rep_dim = build_backbone("vit_tiny", 3, 16, 32, **SMALL)
    method = METHODS[name](backbone, rep_dim, config)
    method.train()
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(16, 3, 16, 16, generator=generator)
    method.on_epoch_start(1, lambda: method.embed(images)[1])
    views = [torch.randn(8, 3, 16, 16, generator=generator) for _ in range(2)]
    views += [torch.randn(8, 3, 8, 8, generator=generator) for _ in range(method.n_local_views())]
    step = StepInfo(epoch=1, step=0, total_steps=4)
    out = method.training_loss(views, torch.arange(8), step)
    assert math.isfinite(out.loss.item())
    out.loss.backward()
    assert backbone.patch_embed.weight.grad is not None
    assert backbone.patch_embed.weight.grad.abs().sum() > 0
    method.after_step(step)
    method.eval()
    h, z = method.embed(views[0])
    # I-JEPA's z is the target encoder's pooled tokens (no projector: contract/methods/ijepa.py)
    assert h.shape == (8, 24) and z.shape == (8, 24 if name == "ijepa" else 8)


def test_probe_passes_batch_small_only_without_batchnorm() -> None:
    """eval_batch_size: without BatchNorm (I-JEPA's encoders) the batch changes no output,
    so the CPU uses its faster small batches; a BatchNorm head keeps the large ones."""
    config = resolve_config({"method": "ijepa", "image_size": 16, **SMALL})
    backbone, rep_dim = build_backbone("vit_tiny", 3, 16, 32, **SMALL)
    ijepa = METHODS["ijepa"](backbone, rep_dim, config).eval()
    assert eval_batch_size(ijepa) == CPU_EVAL_BATCH_WITHOUT_BATCHNORM < EVAL_BATCH
    images = torch.randn(2 * CPU_EVAL_BATCH_WITHOUT_BATCHNORM, 3, 16, 16)
    with torch.no_grad():
        whole = ijepa.embed(images)
        batched = [ijepa.embed(part) for part in images.split(CPU_EVAL_BATCH_WITHOUT_BATCHNORM)]
    for full, parts in zip(whole, zip(*batched, strict=True), strict=True):
        assert torch.allclose(full, torch.cat(parts), atol=1e-5)
    simclr_config = resolve_config({"method": "simclr", "backbone": "vit_tiny", **SMALL})
    backbone, rep_dim = build_backbone("vit_tiny", 3, 16, 32, **SMALL)
    assert eval_batch_size(METHODS["simclr"](backbone, rep_dim, simclr_config)) == EVAL_BATCH
