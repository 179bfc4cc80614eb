"""VJEPA2: encoder + predictor + the config that rebuilds and uses them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from edge_jepa.models.config import ModelConfig, get_config
from edge_jepa.models.encoder import Encoder
from edge_jepa.models.layers import init_weights
from edge_jepa.models.layout import ClipLayout
from edge_jepa.models.persist import CONFIG_FILE, FORMAT_VERSION, WEIGHTS_FILE, write_model_dir  # noqa: F401
from edge_jepa.models.predictor import Predictor


@dataclass(frozen=True)
class FlopCount:
    """Forward FLOPs (a multiply-add counts 2) of one surprise step on a clip."""

    context_encoder: int  # encoder on the context frames
    window_encoder: int  # encoder on the whole window (the target representation)
    predictor: int  # context tokens -> target tokens

    @property
    def total(self) -> int:
        return self.context_encoder + self.window_encoder + self.predictor


class VJEPA2(nn.Module):
    def __init__(self, config: ModelConfig | str):
        super().__init__()
        self.config = get_config(config) if isinstance(config, str) else config
        self.encoder = Encoder(self.config.encoder)
        self.predictor = Predictor(self.config)
        self.apply(_init_weights)

    # ----------------------------------------------------------------- clip layout
    def layout(self, frames: int | None = None, size: int | None = None,
               context_frames: int | None = None) -> ClipLayout:
        """Token grid, context and target tokens of a clip (defaults: the model's clip; without
        `context_frames` the context keeps the model's share of the clip, on whole tubelets)."""
        c, e = self.config.clip, self.config.encoder
        self.token_grid(frames, size)  # the encoder's own check: whole tubelets and patches
        layout = ClipLayout(frames or c.frames, _square(size) if size is not None else c.size,
                            self._context_frames(frames, context_frames), e.tubelet_size, e.patch_size, e.width)
        ct, gt = layout.context_grid[0], layout.grid[0]
        if not 0 < ct < gt:
            raise ValueError(f"context of {ct} tubelets does not fit a clip of {gt} tubelets")
        return layout

    def token_grid(self, frames: int | None = None, size: int | None = None) -> tuple[int, int, int]:
        c, e = self.config.clip, self.config.encoder
        s = _square(size) if size is not None else c.size
        return self.encoder.grid((1, e.in_chans, frames or c.frames, s, s))

    def surprise_indices(self, frames: int | None = None, size: int | None = None,
                         context_frames: int | None = None) -> tuple[Tensor, Tensor]:
        """Flat token indices [Nc], [Nt] of the context frames and the target (future) frames of a clip."""
        layout = self.layout(frames, size, context_frames)
        return layout.context_idx, layout.target_idx

    def at_clip(self, frames: int | None = None, size: int | None = None, context_frames: int | None = None,
                **clip: Any) -> VJEPA2:
        """These weights at another clip (like nanoGPT's `crop_block_size`, for video).

        A new model whose config.clip has the given frames / size / context_frames (default: the model's context
        share) and any other ClipConfig field (fps=, preprocess=), with this model's weights: RoPE has no
        learned positions, so any clip on whole tubelets and patches works. Returns `self` when nothing changes
        and keeps the device (a meta-device model stays weightless), dtype, train/eval mode and requires_grad.
        Raises ValueError when the clip does not fit the model.
        """
        c = self.config.clip
        frames, size = frames or c.frames, size or c.size
        try:
            fields = {"frames": frames, "size": size, "context_frames": self._context_frames(frames, context_frames),
                      **clip}
            config = self.config.replace(clip=fields)
        except ValueError as e:
            raise ValueError(f"clip {frames} frames x {size} px does not fit {self.config.name}: {e}") from None
        if config == self.config:
            return self
        param = next(self.parameters())
        with torch.device(param.device):
            model = VJEPA2(config)
        if param.device.type != "meta":
            model.load_state_dict(self.state_dict())
        return model.to(param.dtype).train(self.training).requires_grad_(param.requires_grad)

    def _context_frames(self, frames: int | None = None, context_frames: int | None = None) -> int:
        """Context frames for a clip of `frames`: given, or the model's context share, on whole tubelets."""
        c, t = self.config.clip, self.config.encoder.tubelet_size
        if context_frames:
            return context_frames
        if not frames or frames == c.frames:
            return c.context_frames
        return max(t, min(frames - t, round(frames * c.context_frames / c.frames / t) * t))

    # ----------------------------------------------------------------- bookkeeping
    def num_params(self, part: str = "all") -> int:
        """Parameter count of "all", "encoder" or "predictor"."""
        module = {"all": self, "encoder": self.encoder, "predictor": self.predictor}[part]
        return sum(p.numel() for p in module.parameters())

    def flops(self, frames: int | None = None, size: int | None = None) -> FlopCount:
        """Analytic forward FLOPs of the surprise step on a clip (defaults: the model's clip)."""
        e, p = self.config.encoder, self.config.predictor
        layout = self.layout(frames, size)
        n_ctx, n_all = layout.num_context, layout.num_tokens
        patch = e.in_chans * e.tubelet_size * e.patch_size**2

        def vit(n: int, d: int, depth: int, mlp_ratio: float, head_dim: int) -> int:
            per_block = 2 * n * d * 3 * d + 4 * n * n * d + 2 * n * d * d + 4 * n * d * int(d * mlp_ratio)
            per_block += 2 * 2 * n * d * head_dim  # RoPE pair rotation (q and k)
            return depth * per_block

        def encoder(n: int) -> int:
            return 2 * n * patch * e.width + vit(n, e.width, e.depth, e.mlp_ratio, e.head_dim)

        pred = 2 * n_ctx * e.width * p.width + vit(n_all, p.width, p.depth, p.mlp_ratio, p.head_dim)
        pred += 2 * (n_all - n_ctx) * p.width * e.width
        return FlopCount(encoder(n_ctx), encoder(n_all), pred)

    # ----------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike, card: dict | None = None, *, force: bool = False) -> Path:
        """Write the edge-jepa format: `model.safetensors` + `edge_jepa.json` (config [+ card]), atomically.

        An existing `path` is replaced only if it is an edge-jepa model or bundle (or empty), else
        OutputError; `force` replaces it anyway."""
        return write_model_dir(self, path, card, force=force)


def build(config: ModelConfig | str) -> nn.Module:
    """A fresh model of a config's kind: VJEPA2 ("window") or FrameCausalJEPA ("frame_causal")."""
    from edge_jepa.models.world import FrameCausalJEPA

    cfg = get_config(config) if isinstance(config, str) else config
    return FrameCausalJEPA(cfg) if cfg.kind == "frame_causal" else VJEPA2(cfg)


def create(config: ModelConfig | str, *, seed: int | None = 0) -> nn.Module:
    """A freshly initialised model of a registered size (or a ModelConfig), seeded for reproducibility: a VJEPA2,
    or a FrameCausalJEPA for a config of kind "frame_causal" (edge_jepa.models.world)."""
    if seed is None:
        return build(config)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build(config)


def save(model: VJEPA2, path: str | os.PathLike, card: dict | None = None) -> Path:
    """`model.save(path, card)`: the edge-jepa format, written atomically; `edge_jepa.load(path)` reads it."""
    return model.save(path, card)


def _square(size: int | tuple[int, int]) -> int:
    """A clip's frame size: an int, or an (h, w) pair with h == w (clips are square)."""
    if isinstance(size, int):
        return size
    h, w = (int(v) for v in size)
    if h != w:
        raise ValueError(f"clips are square (size x size), got {h}x{w}")
    return h


def _init_weights(m: nn.Module) -> None:
    """Truncated-normal init as the release (std 0.02), zero biases, unit LayerNorms, mask tokens like weights."""
    init_weights(m)
    if isinstance(m, Predictor):
        nn.init.trunc_normal_(m.mask_tokens, std=0.02)
