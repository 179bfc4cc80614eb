"""Export modules: the three graphs of the surprise step, with RoPE frozen as buffers for one clip layout.

    encode_context: clip [1, 3, Tc, S, S]  -> tokens    [1, Nc, D]
    encode_window:  clip [1, 3, T, S, S]   -> tokens    [1, N, D]
    predict:        context [1, Nc, D]     -> predicted [1, Nt, D]   (context_idx / target_idx fixed)

`surprise_graphs(model, op_set, layout)` builds them on a deep copy of the model (the user's model is never
touched). Two op sets:

- "fused": the model's own blocks (`F.layer_norm`, `F.scaled_dot_product_attention`), for ONNX (LayerNorm
  stays one node: TensorRT fp16 overflows a decomposed LayerNorm after attention) and CoreML.
- "xnnpack": every op in XNNPACK's supported set, so ExecuTorch delegates the whole graph. On top of
  `set_op_set(plain_attention=True, decomposed_layernorm=True)` this needs more rewrites, found with
  `get_delegation_info` (which listed mean.dim, split_with_sizes, expand_copy and select_copy on portable
  kernels): the LayerNorm means run as 4-D means over the two innermost dims (XNNPACK's mean only handles
  that form), q/k/v are slices of the fused projection rather than a split, the attention matmuls are 3-D
  `bmm`s and RoPE's pair rotation a linear (a `@` on 3-/4-D tensors decomposes into `expand_copy`, which
  XNNPACK lacks), and the predictor's target tokens are a broadcast multiply instead of select + expand.
  The tubelet embedding becomes a Linear over flattened patches (same weights, reshaped), so that int8/int4
  weight quantization covers it too. Outputs equal the model's to float rounding (tested).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edge_jepa.models.encoder import LinearTubeletEmbed
from edge_jepa.models.layers import Attention, LayerNorm, set_op_set
from edge_jepa.models.layout import ClipLayout
from edge_jepa.models.rope import grid_tables, index_tables
from edge_jepa.models.vjepa2 import VJEPA2

OP_SETS = ("fused", "xnnpack")


class EncoderGraph(nn.Module):
    """The encoder on a fixed clip shape: clip [1, 3, T, S, S] -> tokens [1, N, D].

    `table_frames`: build the RoPE tables for a longer clip and use their first N rows (tokens are in time,
    row, column order, so they are this clip's tables). The context encoder uses the window's tables this
    way, and the .pte stores one copy (ExecuTorch deduplicates identical constants across methods).
    """

    def __init__(self, encoder: nn.Module, frames: int, size: int, table_frames: int | None = None):
        super().__init__()
        self.encoder = encoder
        gt, gh, gw = encoder.grid((1, 3, frames, size, size))
        self.num_tokens = gt * gh * gw
        table_grid = encoder.grid((1, 3, max(frames, table_frames or frames), size, size))
        cos, sin = grid_tables(table_grid, encoder.cfg.head_dim)
        self.register_buffer("cos", cos)  # [N_table, head_dim]
        self.register_buffer("sin", sin)

    def forward(self, clip: Tensor) -> Tensor:
        cos, sin = self.cos, self.sin
        if cos.shape[0] != self.num_tokens:
            cos, sin = cos[: self.num_tokens], sin[: self.num_tokens]
        return self.encoder.forward_with_rope(clip, cos, sin)


class PredictorGraph(nn.Module):
    """The predictor with fixed indices: context [1, Nc, D] -> predicted [1, Nt, D].

    Equals `Predictor.forward_with_rope` with mask token `mask_index`; the target tokens are built as
    `ones[1, Nt, 1] * mask_token[1, Dp]` (a broadcasting multiply) instead of select + expand, which
    XNNPACK does not lower.
    """

    def __init__(self, predictor: nn.Module, context_idx: Tensor, target_idx: Tensor, grid_hw: tuple[int, int],
                 mask_index: int = 1):
        super().__init__()
        self.predictor = predictor
        self.num_context = int(context_idx.numel())
        self.mask_index = mask_index % predictor.mask_tokens.shape[0]
        idx = torch.cat([context_idx, target_idx])[None]
        cos, sin = index_tables(idx, grid_hw, predictor.cfg.head_dim)  # [1, 1, N, head_dim]
        self.register_buffer("cos", cos[0, 0])  # [N, head_dim]: broadcasts over [B, h, N, hd] and [B*h, N, hd]
        self.register_buffer("sin", sin[0, 0])
        self.register_buffer("ones", torch.ones(1, int(target_idx.numel()), 1))

    def forward(self, context: Tensor) -> Tensor:
        p = self.predictor
        mask = p.mask_tokens[self.mask_index : self.mask_index + 1]  # [1, Dp]
        x = torch.cat([p.embed(context), self.ones * mask], dim=1)  # [1, Nc + Nt, Dp]
        for blk in p.blocks:
            x = blk(x, self.cos, self.sin)
        return p.proj(p.norm(x)[:, self.num_context :])


class XnnpackLayerNorm(nn.Module):
    """LayerNorm over the last dim with both means as 4-D means over dims (2, 3) (XNNPACK's mean form)."""

    def __init__(self, norm: LayerNorm):
        super().__init__()
        self.weight, self.bias, self.eps = norm.weight, norm.bias, norm.eps

    def forward(self, x: Tensor) -> Tensor:
        B, N, D = x.shape
        x4 = x.reshape(B, N, D, 1)
        xc = x4 - x4.mean(dim=(2, 3), keepdim=True)
        var = (xc * xc).mean(dim=(2, 3), keepdim=True)
        return (xc * torch.rsqrt(var + self.eps)).reshape(B, N, D) * self.weight + self.bias


class PairRotation(nn.Module):
    """x @ rot (RoPE's constant pair rotation) as a Linear: a 3-D `@` decomposes into `expand_copy`."""

    def __init__(self, rot: Tensor):
        super().__init__()
        self.register_buffer("weight", rot.t().contiguous(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight)


class XnnpackAttention(nn.Module):
    """`Attention` with sliced q/k/v and 3-D bmm attention (same weights, same numbers)."""

    def __init__(self, attn: Attention):
        super().__init__()
        self.heads, self.head_dim = attn.heads, attn.head_dim
        self.qkv, self.proj = attn.qkv, attn.proj
        self.rotate = PairRotation(attn.rot)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | None = None) -> Tensor:
        if mask is not None:  # Block passes its (window models': absent) mask on; masks are not exported here
            raise ValueError("XnnpackAttention takes no attention mask (frame-causal models export stream_step)")
        B, N, D = x.shape
        h, hd = self.heads, self.head_dim
        qkv = self.qkv(x)  # [B, N, 3D]

        def heads(t: Tensor) -> Tensor:  # [B, N, D] -> [B*h, N, hd]
            return t.reshape(B, N, h, hd).permute(0, 2, 1, 3).reshape(B * h, N, hd)

        q, k, v = heads(qkv[..., :D]), heads(qkv[..., D : 2 * D]), heads(qkv[..., 2 * D :])
        q = (q * cos + self.rotate(q) * sin) * hd**-0.5
        k = k * cos + self.rotate(k) * sin
        attn = torch.bmm(q, k.transpose(1, 2)).softmax(dim=-1)  # [B*h, N, N]
        out = torch.bmm(attn, v).reshape(B, h, N, hd).permute(0, 2, 1, 3).reshape(B, N, D)
        return self.proj(out)


def to_xnnpack_op_set(model: VJEPA2) -> VJEPA2:
    """Swap in the XNNPACK-lowerable modules (in place on `model`, which must be a copy)."""
    set_op_set(model, plain_attention=True, decomposed_layernorm=True)
    model.encoder.patch_embed = LinearTubeletEmbed(model.encoder.patch_embed)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Attention):
                setattr(parent, name, XnnpackAttention(child))
            elif isinstance(child, LayerNorm):
                setattr(parent, name, XnnpackLayerNorm(child))
    return model


def surprise_graphs(model: VJEPA2, op_set: str = "fused", layout: ClipLayout | None = None) -> dict[str, nn.Module]:
    """The three export modules (eval mode, on a deep copy of `model`), keyed by method name."""
    if op_set not in OP_SETS:
        raise ValueError(f"unknown op set {op_set!r}; use one of {OP_SETS}")
    layout = layout or ClipLayout.of(model)
    model = copy.deepcopy(model).float().eval()
    if op_set == "xnnpack":
        to_xnnpack_op_set(model)
    else:
        set_op_set(model, plain_attention=False, decomposed_layernorm=False)
    ctx_idx, tgt_idx = layout.context_idx, layout.target_idx
    graphs = {
        "encode_context": EncoderGraph(model.encoder, layout.context_frames, layout.size, layout.frames),
        "encode_window": EncoderGraph(model.encoder, layout.frames, layout.size),
        "predict": PredictorGraph(model.predictor, ctx_idx, tgt_idx, layout.grid[1:]),
    }
    for g in graphs.values():
        g.eval().requires_grad_(False)
    return graphs
