"""Transformer building blocks shared by the encoder and the predictor.

Every block can run in two op sets: the fused one (`F.layer_norm`, `F.scaled_dot_product_attention`),
fastest in eager PyTorch and what ONNX/TensorRT want, and a plain one (mean/var LayerNorm,
matmul-softmax-matmul attention) that ExecuTorch's XNNPACK delegate lowers completely.
`set_op_set(model, ...)` switches a whole model; the numbers agree to float rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edge_jepa.models.rope import apply_rope, rotation_matrix


class LayerNorm(nn.LayerNorm):
    decomposed: bool = False

    def forward(self, x: Tensor) -> Tensor:
        if not self.decomposed:
            return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        mean = x.mean(-1, keepdim=True)
        xc = x - mean
        var = (xc * xc).mean(-1, keepdim=True)
        return xc * torch.rsqrt(var + self.eps) * self.weight + self.bias


class Attention(nn.Module):
    """Multi-head self-attention with 3-D RoPE on q and k (fused qkv, as the release)."""

    plain: bool = False

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.register_buffer("rot", rotation_matrix(self.head_dim), persistent=False)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | None = None) -> Tensor:
        """mask: optional bool [N, N], True where query i may attend to key j (e.g. block-causal)."""
        B, N, D = x.shape
        q, k, v = self.qkv(x).split(D, dim=-1)  # 3 x [B, N, D]
        q, k, v = (t.reshape(B, N, self.heads, self.head_dim).transpose(1, 2) for t in (q, k, v))  # [B, h, N, hd]
        q = apply_rope(q, cos, sin, self.rot)
        k = apply_rope(k, cos, sin, self.rot)
        if self.plain:
            attn = (q * self.head_dim**-0.5) @ k.transpose(-2, -1)  # [B, h, N, N]
            if mask is not None:
                attn = attn.masked_fill(~mask, float("-inf"))
            out = attn.softmax(dim=-1) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(out.transpose(1, 2).reshape(B, N, D))

    def forward_cached(self, x: Tensor, cos: Tensor, sin: Tensor, past_k: Tensor | None,
                       past_v: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """New tokens x [B, n, D] attend to each other and to cached keys/values [B, h, P, hd] (stored before
        RoPE, so positions can stay relative to the newest tokens); cos/sin [P + n, hd] cover past and new.
        Returns (out [B, n, D], k, v [B, h, n, hd] of the new tokens, before RoPE)."""
        B, N, D = x.shape
        q, k, v = self.qkv(x).split(D, dim=-1)
        q, k, v = (t.reshape(B, N, self.heads, self.head_dim).transpose(1, 2) for t in (q, k, v))  # [B, h, n, hd]
        keys = k if past_k is None else torch.cat([past_k, k], dim=2)  # [B, h, P + n, hd]
        values = v if past_v is None else torch.cat([past_v, v], dim=2)
        q = apply_rope(q, cos[-N:], sin[-N:], self.rot)
        keys = apply_rope(keys, cos, sin, self.rot)
        if self.plain:
            out = ((q * self.head_dim**-0.5) @ keys.transpose(-2, -1)).softmax(dim=-1) @ values
        else:
            out = F.scaled_dot_product_attention(q, keys, values)
        return self.proj(out.transpose(1, 2).reshape(B, N, D)), k, v


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm ViT block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, qkv_bias: bool, eps: float):
        super().__init__()
        self.norm1 = LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, heads, qkv_bias)
        self.norm2 = LayerNorm(dim, eps=eps)
        self.mlp = MLP(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | None = None) -> Tensor:
        x = x + self.attn(self.norm1(x), cos, sin, mask)
        return x + self.mlp(self.norm2(x))

    def forward_cached(self, x: Tensor, cos: Tensor, sin: Tensor, past_k: Tensor | None,
                       past_v: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """The block on new tokens with cached keys/values of earlier ones (Attention.forward_cached)."""
        a, k, v = self.attn.forward_cached(self.norm1(x), cos, sin, past_k, past_v)
        x = x + a
        return x + self.mlp(self.norm2(x)), k, v


def init_weights(m: nn.Module) -> None:
    """Truncated-normal init as the release (std 0.02) for Linear/Conv2d, zero biases, unit LayerNorms."""
    if isinstance(m, nn.Linear | nn.Conv2d):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def set_op_set(model: nn.Module, *, plain_attention: bool, decomposed_layernorm: bool) -> nn.Module:
    """Choose the op set of every Attention/LayerNorm in `model` (in place; returns `model`)."""
    for m in model.modules():
        if isinstance(m, Attention):
            m.plain = plain_attention
        elif isinstance(m, LayerNorm):
            m.decomposed = decomposed_layernorm
    return model
