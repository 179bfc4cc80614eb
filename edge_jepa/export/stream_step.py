"""The stream step of a frame-causal model as one fixed-shape export graph (method `stream_step`).

    frame      [1, 3, 1, S, S]          the new frame, normalized (edge_jepa.surprise.frame_to_input)
    k_cache    [L, h, (W-1)*N, hd]      keys of the predictor's L blocks for the W-1 previous frames (before RoPE)
    v_cache    [L, h, (W-1)*N, hd]      their values
    cache_mask [(W-1)*N]                0 for a filled slot, CACHE_MASKED for an empty one (warm-up)
  ->
    tokens     [1, N, D]                the frame's encoder tokens (compare them with the previous prediction)
    predicted  [1, N, D]                prediction of the next frame's (LayerNorm-ed) tokens
    log_scale  [1, N]                   its predicted Laplace log-scales
    k_cache', v_cache', cache_mask'     the caches with the oldest frame dropped and this one appended

Slots hold frames oldest first, the newest last; during warm-up the filled slots are the last ones, so a slot's
time position is always the same: slot j of frame i sits (W-1-i) frame intervals before the new frame. The
predictor's RoPE is relative, so its tables (for those positions at the bundle's fps) and the frame-interval
embedding are constants (buffers). Empty slots are masked by adding CACHE_MASKED (finite, so quantizers and
XNNPACK see ordinary numbers) to their attention logits. The result equals `CausalPredictor.step` (the eager KV
stream step of `FrameCausalScorer(cache="kv")`) to float rounding.

Op sets as in edge_jepa.export.wrappers: "xnnpack" (XnnpackLayerNorm, 3-D bmm attention, RoPE's rotation as a
linear, LinearTubeletEmbed, caches updated by slicing + cat) lowers whole to XNNPACK; "fused" keeps LayerNorm one
op and attention `scaled_dot_product_attention` with an additive mask, for ONNX.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edge_jepa.export.wrappers import OP_SETS, EncoderGraph, PairRotation, to_xnnpack_op_set
from edge_jepa.formats import CACHE_MASKED, STREAM_INPUTS, STREAM_OUTPUTS
from edge_jepa.models.layers import set_op_set
from edge_jepa.models.rope import rope_tables
from edge_jepa.models.world import TIME_UNIT, FrameCausalJEPA

__all__ = ["CACHE_MASKED", "STREAM_INPUTS", "STREAM_OUTPUTS", "StreamStepGraph", "initial_inputs",
           "stream_step_graph"]


class CachedAttention(nn.Module):
    """The new frame's n tokens attend to themselves and the P cached ones: q [h, n, hd], keys [h, P + n, hd]."""

    def __init__(self, attn: nn.Module, plain: bool):
        super().__init__()
        self.heads, self.head_dim, self.plain = attn.heads, attn.head_dim, plain
        self.qkv, self.proj = attn.qkv, attn.proj
        self.rotate = attn.rotate if hasattr(attn, "rotate") else PairRotation(attn.rot)

    def forward(self, x: Tensor, past_k: Tensor, past_v: Tensor, cos: Tensor, sin: Tensor,
                bias: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x [1, n, D]; past_k/past_v [h, P, hd]; cos/sin [P + n, hd]; bias [P + n] (additive).
        Returns (out [1, n, D], k, v [h, n, hd] of the new tokens before RoPE)."""
        _, n, D = x.shape
        h, hd = self.heads, self.head_dim
        qkv = self.qkv(x)  # [1, n, 3D]

        def heads(t: Tensor) -> Tensor:  # [1, n, D] -> [h, n, hd]
            return t.reshape(n, h, hd).permute(1, 0, 2)

        q, k, v = heads(qkv[..., :D]), heads(qkv[..., D : 2 * D]), heads(qkv[..., 2 * D :])
        keys, values = torch.cat([past_k, k], dim=1), torch.cat([past_v, v], dim=1)  # [h, P + n, hd]
        q = q * cos[-n:] + self.rotate(q) * sin[-n:]
        keys = keys * cos + self.rotate(keys) * sin
        if self.plain:
            logits = torch.bmm(q * hd**-0.5, keys.transpose(1, 2)) + bias  # [h, n, P + n]
            out = torch.bmm(logits.softmax(dim=-1), values)  # [h, n, hd]
        else:
            out = F.scaled_dot_product_attention(q[None], keys[None], values[None],  # 4-D for the ONNX exporter
                                                 attn_mask=bias.reshape(1, 1, 1, -1))[0]
        return self.proj(out.permute(1, 0, 2).reshape(1, n, D)), k, v


class StreamStepGraph(nn.Module):
    """One stream update of a FrameCausalJEPA at a fixed fps (module docstring); build with `stream_step_graph`."""

    def __init__(self, model: FrameCausalJEPA, fps: float, plain: bool):
        super().__init__()
        cfg = model.config
        p = model.predictor
        gh, gw = model.token_grid()
        self.num_tokens, self.window, self.plain, self.size = gh * gw, model.window, plain, cfg.clip.size
        self.encoder = EncoderGraph(model.encoder, 1, cfg.clip.size)
        self.predictor = p  # embed, norm, proj, log_scale (the blocks run through `attn` below)
        self.attn = nn.ModuleList(CachedAttention(blk.attn, plain) for blk in p.blocks)
        step = 1.0 / (fps * TIME_UNIT)
        with torch.no_grad():
            step_vec = p.step_embed(torch.tensor([[math.log(max(step, 1e-3))]]))  # [1, Dp], as CausalPredictor.step
        self.register_buffer("step_vec", step_vec)
        n, past = self.num_tokens, self.window - 1
        t = (torch.arange(-past, 1, dtype=torch.float32) * step).repeat_interleave(n)
        hw = torch.arange(n).repeat(past + 1)
        cos, sin = rope_tables(t, hw // gw, hw % gw, p.cfg.head_dim, relative=True)  # [(P + 1) n, hd]
        self.register_buffer("cos", cos)
        self.register_buffer("sin", sin)
        self.register_buffer("new_bias", torch.zeros(n))  # the new frame's own tokens are always visible

    def forward(self, frame: Tensor, k_cache: Tensor, v_cache: Tensor, cache_mask: Tensor):
        p, n = self.predictor, self.num_tokens
        z = self.encoder(frame)  # [1, n, D]
        x = p.embed(z) + self.step_vec  # [1, n, Dp]
        bias = torch.cat([cache_mask, self.new_bias])  # [P + n]
        new_k, new_v = [], []
        L, h, P, hd = k_cache.shape
        for i, (blk, attn) in enumerate(zip(p.blocks, self.attn, strict=True)):
            # slices and reshapes, not select/unsqueeze (XNNPACK lowers the former only)
            past_k, past_v = k_cache[i : i + 1].reshape(h, P, hd), v_cache[i : i + 1].reshape(h, P, hd)
            a, k, v = attn(blk.norm1(x), past_k, past_v, self.cos, self.sin, bias)
            x = x + a
            x = x + blk.mlp(blk.norm2(x))
            # drop the oldest frame, append this one
            new_k.append(torch.cat([past_k[:, n:], k], dim=1).reshape(1, h, P, hd))
            new_v.append(torch.cat([past_v[:, n:], v], dim=1).reshape(1, h, P, hd))
        hidden = p.norm(x)
        predicted = p.proj(hidden)  # [1, n, D]
        if p.cfg.residual:  # the change from this frame's LayerNorm-ed tokens
            predicted = predicted + _normalized(z)
        log_scale = p.log_scale(hidden).reshape(1, n)
        mask_out = torch.cat([cache_mask[n:], self.new_bias])
        return z, predicted, log_scale, torch.cat(new_k, dim=0), torch.cat(new_v, dim=0), mask_out

    # ------------------------------------------------------------------ host-side helpers
    def cache_shape(self) -> tuple[int, int, int, int]:
        c = self.predictor.cfg
        return (c.depth, c.heads, (self.window - 1) * self.num_tokens, c.head_dim)

    def example_inputs(self, frame: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The inputs of a stream's first step (empty caches, every slot masked)."""
        frame = frame if frame is not None else torch.randn(1, 3, 1, self.size, self.size)
        return initial_inputs(frame, self.cache_shape())


def initial_inputs(frame: Tensor, cache_shape: tuple[int, ...]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(frame, zero caches, an all-masked cache_mask): the inputs of a stream's first step."""
    return (frame, torch.zeros(cache_shape), torch.zeros(cache_shape), torch.full((cache_shape[2],), CACHE_MASKED))


def stream_step_graph(model: FrameCausalJEPA, fps: float | None = None, op_set: str = "fused") -> StreamStepGraph:
    """The stream-step graph (eval, no grad) on a deep copy of `model`, at `fps` (default: the model's)."""
    if op_set not in OP_SETS:
        raise ValueError(f"unknown op set {op_set!r}; use one of {OP_SETS}")
    model = copy.deepcopy(model).float().eval()
    if op_set == "xnnpack":
        to_xnnpack_op_set(model)
    else:
        set_op_set(model, plain_attention=False, decomposed_layernorm=False)
    graph = StreamStepGraph(model, float(fps or model.config.clip.fps), plain=op_set == "xnnpack")
    return graph.eval().requires_grad_(False)


def _normalized(z: Tensor, eps: float = 1e-5) -> Tensor:
    """F.layer_norm(z, z.shape[-1:]) (no affine) with both means as 4-D means over dims (2, 3), XNNPACK's form."""
    B, N, D = z.shape
    z4 = z.reshape(B, N, D, 1)
    zc = z4 - z4.mean(dim=(2, 3), keepdim=True)
    return (zc * torch.rsqrt((zc * zc).mean(dim=(2, 3), keepdim=True) + eps)).reshape(B, N, D)
