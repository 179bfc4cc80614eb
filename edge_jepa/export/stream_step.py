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

Two graphs of the same step. "fused" (`StreamStepGraph`, for ONNX and CoreML): LayerNorm one op, attention
`scaled_dot_product_attention` with an additive mask. "xnnpack" (`XnnpackStreamStep`, for ExecuTorch) lowers whole
to XNNPACK with few ops: one frame's tokens stay 2-D [n, D] (no batch dimension, so no reshapes around each Linear);
LayerNorm's means are matmuls with a constant 1/D column (XNNPACK's only mean is a 4-D pool, whose layout change
costs transposes); q and k of all heads get RoPE in one go; the cached keys of all blocks are rotated and transposed
for the attention matmul in one go; the caches are updated with one slice and one concatenation each. Same weights,
same state-dict keys, the same numbers to float rounding (tested). Its time is mostly the int8 Linears, the fp32
attention over the cache and, between other work, cold CPU caches, not its op count (docs/world-model.md, "Stream
step and cost").
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edge_jepa.export.wrappers import OP_SETS, EncoderGraph, PairRotation
from edge_jepa.formats import CACHE_MASKED, STREAM_INPUTS, STREAM_OUTPUTS
from edge_jepa.models.layers import Attention, Block, LayerNorm, set_op_set
from edge_jepa.models.rope import grid_tables, rope_tables
from edge_jepa.models.world import TIME_UNIT, FrameCausalJEPA

__all__ = ["CACHE_MASKED", "STREAM_INPUTS", "STREAM_OUTPUTS", "StreamStepGraph", "XnnpackStreamStep",
           "initial_inputs", "stream_step_graph"]


class StreamStepBase(nn.Module):
    """What both graphs share: the shapes, the step embedding and the predictor's RoPE tables as constants."""

    def __init__(self, model: FrameCausalJEPA, fps: float):
        super().__init__()
        cfg, p = model.config, model.predictor
        gh, gw = model.token_grid()
        self.num_tokens, self.window, self.size = gh * gw, model.window, cfg.clip.size
        self.predictor = p  # embed, norm, proj, log_scale (the blocks run through the subclass's own modules)
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

    def cache_shape(self) -> tuple[int, int, int, int]:
        c = self.predictor.cfg
        return (c.depth, c.heads, (self.window - 1) * self.num_tokens, c.head_dim)

    def example_inputs(self, frame: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The inputs of a stream's first step (empty caches, every slot masked)."""
        frame = frame if frame is not None else torch.randn(1, 3, 1, self.size, self.size)
        return initial_inputs(frame, self.cache_shape())


class CachedAttention(nn.Module):
    """The new frame's n tokens attend to themselves and the P cached ones: q [h, n, hd], keys [h, P + n, hd]."""

    def __init__(self, attn: Attention):
        super().__init__()
        self.heads, self.head_dim = attn.heads, attn.head_dim
        self.qkv, self.proj = attn.qkv, attn.proj
        self.rotate = PairRotation(attn.rot)

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
        out = F.scaled_dot_product_attention(q[None], keys[None], values[None],  # 4-D for the ONNX exporter
                                             attn_mask=bias.reshape(1, 1, 1, -1))[0]
        return self.proj(out.permute(1, 0, 2).reshape(1, n, D)), k, v


class StreamStepGraph(StreamStepBase):
    """One stream update of a FrameCausalJEPA at a fixed fps, "fused" op set (module docstring); build with
    `stream_step_graph`."""

    def __init__(self, model: FrameCausalJEPA, fps: float):
        super().__init__(model, fps)
        self.encoder = EncoderGraph(model.encoder, 1, model.config.clip.size)
        self.attn = nn.ModuleList(CachedAttention(blk.attn) for blk in self.predictor.blocks)

    def forward(self, frame: Tensor, k_cache: Tensor, v_cache: Tensor, cache_mask: Tensor):
        p, n = self.predictor, self.num_tokens
        z = self.encoder(frame)  # [1, n, D]
        x = p.embed(z) + self.step_vec  # [1, n, Dp]
        bias = torch.cat([cache_mask, self.new_bias])  # [P + n]
        new_k, new_v = [], []
        L, h, P, hd = k_cache.shape
        for i, (blk, attn) in enumerate(zip(p.blocks, self.attn, strict=True)):
            # slices and reshapes, not select/unsqueeze (delegates lower the former more widely)
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


# ------------------------------------------------------------------------------------------- "xnnpack"


class TokenLayerNorm(nn.Module):
    """LayerNorm of tokens [n, D] (over D), both means as a matmul with a constant [D, 1] column of 1/D: an
    XNNPACK fully-connected op on the tokens as they are. `affine=False`: F.layer_norm without weight and bias."""

    def __init__(self, dim: int, eps: float, norm: LayerNorm | None = None):
        super().__init__()
        self.eps, self.norm = eps, norm  # norm: its weight and bias, the model's own parameters
        self.register_buffer("avg", torch.full((dim, 1), 1.0 / dim), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        xc = x - x @ self.avg  # [n, D] - [n, 1]
        y = xc * torch.rsqrt((xc * xc) @ self.avg + self.eps)
        return y if self.norm is None else y * self.norm.weight + self.norm.bias


class TokenBlock(nn.Module):
    """A pre-norm `Block` on one frame's tokens x [n, D], optionally attending to cached keys/values too.

    `cos`/`sin` [n, hd]: the RoPE tables of the n tokens. forward(x, past_kt, past_v, bias): past_kt [h, hd, P]
    (cached keys, rotated and transposed), past_v [h, P, hd], bias [P + n] (additive). Returns (x [n, D], the new
    tokens' keys before RoPE and values, both [h, n, hd])."""

    def __init__(self, blk: Block, cos: Tensor, sin: Tensor):
        super().__init__()
        attn = blk.attn
        self.heads, self.head_dim = attn.heads, attn.head_dim
        D = attn.qkv.in_features
        self.norm1 = TokenLayerNorm(D, blk.norm1.eps, blk.norm1)
        self.norm2 = TokenLayerNorm(D, blk.norm2.eps, blk.norm2)
        self.qkv, self.proj, self.mlp = attn.qkv, attn.proj, blk.mlp
        self.rotate = PairRotation(attn.rot)
        self.register_buffer("cos", cos.clone())  # [n, hd], broadcast over the heads of q and k
        self.register_buffer("sin", sin.clone())

    def forward(self, x: Tensor, past_kt: Tensor | None = None, past_v: Tensor | None = None,
                bias: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        n, D = x.shape
        h, hd = self.heads, self.head_dim
        y = self.qkv(self.norm1(x)).reshape(n, 3 * h, hd).transpose(0, 1)  # [3h, n, hd]: q, k, v heads
        qk = y[: 2 * h]
        qk = qk * self.cos + self.rotate(qk) * self.sin  # RoPE'd q and k [2h, n, hd]
        q, kt, k, v = qk[:h] * hd**-0.5, qk[h:].transpose(1, 2), y[h : 2 * h], y[2 * h :]
        keys_t = kt if past_kt is None else torch.cat([past_kt, kt], dim=2)  # [h, hd, P + n]
        values = v if past_v is None else torch.cat([past_v, v], dim=1)  # [h, P + n, hd]
        logits = torch.bmm(q, keys_t)  # [h, n, P + n]
        if bias is not None:
            logits = logits + bias
        out = torch.bmm(logits.softmax(dim=-1), values).transpose(0, 1).reshape(n, D)  # [n, D]
        x = x + self.proj(out)
        return x + self.mlp(self.norm2(x)), k, v


class TokenPatchEmbed(nn.Module):
    """The tubelet embedding of one frame [1, 3, 1, S, S] -> tokens [n, D] (row, column order): one transpose to
    flattened patches, then the Conv2d's weights as a Linear (kernel == stride: the same numbers)."""

    def __init__(self, encoder: nn.Module, size: int):
        super().__init__()
        encoder.grid((1, 3, 1, size, size))  # the one-frame tubelet check, with its error message
        conv: nn.Conv2d = encoder.patch_embed.proj
        self.p, self.g, self.c = encoder.cfg.patch_size, size // encoder.cfg.patch_size, encoder.cfg.in_chans
        self.proj = nn.Linear(conv.in_channels * self.p * self.p, conv.out_channels)
        with torch.no_grad():
            self.proj.weight.copy_(conv.weight.reshape(conv.out_channels, -1))
            self.proj.bias.copy_(conv.bias)

    def forward(self, frame: Tensor) -> Tensor:
        c, g, p = self.c, self.g, self.p
        x = frame.reshape(c, g, p, g, p).permute(1, 3, 0, 2, 4).reshape(g * g, c * p * p)  # [n, c*p*p]
        return self.proj(x)


class XnnpackStreamStep(StreamStepBase):
    """One stream update of a FrameCausalJEPA at a fixed fps, "xnnpack" op set (module docstring): the same inputs,
    outputs and numbers as `StreamStepGraph`; build with `stream_step_graph(model, fps, "xnnpack")`."""

    def __init__(self, model: FrameCausalJEPA, fps: float):
        super().__init__(model, fps)
        enc, P = model.encoder, self.cache_shape()[2]
        gh, gw = model.token_grid()
        self.encoder = enc  # its norm's parameters; the blocks run through TokenBlocks
        self.patch_embed = TokenPatchEmbed(enc, self.size)
        ecos, esin = grid_tables((1, gh, gw), enc.cfg.head_dim)  # [n, hd]
        self.encoder_blocks = nn.ModuleList(TokenBlock(blk, ecos, esin) for blk in enc.blocks)
        self.encoder_norm = TokenLayerNorm(enc.cfg.width, enc.norm.eps, enc.norm)
        p = self.predictor
        self.blocks = nn.ModuleList(TokenBlock(blk, self.cos[P:], self.sin[P:]) for blk in p.blocks)
        self.rotate = PairRotation(p.blocks[0].attn.rot)
        self.norm = TokenLayerNorm(p.cfg.width, p.norm.eps, p.norm)
        self.token_norm = TokenLayerNorm(enc.cfg.width, 1e-5)  # F.layer_norm(z) of a residual predictor

    def forward(self, frame: Tensor, k_cache: Tensor, v_cache: Tensor, cache_mask: Tensor):
        p, n = self.predictor, self.num_tokens
        L, h, P, hd = k_cache.shape
        z = self.patch_embed(frame)  # [n, D]
        for blk in self.encoder_blocks:
            z, _, _ = blk(z)
        z = self.encoder_norm(z)
        # every block's cached keys at once: RoPE at their slots' positions, transposed for q @ k^T
        past = k_cache * self.cos[:P] + self.rotate(k_cache) * self.sin[:P]  # [L, h, P, hd]
        past_kt = past.transpose(2, 3).reshape(L * h, hd, P)
        past_v = v_cache.reshape(L * h, P, hd)
        bias = torch.cat([cache_mask, self.new_bias])  # [P + n]
        x = p.embed(z) + self.step_vec  # [n, Dp]
        new_k, new_v = [], []
        for i, blk in enumerate(self.blocks):
            x, k, v = blk(x, past_kt[i * h : (i + 1) * h], past_v[i * h : (i + 1) * h], bias)
            new_k.append(k)
            new_v.append(v)
        hidden = self.norm(x)
        predicted = p.proj(hidden)  # [n, D]
        if p.cfg.residual:  # the change from this frame's LayerNorm-ed tokens
            predicted = predicted + self.token_norm(z)
        log_scale = p.log_scale(hidden).reshape(1, n)
        # drop the oldest frame, append this one: [L, h, P - n, hd] + [L, h, n, hd]
        k_out = torch.cat([k_cache[:, :, n:], torch.cat(new_k).reshape(L, h, n, hd)], dim=2)
        v_out = torch.cat([v_cache[:, :, n:], torch.cat(new_v).reshape(L, h, n, hd)], dim=2)
        mask_out = torch.cat([cache_mask[n:], self.new_bias])
        return z.reshape(1, n, -1), predicted.reshape(1, n, -1), log_scale, k_out, v_out, mask_out


def initial_inputs(frame: Tensor, cache_shape: tuple[int, ...]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(frame, zero caches, an all-masked cache_mask): the inputs of a stream's first step."""
    return (frame, torch.zeros(cache_shape), torch.zeros(cache_shape), torch.full((cache_shape[2],), CACHE_MASKED))


def stream_step_graph(model: FrameCausalJEPA, fps: float | None = None,
                      op_set: str = "fused") -> StreamStepGraph | XnnpackStreamStep:
    """The stream-step graph (eval, no grad) on a deep copy of `model`, at `fps` (default: the model's)."""
    if op_set not in OP_SETS:
        raise ValueError(f"unknown op set {op_set!r}; use one of {OP_SETS}")
    model = copy.deepcopy(model).float().eval()
    set_op_set(model, plain_attention=False, decomposed_layernorm=False)
    fps = float(fps or model.config.clip.fps)
    graph = XnnpackStreamStep(model, fps) if op_set == "xnnpack" else StreamStepGraph(model, fps)
    return graph.eval().requires_grad_(False)


def _normalized(z: Tensor, eps: float = 1e-5) -> Tensor:
    """F.layer_norm(z, z.shape[-1:]) (no affine) with both means as 4-D means over dims (2, 3), XNNPACK's form."""
    B, N, D = z.shape
    z4 = z.reshape(B, N, D, 1)
    zc = z4 - z4.mean(dim=(2, 3), keepdim=True)
    return (zc * torch.rsqrt((zc * zc).mean(dim=(2, 3), keepdim=True) + eps)).reshape(B, N, D)
