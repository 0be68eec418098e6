"""Backbones: output shapes for several image sizes and channel counts, stems, channels_last."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from workers.engine.backbones import build_backbone


@pytest.mark.parametrize("image_size", [16, 32, 64, 96, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_small_cnn_gives_one_vector_per_image(image_size: int, channels: int) -> None:
    model, rep_dim = build_backbone("small_cnn", channels, image_size, width=8)
    out = model(torch.randn(4, channels, image_size, image_size))
    assert rep_dim == 32  # 4 * width
    assert out.shape == (4, rep_dim)


def test_small_cnn_width_sets_the_representation_size() -> None:
    model, rep_dim = build_backbone("small_cnn", 3, 32, width=16)
    assert rep_dim == 64 and model(torch.randn(2, 3, 32, 32)).shape == (2, 64)


@pytest.mark.parametrize(("image_size", "stem_kernel"), [(32, 3), (64, 3), (96, 7)])
def test_resnet18_uses_the_cifar_stem_for_small_images(image_size: int, stem_kernel: int) -> None:
    model, rep_dim = build_backbone("resnet18", 3, image_size, width=32)
    assert rep_dim == 512
    assert model.net.conv1.kernel_size == (stem_kernel, stem_kernel)
    assert isinstance(model.net.maxpool, nn.Identity) == (stem_kernel == 3)
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, image_size, image_size)).shape == (2, 512)


@pytest.mark.parametrize("image_size", [32, 96])
def test_resnet18_accepts_one_channel(image_size: int) -> None:
    model, _ = build_backbone("resnet18", 1, image_size, width=32)
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, image_size, image_size)).shape == (2, 512)


@pytest.mark.parametrize("name", ["small_cnn", "resnet18"])
def test_channels_last_gives_the_same_output_and_trains(name: str) -> None:
    torch.manual_seed(0)
    model, _ = build_backbone(name, 3, 32, width=8)
    x = torch.randn(4, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        reference = model(x)
        model_cl = model.to(memory_format=torch.channels_last)
        out = model_cl(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(reference, out, atol=1e-4)
    model.train()
    model(x.contiguous(memory_format=torch.channels_last)).pow(2).mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_unknown_backbone_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown backbone 'vgg'"):
        build_backbone("vgg", 3, 32, 32)
