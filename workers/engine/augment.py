"""Batched SSL augmentations on uint8 image tensors, on whatever device the batch lives on.

The SimCLR/SimSiam recipe (Chen et al. 2020, "A Simple Framework for Contrastive Learning";
Chen & He 2021, "Exploring Simple Siamese Representation Learning"), applied to a whole batch
at once instead of image by image in PIL:

1. random resized crop (area in ``scale``, aspect ratio in [3/4, 4/3]) + horizontal flip
   (p = 0.5) + gaussian blur, all linear and separable, so they are applied as two batched
   matrix products ``rows @ image @ cols`` with per-sample (S x H) and (W x S) matrices
   (bilinear taps, widened to an area filter when shrinking, i.e. antialiased);
2. colour jitter with p = 0.8: brightness 0.4, contrast 0.4, saturation 0.4, hue 0.1 (hue is
   a rotation of the chroma plane in YIQ space, a linear stand-in for an HSV hue shift), then
   random grayscale with p = 0.2. These are linear maps of the channels too, so they compose
   into one per-sample 3x3 matrix + offset, and the result is clamped to [0, 1] once (the
   PIL pipeline clamps after each step and shuffles the jitter order; the difference is
   limited to saturated pixels);
3. gaussian blur (p = 0.5, sigma in [0.1, 2.0] pixels, kernel about 10% of the side) only for
   outputs of 64 px and more by default: at 32 px it erases most of the signal (the SimSiam
   CIFAR recipe omits it);
4. normalisation with the ImageNet mean/std (as lightly's and torchvision's recipes).

``strength`` scales the jitter magnitudes, the crop range and the aspect-ratio range;
strength 0 is the identity (only normalisation). Every random number comes from the given
``torch.Generator`` (on its own device; the few per-sample parameters are moved to the
batch's device), so a run is reproducible and resumable from the generator state.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601 luma, as torchvision's rgb_to_grayscale

# RGB <-> YIQ (NTSC). Hue rotation = rotate the (I, Q) plane.
_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)

# Column layout of the per-sample random numbers (one torch.rand call per batch).
_AREA, _RATIO, _CX, _CY, _FLIP, _JITTER, _BRIGHT, _CONTRAST, _SAT, _HUE, _GRAY, _BLUR, _SIGMA = (
    range(13)
)
_NUM_RANDOM = 13


@functools.lru_cache(maxsize=16)
def _colour_constants(device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(gray weights (3,), RGB->YIQ (3, 3), YIQ->RGB (3, 3)) on ``device``; cached."""
    gray = torch.tensor(GRAY_WEIGHTS, device=device)
    return gray, _RGB_TO_YIQ.to(device), _YIQ_TO_RGB.to(device)


@functools.lru_cache(maxsize=16)
def _norm_constants(channels: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std), each (1, C, 1, 1) on ``device``; cached (read-only)."""
    mean: tuple[float, ...]
    std: tuple[float, ...]
    if channels == 3:
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    else:
        mean = (sum(IMAGENET_MEAN) / 3,) * channels
        std = (sum(IMAGENET_STD) / 3,) * channels
    mean_t = torch.tensor(mean, device=device).view(1, channels, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, channels, 1, 1)
    return mean_t, std_t


def normalize(x: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, H, W) in [0, 255] -> float32 (B, C, H, W) normalised with the ImageNet
    mean/std (channel-averaged when C != 3). Same normalisation as :class:`BatchAugment`."""
    return _normalize_unit(x.float().mul_(1 / 255))


def _normalize_unit(x: torch.Tensor) -> torch.Tensor:
    """float (B, C, H, W) in [0, 1] -> normalised, in place when possible."""
    mean, std = _norm_constants(x.shape[1], x.device)
    return x.sub_(mean).div_(std)


class BatchAugment:
    """Two-view SSL augmentation of whole batches; see the module docstring for the recipe.

    image_size: side of the input images (chooses the blur default); channels: 1 or 3;
    strength: >= 0, 1 = the standard recipe, 0 = identity.
    blur_probability: None = 0.5 for outputs of 64 px and more, 0 below.
    photometric: False keeps the random resized crop alone (no flip, colour jitter,
    grayscale or blur): I-JEPA's views (Assran et al. 2023, Sec. 3: no hand-crafted
    augmentations besides the crop; the reference's ``color_jitter``, ``horizontal_flip``
    and ``gaussian_blur`` are off).
    """

    def __init__(
        self,
        image_size: int,
        channels: int,
        strength: float = 1.0,
        blur_probability: float | None = None,
        photometric: bool = True,
    ) -> None:
        if strength < 0:
            raise ValueError(f"strength must be >= 0, got {strength}")
        self.image_size = image_size
        self.channels = channels
        self.strength = strength
        self.blur_probability = blur_probability if photometric else 0.0
        self.brightness = 0.4 * strength
        self.contrast = 0.4 * strength
        self.saturation = 0.4 * strength
        self.hue = min(0.1 * strength, 0.5)
        self.jitter_probability = 0.8 if photometric else 0.0
        self.gray_probability = 0.2 if photometric else 0.0
        self.flip_probability = 0.5 if photometric else 0.0

    def __call__(
        self,
        x: torch.Tensor,
        generator: torch.Generator,
        out_size: int | None = None,
        scale: tuple[float, float] = (0.2, 1.0),
        scale_fixed: bool = False,
    ) -> torch.Tensor:
        """x: uint8 (B, C, H, W) on any device -> float32 (B, C, S, S) normalised, S =
        ``out_size`` or the input side. ``scale``: crop area range at strength 1, or at any
        strength above 0 with ``scale_fixed``, the aspect ratios too (local crops: small by
        definition; at strength 0.5 they covered 52-70% of the image)."""
        size = out_size or x.shape[-1]
        if self.strength == 0:
            out = normalize(x)
            if out.shape[-1] != size or out.shape[-2] != size:
                out = F.interpolate(out, size=(size, size), mode="bilinear", align_corners=False)
            return out
        if x.shape[1] != self.channels:
            raise ValueError(f"expected {self.channels} channels, got {x.shape[1]}")
        batch, channels, height, width = x.shape
        u = torch.rand(batch, _NUM_RANDOM, generator=generator, device=generator.device)
        u = u.to(x.device, non_blocking=True)
        blur_p = self.blur_probability
        if blur_p is None:
            blur_p = 0.5 if size >= 64 else 0.0
        rows, cols = self._resampling_matrices(u, size, height, width, scale, scale_fixed, blur_p)
        # rows @ image @ cols per sample and channel: crop, flip and blur at once.
        out = torch.matmul(rows.unsqueeze(1).expand(-1, channels, -1, -1), x.float())
        out = torch.bmm(out.view(batch, channels * size, width), cols)  # (B, C*S, S)
        out = out.view(batch, channels, size, size)
        out = self._colour(out, u)
        mean, std = _norm_constants(channels, x.device)
        return out.clamp_(0, 1).sub_(mean).div_(std)

    # -- geometry ------------------------------------------------------------------------------
    def _resampling_matrices(
        self,
        u: torch.Tensor,
        size: int,
        height: int,
        width: int,
        scale: tuple[float, float],
        scale_fixed: bool,
        blur_probability: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample separable resampling: rows (B, S, H) and cols (B, W, S), such that
        rows @ image @ cols is the random resized crop (with flip, and blur when drawn) of the
        image, and the 1/255 scaling to [0, 1].

        Bilinear interpolation (tent weights), widened to an area filter when the crop box
        is larger than the output (antialiasing), edges clamped (border padding).
        """
        # Both ends of the area range move towards 1 (the full image) as strength -> 0.
        strength = 1.0 if scale_fixed else self.strength
        high = min(1.0, max(0.02, 1 - strength * (1 - scale[1])))
        low = min(high, max(0.02, 1 - strength * (1 - scale[0])))
        area = low + (high - low) * u[:, _AREA]
        log_ratio_max = math.log(4 / 3) * min(strength, 1.0)
        ratio = torch.exp((2 * u[:, _RATIO] - 1) * log_ratio_max)
        # Box width / height as fractions of the side; clamped to the image.
        box_w = torch.sqrt(area * ratio).clamp(max=1.0)
        box_h = torch.sqrt(area / ratio).clamp(max=1.0)
        centre_x = (1 - box_w) * (2 * u[:, _CX] - 1)  # in [-1, 1] image units
        centre_y = (1 - box_h) * (2 * u[:, _CY] - 1)
        flip = torch.where(u[:, _FLIP] < self.flip_probability, -1.0, 1.0)
        rows = _interpolation_weights(centre_y, box_h, size, height)  # (B, S, H)
        cols = _interpolation_weights(centre_x, box_w * flip, size, width)  # (B, S, W)
        if blur_probability > 0:
            blur = self._blur_matrix(u, size, blur_probability)  # (B, S, S)
            rows, cols = torch.bmm(blur, rows), torch.bmm(blur, cols)
        return rows.mul_(1 / 255), cols.transpose(1, 2)

    def _blur_matrix(self, u: torch.Tensor, size: int, probability: float) -> torch.Tensor:
        """Gaussian blur as a (B, S, S) matrix on the output grid: sigma in [0.1, 2.0] px,
        kernel radius 5% of the side (SimCLR: kernel 10% of the side), rows renormalised at the
        edges; identity for samples not drawn (p = ``probability``)."""
        radius = max(1, int(0.05 * size))
        sigma = (0.1 + 1.9 * u[:, _SIGMA]).view(-1, 1, 1)
        positions = torch.arange(size, device=u.device, dtype=torch.float32)
        offset = positions.view(1, -1, 1) - positions.view(1, 1, -1)  # (1, S, S)
        kernel = torch.exp(-(offset**2) / (2 * sigma**2)) * (offset.abs() <= radius)
        kernel = kernel / kernel.sum(dim=2, keepdim=True)
        apply = (u[:, _BLUR] < probability).view(-1, 1, 1)
        return torch.where(apply, kernel, torch.eye(size, device=u.device).unsqueeze(0))

    # -- colour --------------------------------------------------------------------------------
    def _colour(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Colour jitter (p = 0.8) then random grayscale (p = 0.2) as one per-sample affine map
        x -> A x + t over channels (clamped once, by the caller).

        Brightness b: x -> b x. Contrast c: x -> c x + (1 - c) mean(gray(x)). Saturation s:
        x -> s x + (1 - s) gray(x). Hue: rotation of the YIQ chroma plane. Grayscale: gray(x)
        in every channel. All are linear and fix the gray axis, so they compose into A and
        the only offset is the contrast one: t = (1 - c) b mean(gray(x)) (1, 1, 1).
        x: (B, C, S, S) in [0, 1] -> (B, C, S, S).
        """
        batch, channels, h, w = x.shape
        apply = (u[:, _JITTER] < self.jitter_probability).float()

        def factor(column: int, amount: float) -> torch.Tensor:
            return 1 + apply * amount * (2 * u[:, column] - 1)

        brightness = factor(_BRIGHT, self.brightness)
        contrast = factor(_CONTRAST, self.contrast)
        channel_means = x.mean(dim=(2, 3))  # (B, C)
        gray_weights, rgb_to_yiq, yiq_to_rgb = _colour_constants(x.device)
        mean_gray = channel_means @ gray_weights if channels == 3 else channel_means.mean(dim=1)
        offset = ((1 - contrast) * brightness * mean_gray).view(batch, 1, 1)
        matrix = (contrast * brightness).view(batch, 1, 1) * torch.eye(channels, device=x.device)
        if channels == 3:
            to_gray = torch.ones(3, 1, device=x.device) * gray_weights.view(1, 3)  # 1 w^T
            eye = torch.eye(3, device=x.device)
            saturation = factor(_SAT, self.saturation).view(batch, 1, 1)
            matrix = (saturation * eye + (1 - saturation) * to_gray) @ matrix
            if self.hue > 0:
                angle = apply * self.hue * (2 * u[:, _HUE] - 1) * 2 * math.pi
                cos, sin = torch.cos(angle), torch.sin(angle)
                rotation = torch.zeros(batch, 3, 3, device=x.device)
                rotation[:, 0, 0] = 1
                rotation[:, 1, 1] = cos
                rotation[:, 1, 2] = -sin
                rotation[:, 2, 1] = sin
                rotation[:, 2, 2] = cos
                hue = yiq_to_rgb @ rotation @ rgb_to_yiq
                matrix = hue @ matrix
            grayscale = (u[:, _GRAY] < self.gray_probability).view(batch, 1, 1)
            matrix = torch.where(grayscale, to_gray @ matrix, matrix)
        out = torch.baddbmm(offset, matrix, x.reshape(batch, channels, h * w))
        return out.view(batch, channels, h, w)


def _interpolation_weights(
    centre: torch.Tensor, half_extent: torch.Tensor, size: int, length: int
) -> torch.Tensor:
    """(B, size, length) weights sampling ``size`` points across [centre - half_extent,
    centre + half_extent] (image units, [-1, 1] = the whole side; a negative extent flips) from
    a signal of ``length`` pixels: tent filter of width max(1, source pixels per output pixel),
    positions clamped to the border, rows summing to 1."""
    grid = (2 * torch.arange(size, device=centre.device, dtype=torch.float32) + 1) / size - 1
    source = centre.view(-1, 1) + half_extent.view(-1, 1) * grid.view(1, -1)  # (B, S)
    position = ((source + 1) * length - 1) / 2  # pixel units, align_corners=False
    position = position.clamp(0, length - 1)
    footprint = (half_extent.abs() * length / size).clamp(min=1.0).view(-1, 1, 1)
    pixels = torch.arange(length, device=centre.device, dtype=torch.float32).view(1, 1, -1)
    weights = (1 - (position.unsqueeze(2) - pixels).abs() / footprint).clamp_(min=0)
    return weights / weights.sum(dim=2, keepdim=True)
