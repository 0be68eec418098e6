"""``shapes``: procedural images rendered with torch from the run's seed.

10 classes (the shape kind: the registry's class names, contract/datasets.py), with colour,
size, position, rotation and background (colour + gradient + noise) as nuisance factors. The
probe is drawn from a separate random stream, so it never repeats a training image.
"""

from __future__ import annotations

import math

import torch

from contract.datasets import DATASET_SPECS
from workers.engine.datasets import LoadRequest, stream_generator
from workers.engine.images import ImageData

SHAPES_TRAIN_SIZE = 8192
SHAPE_NAMES = DATASET_SPECS["shapes"].class_names or ()


def _shape_distance(kind: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Approximate signed distance (negative inside, in shape units, radius about 1) of shape
    ``kind`` at local coordinates u, v (any shape, same shape)."""
    r = torch.sqrt(u * u + v * v)
    angle = torch.atan2(v, u)
    if kind == 0:  # disk
        return r - 1.0
    if kind == 1:  # ring
        return (r - 0.78).abs() - 0.22
    if kind == 2:  # square
        return torch.maximum(u.abs(), v.abs()) - 0.8
    if kind == 3:  # frame (hollow square)
        return (torch.maximum(u.abs(), v.abs()) - 0.68).abs() - 0.17
    if kind == 4:  # equilateral triangle, circumradius 1
        sector = 2 * math.pi / 3
        local = torch.remainder(angle, sector) - sector / 2
        return r * torch.cos(local) - 0.5
    if kind == 5:  # five-pointed star
        sector = 2 * math.pi / 5
        local = (torch.remainder(angle, sector) - sector / 2).abs() / (sector / 2)
        return (r - (0.45 + 0.6 * local)) * 0.6
    if kind == 6:  # cross (plus sign)
        bar_h = torch.maximum(u.abs() - 0.95, v.abs() - 0.3)
        bar_v = torch.maximum(v.abs() - 0.95, u.abs() - 0.3)
        return torch.minimum(bar_h, bar_v)
    if kind == 7:  # half disk
        return torch.maximum(r - 1.0, -v - 0.15)
    if kind == 8:  # crescent: disk minus a shifted disk
        r_shift = torch.sqrt((u - 0.5) ** 2 + v * v)
        return torch.maximum(r - 1.0, 0.85 - r_shift)
    if kind == 9:  # ellipse, semi-axes 1.0 and 0.45
        return (torch.sqrt(u * u + (v / 0.45) ** 2) - 1.0) * 0.45
    raise ValueError(f"no shape kind {kind}")


def render_shapes(
    count: int, image_size: int, generator: torch.Generator, chunk: int = 2048
) -> tuple[torch.Tensor, torch.Tensor]:
    """Render ``count`` random shape images, vectorised in torch.

    Returns (images uint8 (count, 3, S, S), labels int64 (count,)), classes balanced (shuffled
    ``arange % 10``). Nuisance factors per image: shape size (radius 25-40% of the side),
    position (anywhere the shape stays mostly inside), rotation (uniform), foreground colour
    (uniform RGB), background colour (contrasting), a linear background gradient, pixel noise.
    """
    num_classes = len(SHAPE_NAMES)
    labels = (torch.arange(count) % num_classes)[torch.randperm(count, generator=generator)]
    params = torch.rand(count, 12, generator=generator)
    noise_seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    images = torch.empty(count, 3, image_size, image_size, dtype=torch.uint8)
    # Pixel-centre coordinates in [-1, 1].
    axis = (torch.arange(image_size, dtype=torch.float32) + 0.5) / image_size * 2 - 1
    grid_y, grid_x = torch.meshgrid(axis, axis, indexing="ij")
    noise_generator = torch.Generator().manual_seed(noise_seed)
    pixels_per_unit_side = image_size / 2
    for start in range(0, count, chunk):
        stop = min(start + chunk, count)
        p = params[start:stop]
        n = stop - start
        radius = 0.5 + 0.3 * p[:, 0]  # in [-1, 1] coordinates: 25%-40% of the side
        margin = 1 - radius * 0.9
        centre_x = (p[:, 1] * 2 - 1) * margin
        centre_y = (p[:, 2] * 2 - 1) * margin
        theta = p[:, 3] * 2 * math.pi
        foreground = p[:, 4:7]
        background = (1 - foreground) * 0.65 + 0.35 * p[:, 7:10]
        gradient_angle = p[:, 10] * 2 * math.pi
        gradient_strength = 0.35 * p[:, 11]

        dx = grid_x - centre_x.view(n, 1, 1)
        dy = grid_y - centre_y.view(n, 1, 1)
        cos_t = torch.cos(theta).view(n, 1, 1)
        sin_t = torch.sin(theta).view(n, 1, 1)
        u = (cos_t * dx + sin_t * dy) / radius.view(n, 1, 1)
        v = (-sin_t * dx + cos_t * dy) / radius.view(n, 1, 1)
        distance = torch.empty(n, image_size, image_size)
        chunk_labels = labels[start:stop]
        for kind in range(num_classes):
            members = (chunk_labels == kind).nonzero().squeeze(1)
            if members.numel():
                distance[members] = _shape_distance(kind, u[members], v[members])
        # Distance in pixels -> anti-aliased coverage in [0, 1].
        distance_px = distance * (radius * pixels_per_unit_side).view(n, 1, 1)
        coverage = (0.5 - distance_px).clamp(0, 1).unsqueeze(1)
        ramp = (
            torch.cos(gradient_angle).view(n, 1, 1) * grid_x
            + torch.sin(gradient_angle).view(n, 1, 1) * grid_y
        )
        shade = (1 + gradient_strength.view(n, 1, 1) * ramp).unsqueeze(1)
        back = background.view(n, 3, 1, 1) * shade
        picture = back + coverage * (foreground.view(n, 3, 1, 1) - back)
        picture += 0.03 * torch.randn(picture.shape, generator=noise_generator)
        images[start:stop] = (picture.clamp(0, 1) * 255).round_().to(torch.uint8)
    return images, labels


def load_shapes(request: LoadRequest) -> tuple[ImageData, ImageData]:
    """(train, probe) at ``image_size``: ``train_size`` (default 8,192) and ``probe_size``
    images from the streams 0 and 1 of the seed."""
    config = request.config
    train_size = config.train_size or SHAPES_TRAIN_SIZE
    splits = []
    for stream, size in ((0, train_size), (1, config.probe_size)):
        images, labels = render_shapes(
            size, config.image_size, stream_generator(config.seed, stream)
        )
        # Index offset marks the stream so train and probe indices never coincide.
        offset = stream * 1_000_000_000
        indices = torch.arange(offset, offset + size, dtype=torch.int64)
        splits.append(ImageData.from_tensor(images, labels, list(SHAPE_NAMES), indices))
    return splits[0], splits[1]
