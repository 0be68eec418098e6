"""I-JEPA's multi-block masking on the patch grid.

Assran et al. "Self-Supervised Learning from Images with a Joint-Embedding Predictive
Architecture". CVPR 2023, Sec. 3 and Fig. 4: per image, M target blocks (scale
(0.15, 0.2) of the patches, aspect ratio (0.75, 1.5)) and one context block (scale
(0.85, 1.0), aspect 1) from which the target patches are removed. As in the authors' code
(and lightly's ``IJEPAMaskCollator``, which it follows draw for draw): the block sizes are
drawn once per batch from a generator seeded with the step, the block positions per image
from torch's global random stream, and every image's masks are cut to the batch's shortest
so that they stack.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

RETRIES_PER_RELAXATION = 20  # failed context draws before one target block is ignored


@dataclass(frozen=True)
class MultiBlockMasks:
    context: torch.Tensor  # (B, K_context) long, row-major patch indices seen by the encoder
    targets: list[torch.Tensor]  # M x (B, K_target) long, the patches to predict


def block_size(
    generator: torch.Generator,
    scale: tuple[float, float],
    aspect_ratio: tuple[float, float],
    grid: tuple[int, int],
) -> tuple[int, int]:
    """(height, width) in patches of a block covering ``scale`` of the grid with the given
    aspect ratio (one uniform draw sets both, as in the authors' code), smaller than the
    grid in each direction and at least one patch."""
    draw = torch.rand(1, generator=generator).item()
    keep = int(grid[0] * grid[1] * (scale[0] + draw * (scale[1] - scale[0])))
    ratio = aspect_ratio[0] + draw * (aspect_ratio[1] - aspect_ratio[0])
    height = min(round(math.sqrt(keep * ratio)), grid[0] - 1)
    width = min(round(math.sqrt(keep / ratio)), grid[1] - 1)
    return max(height, 1), max(width, 1)


def block_mask(
    size: tuple[int, int],
    grid: tuple[int, int],
    min_keep: int,
    allowed: list[torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A block of ``size`` at a random position -> (its patch indices (K,) long, the grid's
    complement of the block (H, W) int32). With ``allowed`` (complements of blocks drawn
    before) the block keeps only patches allowed by all of them; a draw that keeps
    ``min_keep`` patches or fewer is redrawn, and after every 20 failures the last of the
    ``allowed`` masks still applied is dropped. A block of ``min_keep`` patches or fewer
    is accepted when nothing removed any of it (the authors' code would loop forever)."""
    height, width = size
    relaxed, failures = 0, 0
    while True:
        top = int(torch.randint(0, grid[0] - height, (1,)))
        left = int(torch.randint(0, grid[1] - width, (1,)))
        mask = torch.zeros(grid, dtype=torch.int32)
        mask[top : top + height, left : left + width] = 1
        for region in (allowed or [])[: max(len(allowed or []) - relaxed, 0)]:
            mask *= region
        indices = torch.nonzero(mask.flatten())[:, 0]
        if len(indices) > min(min_keep, height * width - 1):
            break
        failures += 1
        if failures == RETRIES_PER_RELAXATION:
            relaxed, failures = relaxed + 1, 0
    complement = torch.ones(grid, dtype=torch.int32)
    complement[top : top + height, left : left + width] = 0
    return indices, complement


def multiblock_masks(
    batch: int,
    grid: tuple[int, int],
    seed: int,
    num_targets: int = 4,
    target_scale: tuple[float, float] = (0.15, 0.2),
    target_aspect_ratio: tuple[float, float] = (0.75, 1.5),
    context_scale: tuple[float, float] = (0.85, 1.0),
    min_keep: int = 4,
) -> MultiBlockMasks:
    """Context and target masks for ``batch`` images on a ``grid`` of (rows, columns)
    patches; ``seed`` (the step) fixes the batch's block sizes."""
    generator = torch.Generator().manual_seed(seed)
    target_size = block_size(generator, target_scale, target_aspect_ratio, grid)
    context_size = block_size(generator, context_scale, (1.0, 1.0), grid)
    contexts: list[torch.Tensor] = []
    targets: list[list[torch.Tensor]] = []
    for _ in range(batch):
        blocks = [block_mask(target_size, grid, min_keep) for _ in range(num_targets)]
        targets.append([indices for indices, _ in blocks])
        allowed = [complement for _, complement in blocks]
        contexts.append(block_mask(context_size, grid, min_keep, allowed)[0])
    keep_context = min(len(c) for c in contexts)
    keep_target = min(len(t) for image in targets for t in image)
    return MultiBlockMasks(
        context=torch.stack([c[:keep_context] for c in contexts]),
        targets=[
            torch.stack([image[m][:keep_target] for image in targets]) for m in range(num_targets)
        ],
    )
