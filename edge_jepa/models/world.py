"""Frame-causal JEPA world model: per-frame tokens and a block-causal predictor of the next frame.

    frames [B, 3, T, H, W]
      -> each frame alone through the Encoder (one-frame tubelets)        -> z [B, T, N, D]
      -> CausalPredictor
           Linear D -> Dp, + frame-interval embedding (log of the time step)
           depth x Block(relative RoPE at (time in 1/30 s, row, column), sliding block-causal mask:
                         frame t sees frames t - window + 1 .. t)
           LayerNorm -> Linear Dp -> D:  prediction of frame t+1's tokens   [B, T, N, D]
                                         (residual predictors: + LayerNorm(z[t]), the change from frame t)
                     -> Linear Dp -> 1:  log-scale of its Laplace error       [B, T, N]   (detached trunk)

This is V-JEPA 2-AC's predictor layout without actions: one model predicts T-1 targets per clip (every
next frame) instead of one tubelet, and a stream encodes each new frame once and re-runs the predictor over
the cached tokens of the last frames. Times are positions, so one model serves cameras at 10, 15 or 30 fps.
A released window checkpoint can feed this predictor by encoding each frame repeated over its two-frame
tubelet (the way V-JEPA 2-AC encodes frames): `encode_frames` does that when tubelet_size is 2.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edge_jepa.models.config import ModelConfig, get_config
from edge_jepa.models.encoder import Encoder
from edge_jepa.models.layers import Block, LayerNorm, init_weights
from edge_jepa.models.persist import write_model_dir
from edge_jepa.models.rope import rope_tables

TIME_UNIT = 1.0 / 30.0  # predictor time positions count 1/30 s: frame i of a clip at `fps` sits at i * 30 / fps
SCORINGS = ("mean", "max", "nll", "zmax")  # how token errors become one surprise score (see token_surprise)
# The default scoring: the mean over tokens, chosen on validation. On matched pairs `max` has the higher AUROC
# (30 fps 0.798 against 0.769) and `mean` the higher pairwise accuracy (0.814 against 0.800;
# results/world_pico_validation.json); on continuous validation streams (benchmarks/stream_calibration.py, seeds
# 100-109) `max` spikes at every bounce and collision: 84 false events in 10 min of plausible scenes at k = 8
# where `mean` raises 1, detecting 37 of 80 violations (results/stream_calibration_world_30fps.json).
DEFAULT_SCORING = "mean"


def frame_times(num_frames: int, fps: float, device: torch.device | None = None) -> Tensor:
    """Time positions [T] (in TIME_UNITs) of the frames of a clip sampled at `fps`."""
    return torch.arange(num_frames, dtype=torch.float32, device=device) / (fps * TIME_UNIT)


def block_causal_mask(frames: int, tokens_per_frame: int, device: torch.device | None = None,
                      window: int | None = None) -> Tensor:
    """bool [T*N, T*N]: query token of frame i may attend to key tokens of frames j <= i (and i - j < window)."""
    f = torch.arange(frames, device=device).repeat_interleave(tokens_per_frame)  # [T*N]
    allowed = f[None, :] <= f[:, None]
    if window is not None:
        allowed &= f[:, None] - f[None, :] < window
    return allowed


KVCache = list[tuple[Tensor, Tensor]]  # per predictor block: keys, values [B, h, P, hd] of the cached frames


class CausalPredictor(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        p, e = cfg.predictor, cfg.encoder
        self.cfg = p
        self.embed = nn.Linear(e.width, p.width)
        self.step_embed = nn.Linear(1, p.width)  # log(frame interval / TIME_UNIT) -> [Dp]
        self.blocks = nn.ModuleList(
            Block(p.width, p.heads, p.mlp_ratio, p.qkv_bias, p.norm_eps) for _ in range(p.depth)
        )
        self.norm = LayerNorm(p.width, eps=p.norm_eps)
        self.proj = nn.Linear(p.width, e.width)
        self.log_scale = nn.Linear(p.width, 1)
        self.window = cfg.clip.frames  # frames a token attends to: its own and the window - 1 before it

    def forward(self, z: Tensor, times: Tensor, grid_hw: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """z [B, T, N, D] tokens of T frames at time positions `times` [T] -> (next-frame predictions
        [B, T, N, D], log-scales [B, T, N]); output t depends on frames <= t only."""
        B, T, N, _ = z.shape
        gh, gw = grid_hw
        step = (times[1:] - times[:-1]).mean() if T > 1 else times.new_tensor(1.0)
        x = self.embed(z) + self.step_embed(step.clamp(min=1e-3).log().reshape(1, 1).to(z.dtype))  # [B, T, N, Dp]
        x = x.reshape(B, T * N, -1)
        t = times.repeat_interleave(N)  # [T*N]
        hw = torch.arange(N, device=z.device).repeat(T)
        cos, sin = rope_tables(t, hw // gw, hw % gw, self.cfg.head_dim, relative=True)  # [T*N, hd]
        mask = block_causal_mask(T, N, z.device, self.window)
        for blk in self.blocks:
            x = blk(x, cos, sin, mask)
        return self._heads(x.reshape(B, T, N, -1), z)

    def _heads(self, x: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        h = self.norm(x)
        pred = self.proj(h)
        if self.cfg.residual:  # the change from this frame's LayerNorm-ed tokens (an untrained one copies)
            pred = pred + F.layer_norm(z, z.shape[-1:])
        return pred, self.log_scale(h.detach()).squeeze(-1)

    def step(self, z: Tensor, step: float, grid_hw: tuple[int, int],
             cache: KVCache | None = None) -> tuple[Tensor, Tensor, KVCache]:
        """One stream update with a KV cache: the newest frame's tokens z [B, N, D] (frames `step` time units
        apart) attend to the cached keys/values of up to window - 1 earlier frames. Returns the prediction of
        the next frame [B, N, D], its log-scales [B, N], and the cache with this frame added and the oldest
        dropped. Positions are relative to the newest frame, so a stream can run for ever; the result equals
        `forward` over the stream with the sliding block-causal mask (exactly so for a model trained on clips
        longer than its window)."""
        B, N, _ = z.shape
        gh, gw = grid_hw
        past = 0 if not cache else cache[0][0].shape[2] // N
        x = self.embed(z) + self.step_embed(torch.tensor([[math.log(max(step, 1e-3))]], dtype=z.dtype, device=z.device))
        t = (torch.arange(-past, 1, dtype=torch.float32, device=z.device) * step).repeat_interleave(N)
        hw = torch.arange(N, device=z.device).repeat(past + 1)
        cos, sin = rope_tables(t, hw // gw, hw % gw, self.cfg.head_dim, relative=True)  # [(P + 1) N, hd]
        keep = (self.window - 1) * N
        new_cache: KVCache = []
        for i, blk in enumerate(self.blocks):
            pk, pv = cache[i] if cache else (None, None)
            x, k, v = blk.forward_cached(x, cos, sin, pk, pv)
            k, v = (k, v) if pk is None else (torch.cat([pk, k], 2), torch.cat([pv, v], 2))
            new_cache.append((k[:, :, -keep:], v[:, :, -keep:]) if keep else (k[:, :, :0], v[:, :, :0]))
        pred, log_b = self._heads(x, z)
        return pred, log_b, new_cache


class FrameCausalJEPA(nn.Module):
    """Per-frame encoder + block-causal predictor; `config.kind == "frame_causal"`."""

    def __init__(self, config: ModelConfig | str):
        super().__init__()
        self.config = get_config(config) if isinstance(config, str) else config
        if self.config.kind != "frame_causal":
            raise ValueError(f"{self.config.name} is a {self.config.kind!r} model; FrameCausalJEPA needs "
                             "kind='frame_causal'")
        self.encoder = Encoder(self.config.encoder)
        self.predictor = CausalPredictor(self.config)
        self.apply(init_weights)

    @property
    def window(self) -> int:
        """Frames the predictor sees at most (context) + the frame it predicts."""
        return self.config.clip.frames

    def token_grid(self) -> tuple[int, int]:
        s, p = self.config.clip.size, self.config.encoder.patch_size
        return s // p, s // p

    def encode_frames(self, clip: Tensor, encoder: nn.Module | None = None) -> Tensor:
        """clip [B, 3, T, H, W] (normalized) -> per-frame tokens [B, T, N, D], each frame encoded alone."""
        enc = encoder or self.encoder
        B, C, T, H, W = clip.shape
        frames = clip.transpose(1, 2).reshape(B * T, C, 1, H, W)  # [B*T, 3, 1, H, W]
        t = enc.cfg.tubelet_size
        if t > 1:  # a window encoder: repeat the frame over its tubelet (V-JEPA 2-AC)
            frames = frames.expand(-1, -1, t, -1, -1)
        z = enc(frames)  # [B*T, N, D]
        return z.reshape(B, T, *z.shape[1:])

    def predict(self, z: Tensor, fps: float) -> tuple[Tensor, Tensor]:
        """Tokens [B, T, N, D] of frames at `fps` -> predictions of frames 1..T (see CausalPredictor)."""
        return self.predictor(z, frame_times(z.shape[1], fps, z.device), self.token_grid())

    def forward(self, clip: Tensor, fps: float | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """(tokens [B, T, N, D], predictions of frames 1..T [B, T, N, D], log-scales [B, T, N])."""
        z = self.encode_frames(clip)
        pred, log_b = self.predict(z, fps or self.config.clip.fps)
        return z, pred, log_b

    # ----------------------------------------------------------------- bookkeeping
    def num_params(self, part: str = "all") -> int:
        module = {"all": self, "encoder": self.encoder, "predictor": self.predictor}[part]
        return sum(p.numel() for p in module.parameters())

    def flops_per_update(self) -> dict[str, int]:
        """Analytic forward FLOPs (a multiply-add counts 2) of one stream update: encode the new frame, then the
        predictor on its tokens with the KV cache of the previous window - 1 frames ("kv"), or over the cached
        tokens of those frames ("rerun")."""
        e, p = self.config.encoder, self.config.predictor
        gh, gw = self.token_grid()
        n, ctx = gh * gw, gh * gw * (self.window - 1)

        def blocks(tokens: int, d: int, depth: int, mlp_ratio: float, keys: int) -> int:
            per = 2 * tokens * d * 3 * d + 4 * tokens * keys * d + 2 * tokens * d * d  # qkv, q.k and a.v, proj
            return depth * (per + 4 * tokens * d * int(d * mlp_ratio))  # + MLP

        patch = e.in_chans * e.tubelet_size * e.patch_size**2
        enc = 2 * n * patch * e.width + blocks(n, e.width, e.depth, e.mlp_ratio, n)
        io = 4 * e.width * p.width  # embed in, project out, per token
        kv = n * io + blocks(n, p.width, p.depth, p.mlp_ratio, ctx + n)
        rerun = ctx * io + blocks(ctx, p.width, p.depth, p.mlp_ratio, (ctx + n) // 2)  # block-causal: ~half
        return {"encoder": enc, "predictor_kv": kv, "predictor_rerun": rerun, "kv": enc + kv, "rerun": enc + rerun}

    def save(self, path: str | os.PathLike, card: dict | None = None, *, force: bool = False) -> Path:
        """Write the edge-jepa format (as VJEPA2.save); `edge_jepa.load` reads it back as a FrameCausalJEPA."""
        return write_model_dir(self, path, card, force=force)


def token_errors(pred: Tensor, observed: Tensor) -> Tensor:
    """Per-token L1 [..., N] between predicted and observed (LayerNorm-ed) tokens [..., N, D]."""
    obs = torch.nn.functional.layer_norm(observed, observed.shape[-1:])
    return (pred.float() - obs.float()).abs().mean(-1)


def token_surprise(errors: Tensor, log_b: Tensor, scoring: str) -> Tensor:
    """One score per frame from token errors [..., N] and predicted log-scales [..., N].

    mean: V-JEPA's mean L1. max: the most surprising token (a small object's violation is not averaged away
    by a static background). nll: mean Laplace negative log-likelihood (errors relative to the scale the model
    expected: large errors where it knows motion is hard cost less). zmax: the largest scaled error.
    """
    if scoring == "mean":
        return errors.mean(-1)
    if scoring == "max":
        return errors.amax(-1)
    if scoring == "nll":
        return (errors * torch.exp(-log_b) + log_b).mean(-1)
    if scoring == "zmax":
        return (errors * torch.exp(-log_b)).amax(-1)
    raise ValueError(f"unknown scoring {scoring!r}; choose from {', '.join(SCORINGS)}")

