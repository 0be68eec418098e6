"""A small Vision Transformer for 32-96 px images (the ``vit_tiny`` backbone), with the token
interface the patch-based methods (I-JEPA) need.

Dosovitskiy et al. "An Image is Worth 16x16 Words: Transformers for Image Recognition at
Scale". ICLR 2021: non-overlapping patches embedded linearly, pre-norm transformer blocks, a
final LayerNorm. Sized as ViT-Tiny (Touvron et al. 2021: width 192, 3 heads) with 6 of its 12
blocks and 4x4 patches (an 8x8 grid at 32 px). A CLS token and learned position embeddings
as in DINO (Caron et al. 2021), bicubically interpolated to another grid (DINO's
``interpolate_pos_encoding``, for its half-size local crops).

The API the methods build on:

- ``forward(images) -> (B, dim)``: the CLS token after the final LayerNorm (``pool="cls"``),
  or the mean patch token (``pool="mean"``: no CLS token in the sequence at all).
- ``forward_tokens(images, patch_indices=None) -> (B, K or N, dim)``: patch tokens after the
  blocks and the final LayerNorm, without CLS; ``patch_indices`` (B, K) long keeps those
  patch positions (row-major on the (H // p) x (W // p) grid), the position embeddings being
  added before the selection; only the kept tokens go through the blocks.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

VIT_DIM = 192  # ViT-Tiny's width and heads (Touvron et al. 2021), 6 of its 12 blocks
VIT_DEPTH = 6
VIT_HEADS = 3
VIT_PATCH = 4
HEAD_DIM = 32  # the narrow I-JEPA predictor's heads have this width


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


class Attention(nn.Module):
    """Multi-head self-attention: (B, T, D) -> (B, T, D), with PyTorch's fused kernel."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).view(batch, tokens, 3, self.heads, dim // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, T, D / heads)
        out = F.scaled_dot_product_attention(q, k, v)
        projected: torch.Tensor = self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))
        return projected


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(LN(x)), then x + MLP(LN(x)); (B, T, D) -> same."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        out: torch.Tensor = x + self.mlp(self.norm2(x))
        return out


class VisionTransformer(nn.Module):
    """A small ViT: (B, C, H, W) -> (B, dim), the CLS token after the final LayerNorm.

    The image is cut into ``patch_size`` x ``patch_size`` patches (a strided convolution; a
    border narrower than a patch is dropped), each embedded to ``dim``; learned position
    embeddings of the ``image_size`` grid are added (bicubically interpolated to another
    grid, as DINO's ``interpolate_pos_encoding`` does for its local crops), then ``depth``
    pre-norm blocks and a final LayerNorm. Initialisation as DINO's ViT: truncated normal
    (std 0.02) linear weights and embeddings, zero biases, PyTorch's default for the patch
    convolution.

    ``pool``: what :meth:`forward` returns: "cls" (the CLS token, as DINO) or "mean" (the
    mean of :meth:`forward_tokens`, no CLS token in the sequence: I-JEPA's ViT has none).
    """

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        patch_size: int = VIT_PATCH,
        dim: int = VIT_DIM,
        depth: int = VIT_DEPTH,
        heads: int = VIT_HEADS,
        pool: Literal["cls", "mean"] = "cls",
    ) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"vit_dim {dim} is not a multiple of vit_heads {heads}")
        if image_size < patch_size:
            raise ValueError(f"image_size {image_size} is smaller than patch_size {patch_size}")
        self.patch_size = patch_size
        self.grid = image_size // patch_size
        self.pool = pool
        self.patch_embed = nn.Conv2d(in_channels, dim, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid * self.grid, dim))
        self.cls_pos_embed = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.rep_dim = dim
        for parameter in (self.cls_token, self.pos_embed, self.cls_pos_embed):
            nn.init.trunc_normal_(parameter, std=0.02)
        self.apply(init_transformer_weights)

    def position_embeddings(self, rows: int, cols: int) -> torch.Tensor:
        """(1, rows * cols, dim) patch position embeddings for a rows x cols grid."""
        if rows == cols == self.grid:
            return self.pos_embed
        dim = self.pos_embed.shape[-1]
        table = self.pos_embed.reshape(1, self.grid, self.grid, dim).permute(0, 3, 1, 2)
        table = F.interpolate(table, size=(rows, cols), mode="bicubic", align_corners=False)
        return table.permute(0, 2, 3, 1).reshape(1, rows * cols, dim)

    def embed_patches(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, C, H, W) -> (B, N, dim) patch embeddings plus position embeddings,
        N = (H // p) (W // p) in raster order (row by row)."""
        patches: torch.Tensor = self.patch_embed(images)  # (B, dim, H // p, W // p)
        rows, cols = patches.shape[-2:]
        tokens = patches.flatten(2).transpose(1, 2)
        return tokens + self.position_embeddings(rows, cols)

    def _blocks(self, tokens: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            tokens = block(tokens)
        normed: torch.Tensor = self.norm(tokens)
        return normed

    def forward_tokens(
        self, images: torch.Tensor, patch_indices: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Patch tokens, for methods that work on patches (I-JEPA's encoders).

        images: (B, C, H, W). patch_indices: optional LongTensor (B, K) of the patch
        positions to keep (raster order on the (H // p) x (W // p) grid); the position
        embeddings are added before the selection, so a kept token knows where it is, and
        only the kept tokens go through the blocks (they attend to each other only).
        Returns (B, K, dim), or (B, N, dim) for all N patches, after the blocks and the final
        LayerNorm. No CLS token takes part in this sequence.
        """
        tokens = self.embed_patches(images)
        if patch_indices is not None:
            index = patch_indices.unsqueeze(-1).expand(-1, -1, tokens.shape[-1])
            tokens = torch.gather(tokens, 1, index)
        return self._blocks(tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) -> (B, dim): the CLS token (pool "cls") or the mean patch token."""
        if self.pool == "mean":
            return self.forward_tokens(x).mean(dim=1)
        tokens = self.embed_patches(x)
        cls = (self.cls_token + self.cls_pos_embed).expand(len(tokens), -1, -1)
        out: torch.Tensor = self._blocks(torch.cat([cls, tokens], dim=1))[:, 0]
        return out


def init_transformer_weights(module: nn.Module) -> None:
    """Truncated-normal (std 0.02) linear weights, zero biases, unit LayerNorms (DINO's ViT)."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def gather_tokens(tokens: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """tokens (B, N, D), indices (B, K) long -> (B, K, D): each image's tokens at its
    indices."""
    return torch.gather(tokens, 1, indices.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
