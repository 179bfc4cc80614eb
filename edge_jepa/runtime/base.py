"""One call on every backend: a preprocessed clip in, encoder tokens and predictor output out.

A Runner runs the *surprise step* of a model on a fixed clip layout:
    clip [B, 3, T, S, S] (normalized)
      -> context encoder on the first `context_frames` frames -> context tokens [B, Nc, D]
      -> window encoder on all T frames                        -> window tokens  [B, N, D]
      -> predictor(context tokens at context_idx)             -> predicted      [B, Nt, D] at target_idx
Backends: eager PyTorch (here), ExecuTorch, ONNX Runtime and CoreML (bundles written by `edge-jepa export`,
opened from their manifest). `edge_jepa.surprise_scores` and the stream loop take any Runner.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor

from edge_jepa.models.config import ModelConfig
from edge_jepa.models.layout import ClipLayout
from edge_jepa.models.vjepa2 import VJEPA2


@dataclass
class StepOutput:
    context_tokens: Tensor  # [B, Nc, D]
    window_tokens: Tensor  # [B, N, D]
    predicted: Tensor  # [B, Nt, D]


class Runner(ABC):
    """Base class: subclasses set the attributes below and implement `_run`."""

    backend: str = "?"
    precision: str = "fp32"
    config: ModelConfig
    max_batch: int | None = None  # None: any batch size

    @property
    def frames(self) -> int:
        return self.config.clip.frames

    @property
    def size(self) -> int:
        return self.config.clip.size

    @property
    def context_frames(self) -> int:
        return self.config.clip.context_frames

    @property
    def fps(self) -> float:
        return self.config.clip.fps

    @property
    def layout(self) -> ClipLayout:
        """Token grid, context and target tokens of this runner's clip."""
        return ClipLayout.of(self.config)

    @property
    def grid(self) -> tuple[int, int, int]:
        return self.layout.grid

    @property
    def num_context_tokens(self) -> int:
        return self.layout.num_context

    @property
    def context_idx(self) -> Tensor:
        return self.layout.context_idx

    @property
    def target_idx(self) -> Tensor:
        return self.layout.target_idx

    @staticmethod
    def open(source: VJEPA2 | Runner | str | os.PathLike, **kwargs) -> Runner:
        """A Runner for a model, a bundle directory (manifest.json) or anything `edge_jepa.load` takes."""
        if isinstance(source, Runner):
            return source
        if isinstance(source, VJEPA2):
            return EagerRunner(source, **kwargs)
        if not isinstance(source, str | os.PathLike):
            raise TypeError(f"model: got {type(source).__name__}, expected a VJEPA2, a Runner, 'default' or the path "
                            "of a model or export bundle")
        from edge_jepa.runtime.manifest import is_bundle, open_bundle

        if is_bundle(source):
            return open_bundle(source, **kwargs)
        from edge_jepa.checkpoints import load

        model = load(source)
        if model.config.kind != "window":
            raise ValueError(f"{source}: a {model.config.kind} model ({model.config.name}); Runner runs window "
                             "models: score it with edge_jepa.SurpriseScorer / surprise_scores, or watch --model")
        return EagerRunner(model, **kwargs)

    def check_clip(self, clip: Tensor) -> None:
        expected = (3, self.frames, self.size, self.size)
        if not isinstance(clip, Tensor) or clip.dim() != 5 or tuple(clip.shape[1:]) != expected:
            got = tuple(clip.shape) if isinstance(clip, Tensor) else type(clip).__name__
            raise ValueError(
                f"{self.backend} runner expects a clip [B, {', '.join(map(str, expected))}] "
                f"(the model's clip: {self.frames} frames of {self.size}x{self.size}), got {got}; "
                "use edge_jepa.preprocess(frames, size)"
            )
        if clip.dtype != torch.float32:
            raise ValueError(f"{self.backend} runner expects a float32 clip, got {clip.dtype}")
        if self.max_batch is not None and clip.shape[0] > self.max_batch:
            raise ValueError(f"{self.backend} runner takes batches of at most {self.max_batch}, got {clip.shape[0]}")

    def run(self, clip: Tensor) -> StepOutput:
        """clip [B, 3, T, S, S] -> StepOutput (see module docstring)."""
        self.check_clip(clip)
        return self._run(clip)

    @abstractmethod
    def _run(self, clip: Tensor) -> StepOutput:
        """The backend's surprise step on a checked clip."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config.name}, {self.backend}/{self.precision}, " \
               f"{self.frames}x{self.size}x{self.size})"


class EagerRunner(Runner):
    """The PyTorch model itself (fp32 or whatever dtype/quantization it carries)."""

    backend = "eager"

    def __init__(self, model: VJEPA2, precision: str = "fp32"):
        self.model = model.eval()
        self.config = model.config
        self.precision = precision

    @torch.inference_mode()
    def _run(self, clip: Tensor) -> StepOutput:
        B = clip.shape[0]
        context = self.model.encoder(clip[:, :, : self.context_frames])
        window = self.model.encoder(clip)
        ctx_idx, tgt_idx = self.context_idx.expand(B, -1), self.target_idx.expand(B, -1)
        predicted = self.model.predictor(context, ctx_idx, tgt_idx)
        return StepOutput(context, window, predicted)
