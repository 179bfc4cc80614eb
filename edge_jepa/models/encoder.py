"""V-JEPA 2 video encoder: tubelet patch embedding -> pre-norm ViT blocks with 3-D RoPE -> LayerNorm.

    clip [B, 3, T, H, W]
      -> tubelets of 2x16x16 -> tokens [B, N, D],  N = (T/2)(H/16)(W/16), order: time, row, column
      -> depth x Block(RoPE at each token's (t, h, w) on the clip's own grid)
      -> LayerNorm -> tokens [B, N, D]
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from edge_jepa.models.config import EncoderConfig
from edge_jepa.models.layers import Block, LayerNorm
from edge_jepa.models.rope import grid_positions, grid_tables, rope_tables


class TubeletEmbed(nn.Module):
    """The release's Conv3d(3, D, kernel=stride=(t, p, p)) written as a Conv2d over tubelets.

    Kernel == stride, so each tubelet is an independent dot product: fold its t frames into channels
    (frame-major: channel = frame * C + c) and run a 2-D convolution. Same weights, reshaped (see
    `conv3d_to_conv2d_weight`); every tensor stays <= 5-D, which ExecuTorch and XNNPACK need.
    """

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.t, self.p, self.c = cfg.tubelet_size, cfg.patch_size, cfg.in_chans
        self.proj = nn.Conv2d(self.c * self.t, cfg.width, kernel_size=self.p, stride=self.p)

    def forward(self, clip: Tensor) -> Tensor:
        B, C, T, H, W = clip.shape
        x = clip.transpose(1, 2).reshape(B * (T // self.t), self.t * C, H, W)  # [B*T', t*C, H, W]
        x = self.proj(x)  # [B*T', D, H', W']
        D = x.shape[1]
        x = x.reshape(B, T // self.t, D, -1).transpose(2, 3)  # [B, T', H'W', D]
        return x.reshape(B, -1, D)  # [B, N, D]


def conv3d_to_conv2d_weight(w: Tensor) -> Tensor:
    """[D, C, t, p, p] (release Conv3d) -> [D, t*C, p, p] (frame-major folded Conv2d)."""
    D, C, t, p, q = w.shape
    return w.permute(0, 2, 1, 3, 4).reshape(D, t * C, p, q)


def conv2d_to_conv3d_weight(w: Tensor, tubelet: int) -> Tensor:
    """Inverse of `conv3d_to_conv2d_weight`."""
    D, tc, p, q = w.shape
    return w.reshape(D, tubelet, tc // tubelet, p, q).permute(0, 2, 1, 3, 4).contiguous()


class LinearTubeletEmbed(nn.Module):
    """The tubelet Conv2d as a Linear over flattened patches (kernel == stride: same numbers, <= 5-D).

    Used where only Linears are handled: torchao quantization (edge_jepa.quantize) and XNNPACK export.
    """

    def __init__(self, embed: nn.Module):
        super().__init__()
        self.t, self.p = embed.t, embed.p
        conv: nn.Conv2d = embed.proj
        self.proj = nn.Linear(conv.in_channels * self.p * self.p, conv.out_channels)
        with torch.no_grad():
            self.proj.weight.copy_(conv.weight.reshape(conv.out_channels, -1))
            self.proj.bias.copy_(conv.bias)

    def forward(self, clip: Tensor) -> Tensor:
        B, C, T, H, W = clip.shape
        t, p = self.t, self.p
        gt, gh, gw = T // t, H // p, W // p
        x = clip.transpose(1, 2).reshape(B * gt * t * C, gh, p, gw, p)  # frame-major channels, as the conv
        x = x.permute(0, 1, 3, 2, 4).reshape(B * gt, t * C, gh * gw, p * p)
        x = x.permute(0, 2, 1, 3).reshape(B * gt * gh * gw, t * C * p * p)  # [tokens, patch]
        return self.proj(x).reshape(B, gt * gh * gw, -1)


class Encoder(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = TubeletEmbed(cfg)
        self.blocks = nn.ModuleList(
            Block(cfg.width, cfg.heads, cfg.mlp_ratio, cfg.qkv_bias, cfg.norm_eps) for _ in range(cfg.depth)
        )
        self.norm = LayerNorm(cfg.width, eps=cfg.norm_eps)

    def grid(self, clip_shape: torch.Size | tuple[int, ...]) -> tuple[int, int, int]:
        """Token grid (T', H', W') of a clip shape [B, 3, T, H, W]; a clear error if it does not fit."""
        c = self.cfg
        if len(clip_shape) != 5 or clip_shape[1] != c.in_chans:
            raise ValueError(
                f"encoder expects a clip [B, {c.in_chans}, T, H, W], got shape {tuple(clip_shape)}"
                + (" (channels last? permute to [B, 3, T, H, W])" if len(clip_shape) == 5 else "")
            )
        _, _, T, H, W = clip_shape
        if T % c.tubelet_size or H % c.patch_size or W % c.patch_size or T == 0 or H == 0 or W == 0:
            raise ValueError(
                f"clip shape {tuple(clip_shape)}: T must be a positive multiple of {c.tubelet_size} and H, W "
                f"positive multiples of {c.patch_size} (use edge_jepa.preprocess to resize and crop)"
            )
        return T // c.tubelet_size, H // c.patch_size, W // c.patch_size

    def rope(self, grid: tuple[int, int, int], device: torch.device | None = None) -> tuple[Tensor, Tensor]:
        return grid_tables(grid, self.cfg.head_dim, device)

    def forward(self, clip: Tensor, keep: Tensor | None = None) -> Tensor:
        """clip [B, 3, T, H, W] (normalized) -> tokens [B, N, D].

        keep: flat token indices [K] to encode alone (a masked context, as in training) -> [B, K, D].
        """
        grid = self.grid(clip.shape)
        if keep is None:
            cos, sin = self.rope(grid, clip.device)
            return self.forward_with_rope(clip, cos, sin)
        cos, sin = rope_tables(*grid_positions(keep, grid[1:]), self.cfg.head_dim)
        return self.forward_with_rope(clip, cos, sin, keep)

    def forward_with_rope(self, clip: Tensor, cos: Tensor, sin: Tensor, keep: Tensor | None = None) -> Tensor:
        """Same as forward with precomputed RoPE tables [N, head_dim] (exporters store them as buffers)."""
        x = self.patch_embed(clip)
        if keep is not None:
            x = x[:, keep]
        for blk in self.blocks:
            x = blk(x, cos, sin)
        return self.norm(x)
