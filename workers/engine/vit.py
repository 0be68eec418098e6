"""A small Vision Transformer for 32-96 px images, with the token interface I-JEPA needs.

Dosovitskiy et al. "An Image is Worth 16x16 Words: Transformers for Image Recognition at
Scale". ICLR 2021: non-overlapping patches embedded linearly, pre-norm transformer blocks,
a final LayerNorm. Position embeddings are the fixed 2-D sine-cosine ones of MAE and I-JEPA
(Assran et al. 2023), so any patch grid (a half-resolution crop included) has them.
No class token: the representation h is the mean of the patch tokens (I-JEPA's evaluation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

VIT_DEPTH = 6  # half of ViT-Tiny's 12 blocks (Touvron et al. 2021)
HEAD_DIM_ENCODER = 64  # ViT-Tiny's heads: 192 = 3 x 64
HEAD_DIM = 32  # the narrow I-JEPA predictor's heads have this width


def vit_width(width: int) -> int:
    """The run config's ``width`` (32 by default) -> the ViT's: 6 x width (rounded to a
    multiple of 12, for the sine-cosine positions), so the default is ViT-Tiny's 192 and
    width 64 ViT-Small's 384; width 16 (96) keeps CPU runs small."""
    return 12 * (width // 2)


def encoder_heads(dim: int) -> int:
    """About one head per 64 channels (ViT-Tiny: 3 for 192), a divisor of ``dim``."""
    heads = max(dim // HEAD_DIM_ENCODER, 1)
    while dim % heads:
        heads -= 1
    return heads


def vit_patch_size(image_size: int) -> int:
    """4 px patches up to 48 px images (8 x 8 tokens at 32 px), 8 px above (12 x 12 at 96)."""
    return 4 if image_size <= 48 else 8


def sincos_position_embedding(dim: int, grid_h: int, grid_w: int) -> torch.Tensor:
    """(grid_h * grid_w, dim) fixed 2-D sine-cosine embeddings, row-major: half the channels
    encode the row, half the column, each as sin/cos of the position at dim/4 frequencies."""
    if dim % 4:
        raise ValueError(f"the width {dim} must be a multiple of 4")
    omega = 1.0 / 10_000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))
    rows, cols = torch.meshgrid(
        torch.arange(grid_h, dtype=torch.float64),
        torch.arange(grid_w, dtype=torch.float64),
        indexing="ij",
    )
    parts = []
    for position in (rows.flatten(), cols.flatten()):
        angles = position[:, None] * omega[None, :]
        parts += [angles.sin(), angles.cos()]
    return torch.cat(parts, dim=1).float()


class Block(nn.Module):
    """Pre-norm transformer block: x + attention(LN(x)), then x + MLP(LN(x)).
    (B, T, dim) -> (B, T, dim)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        qkv = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, d // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, T, head_dim)
        attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(attended)
        out: torch.Tensor = x + self.mlp(self.norm2(x))
        return out


def init_transformer_weights(module: nn.Module) -> None:
    """Truncated-normal(0.02) linear weights, zero biases, unit LayerNorms (ViT, I-JEPA)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def gather_tokens(tokens: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """tokens (B, N, D), indices (B, K) long -> (B, K, D): each image's tokens at its
    indices."""
    return torch.gather(tokens, 1, indices.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))


class VisionTransformer(nn.Module):
    """(B, C, H, W) -> patch tokens (B, N, dim) with ``forward_tokens``, or their mean
    (B, dim) with ``forward``. N = (H / patch) * (W / patch); about 64 channels per head
    unless ``heads`` is given."""

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        dim: int = 192,
        depth: int = VIT_DEPTH,
        heads: int | None = None,
    ) -> None:
        super().__init__()
        self.patch_size = vit_patch_size(image_size)
        self.patch_embed = nn.Conv2d(in_channels, dim, self.patch_size, stride=self.patch_size)
        heads = heads or encoder_heads(dim)
        self.blocks = nn.Sequential(*(Block(dim, heads) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.rep_dim = dim
        init_transformer_weights(self)

    def forward_tokens(
        self, images: torch.Tensor, patch_indices: torch.Tensor | None = None
    ) -> torch.Tensor:
        """images (B, C, H, W); patch_indices optional (B, K) long, the row-major patch
        positions to keep (position embeddings are added before selecting) -> (B, K or N,
        dim) patch tokens after the blocks and the final norm."""
        patches = self.patch_embed(images)  # (B, dim, H/p, W/p)
        grid_h, grid_w = patches.shape[-2:]
        tokens = patches.flatten(2).transpose(1, 2)  # (B, N, dim)
        position = sincos_position_embedding(tokens.shape[-1], grid_h, grid_w)
        tokens = tokens + position.to(tokens.device, tokens.dtype)
        if patch_indices is not None:
            tokens = gather_tokens(tokens, patch_indices)
        out: torch.Tensor = self.norm(self.blocks(tokens))
        return out

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, C, H, W) -> (B, dim), the mean patch token."""
        return self.forward_tokens(images).mean(dim=1)
