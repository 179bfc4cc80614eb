"""The clip layout of the surprise step: token grid, context and target tokens (one home for all of them).

    clip [B, 3, T, S, S] -> tokens on a grid (gt, gh, gw) = (T / tubelet, S / patch, S / patch), in time,
    row, column order. The first `context_frames` make the context tokens [0, Nc); the rest are the
    targets [Nc, N) the predictor guesses.

The model (`VJEPA2.layout`), every runner (`Runner.layout`), the exporters (input/output shapes of the three
graphs) and the benchmark (token counts) read it from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor

    from edge_jepa.models.config import ModelConfig


@dataclass(frozen=True)
class ClipLayout:
    """The fixed clip layout of a model's ClipConfig (a bundle is exported for one)."""

    frames: int
    size: int
    context_frames: int
    tubelet: int
    patch: int
    width: int  # encoder token dim D

    @classmethod
    def of(cls, model_or_config: ModelConfig | object) -> ClipLayout:
        """The layout of a ModelConfig (or of anything with a `.config`: a model, a runner)."""
        config = getattr(model_or_config, "config", model_or_config)
        c, e = config.clip, config.encoder
        return cls(c.frames, c.size, c.context_frames, e.tubelet_size, e.patch_size, e.width)

    @property
    def grid(self) -> tuple[int, int, int]:
        return self.frames // self.tubelet, self.size // self.patch, self.size // self.patch

    @property
    def context_grid(self) -> tuple[int, int, int]:
        return self.context_frames // self.tubelet, self.size // self.patch, self.size // self.patch

    @property
    def num_tokens(self) -> int:
        gt, gh, gw = self.grid
        return gt * gh * gw

    @property
    def num_context(self) -> int:
        gt, gh, gw = self.context_grid
        return gt * gh * gw

    @property
    def num_targets(self) -> int:
        return self.num_tokens - self.num_context

    @property
    def context_idx(self) -> Tensor:
        """Flat indices [Nc] of the context tokens."""
        import torch

        return torch.arange(self.num_context)

    @property
    def target_idx(self) -> Tensor:
        """Flat indices [Nt] of the target tokens."""
        import torch

        return torch.arange(self.num_context, self.num_tokens)

    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Input shape of each method of the surprise step (batch 1)."""
        return {
            "encode_context": (1, 3, self.context_frames, self.size, self.size),
            "encode_window": (1, 3, self.frames, self.size, self.size),
            "predict": (1, self.num_context, self.width),
        }

    def output_shapes(self) -> dict[str, tuple[int, ...]]:
        """Output shape of each method of the surprise step (batch 1)."""
        return {
            "encode_context": (1, self.num_context, self.width),
            "encode_window": (1, self.num_tokens, self.width),
            "predict": (1, self.num_targets, self.width),
        }

    def example_inputs(self, seed: int = 0) -> dict[str, tuple[Tensor]]:
        """Random inputs of the right shapes (for tracing only; calibration uses real clips)."""
        import torch

        g = torch.Generator().manual_seed(seed)
        return {k: (torch.randn(*s, generator=g),) for k, s in self.input_shapes().items()}
