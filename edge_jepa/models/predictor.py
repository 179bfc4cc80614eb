"""V-JEPA 2 predictor: from the encoder tokens of a context, predict the representation of targets.

    context [B, Nc, D] at flat indices context_idx [B, Nc]
      -> Linear D -> Dp;  targets: a learned mask token [Dp] at each target_idx [B, Nt]
      -> concat [B, Nc + Nt, Dp] -> depth x Block(RoPE at each token's true (t, h, w))
      -> LayerNorm -> last Nt tokens -> Linear Dp -> D -> predictions [B, Nt, D]

The release sorts tokens by position before the blocks; attention is permutation-equivariant, so we
skip the sort (outputs agree to float rounding).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from edge_jepa.models.config import ModelConfig
from edge_jepa.models.layers import Block, LayerNorm
from edge_jepa.models.rope import index_tables


class Predictor(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        p, e = cfg.predictor, cfg.encoder
        self.cfg = p
        self.default_grid = (cfg.clip.size // e.patch_size, cfg.clip.size // e.patch_size)
        self.embed = nn.Linear(e.width, p.width)
        self.mask_tokens = nn.Parameter(torch.zeros(p.num_mask_tokens, p.width))  # [M, Dp]
        self.blocks = nn.ModuleList(
            Block(p.width, p.heads, p.mlp_ratio, p.qkv_bias, p.norm_eps) for _ in range(p.depth)
        )
        self.norm = LayerNorm(p.width, eps=p.norm_eps)
        self.proj = nn.Linear(p.width, e.width)

    def forward(
        self,
        context: Tensor,
        context_idx: Tensor,
        target_idx: Tensor,
        *,
        grid: tuple[int, int] | None = None,
        mask_index: int = 1,
    ) -> Tensor:
        """Predict target tokens [B, Nt, D].

        grid: (H', W') patches per frame of the clip the indices refer to; default: the model's clip size
        (as the release). mask_index: which learned mask token to use (the release uses 1 at inference).
        """
        self._check(context, context_idx, target_idx)
        idx = torch.cat([context_idx, target_idx], dim=1)  # [B, Nc + Nt]
        cos, sin = index_tables(idx, grid or self.default_grid, self.cfg.head_dim)  # [B, 1, N, hd]
        return self.forward_with_rope(context, target_idx.shape[1], cos, sin, mask_index)

    def forward_with_rope(self, context: Tensor, num_targets: int, cos: Tensor, sin: Tensor,
                          mask_index: int = 1) -> Tensor:
        """Same as forward with precomputed RoPE tables for [context, targets] (exporters use buffers)."""
        B, Nc, _ = context.shape
        mask = self.mask_tokens[mask_index % self.mask_tokens.shape[0]]  # [Dp]
        targets = mask.expand(B, num_targets, mask.shape[0])  # [B, Nt, Dp]
        x = torch.cat([self.embed(context), targets], dim=1)  # [B, Nc + Nt, Dp]
        for blk in self.blocks:
            x = blk(x, cos, sin)
        return self.proj(self.norm(x)[:, Nc:])

    def _check(self, context: Tensor, context_idx: Tensor, target_idx: Tensor) -> None:
        width = self.embed.in_features
        if context.dim() != 3 or context.shape[-1] != width:
            raise ValueError(f"predictor context must be [B, Nc, {width}], got {tuple(context.shape)}")
        for name, idx in (("context_idx", context_idx), ("target_idx", target_idx)):
            if idx.dim() != 2 or idx.shape[0] != context.shape[0] or idx.dtype not in (torch.int64, torch.int32):
                raise ValueError(
                    f"{name} must be an integer tensor [B={context.shape[0]}, N], got {tuple(idx.shape)} "
                    f"{idx.dtype}"
                )
        if context_idx.shape[1] != context.shape[1]:
            raise ValueError(
                f"context_idx has {context_idx.shape[1]} indices but context has {context.shape[1]} tokens"
            )
