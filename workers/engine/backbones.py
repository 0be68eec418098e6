"""Backbones: image batch (B, C, H, W) float -> representation h (B, rep_dim).

- ``small_cnn``: the CPU default. Four conv3x3-BN-ReLU blocks with widths
  (w/2, w, 2w, 4w), the last three with stride 2 (32 -> 16 -> 8 -> 4 px), then global average
  pooling: rep_dim = 4 * width (128 at the default width 32). About 4 M multiply-adds per
  32 px image (a ResNet-18 with the CIFAR stem: 560 M), so a 2-core CPU trains it at hundreds
  of image pairs per second; widths double where the resolution halves, as in VGG/ResNet.
  For inputs of 64 px and more the first block has stride 2 (and a 2x2 max-pool follows it
  from 128 px), keeping the cost near the 32 px one.
- ``resnet18``: torchvision's ResNet-18 (He et al. 2016) without its classifier, rep_dim 512
  (``width`` is ignored: the architecture is the standard one). For images up to 64 px it
  uses the CIFAR stem of the SSL literature (SimCLR appendix B.9, solo-learn, lightly): a
  3x3 stride-1 first convolution and no max-pool; above 64 px the ImageNet stem (7x7 stride 2
  + max-pool).

- ``vit``: a small Vision Transformer (:mod:`workers.engine.vit`: 4 px patches up to 48 px,
  6 blocks of width 6 x ``width``, 192 by default), rep_dim that width, with
  ``forward_tokens`` for the methods that work on patch tokens (I-JEPA).

All work with ``channels_last`` inputs and modules.
"""

from __future__ import annotations

import torch
from torch import nn

from workers.engine.vit import VisionTransformer, vit_width

CIFAR_STEM_MAX_SIZE = 64


def _conv_bn_relu(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class SmallCNN(nn.Module):
    """Conv-BN-ReLU blocks of widths (w/2, w, 2w, 4w) + global average pooling:
    (B, C, H, W) -> (B, 4 * width)."""

    def __init__(self, in_channels: int, image_size: int, width: int) -> None:
        super().__init__()
        stem_stride = 2 if image_size >= 64 else 1
        stem: list[nn.Module] = [_conv_bn_relu(in_channels, width // 2, stem_stride)]
        if image_size >= 128:
            stem.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(
            *stem,
            _conv_bn_relu(width // 2, width, 2),
            _conv_bn_relu(width, 2 * width, 2),
            _conv_bn_relu(2 * width, 4 * width, 2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.rep_dim = 4 * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) float -> (B, rep_dim)."""
        features: torch.Tensor = self.features(x)
        return features


class ResNet18(nn.Module):
    """torchvision ResNet-18 trunk: (B, C, H, W) -> (B, 512)."""

    def __init__(self, in_channels: int, image_size: int) -> None:
        super().__init__()
        from torchvision.models import resnet18  # lazily: small_cnn runs need no torchvision

        net = resnet18(weights=None)
        if image_size <= CIFAR_STEM_MAX_SIZE:
            net.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
            net.maxpool = nn.Identity()
        elif in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        net.fc = nn.Identity()
        self.net = net
        self.rep_dim = 512

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) float -> (B, 512)."""
        features: torch.Tensor = self.net(x)
        return features


def build_backbone(
    name: str, in_channels: int, image_size: int, width: int
) -> tuple[nn.Module, int]:
    """Build backbone ``name`` ("small_cnn" | "resnet18" | "vit"); returns (module, rep_dim)."""
    module: SmallCNN | ResNet18 | VisionTransformer
    if name == "small_cnn":
        module = SmallCNN(in_channels, image_size, width)
    elif name == "resnet18":
        module = ResNet18(in_channels, image_size)
    elif name == "vit":
        module = VisionTransformer(in_channels, image_size, vit_width(width))
    else:
        raise ValueError(f"unknown backbone {name!r}; choose small_cnn, resnet18 or vit")
    return module, module.rep_dim
