"""Surprise: how far the observed representation is from what the world model predicted.

For a window of T frames ending at frame f:
    context = encoder(first `context_frames` frames)                 (what the model has seen)
    predicted = predictor(context -> tokens of the last frames)       (what it expects next)
    observed = LayerNorm(encoder(all T frames))[target tokens]         (what happened)
    surprise(f) = mean |predicted - observed| over target tokens       (L1, as in V-JEPA's training loss)
The per-token errors form a map over the frame (a heatmap of *where* the surprise is). A window's surprise
is attributed to its last frame, so scores are causal: a stream knows the score of frame f at frame f.
"""

from __future__ import annotations

import math
import warnings
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from edge_jepa.models.vjepa2 import VJEPA2
from edge_jepa.preprocess import IMAGENET_MEAN, IMAGENET_STD, check_frames, resize_frame
from edge_jepa.runtime.base import Runner, StepOutput

_MEAN = np.asarray(IMAGENET_MEAN, np.float32) * 255.0
_INV_STD = 1.0 / (np.asarray(IMAGENET_STD, np.float32) * 255.0)


@dataclass
class SurpriseResult:
    frame_index: int  # the window's last frame (the frame the score is attributed to)
    score: float  # mean L1 over target tokens
    token_errors: np.ndarray  # [T', H', W'] per-token L1 over the target time steps

    @property
    def heatmap(self) -> np.ndarray:
        """[H', W'] per-patch surprise (mean over the target time steps)."""
        return self.token_errors.mean(axis=0)


def step_errors(out: StepOutput, target_idx: torch.Tensor) -> torch.Tensor:
    """Per-token L1 [B, Nt] between predicted and observed (LayerNorm-ed) target tokens."""
    observed = F.layer_norm(out.window_tokens, out.window_tokens.shape[-1:])[:, target_idx]
    return (out.predicted.float() - observed.float()).abs().mean(-1)


def frame_to_input(frame: np.ndarray, size: int, mode: str) -> np.ndarray:
    """One uint8 RGB frame -> normalized float32 [3, size, size] (the model's preprocessing, one frame)."""
    x = resize_frame(frame, size, mode).astype(np.float32)
    return ((x - _MEAN) * _INV_STD).transpose(2, 0, 1)


class SurpriseScorer:
    """Incremental surprise on a stream: `push` frames (uint8 RGB, any resolution, at the model's fps).

    Every `stride` frames once T frames are buffered, `push` returns a SurpriseResult for the window ending
    at that frame; otherwise None. Frames are preprocessed once on arrival and kept in a ring buffer.
    """

    def __init__(self, model: VJEPA2 | Runner | str, *, stride: int = 1):
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.runner = Runner.open(model)
        self.stride = stride
        clip = self.runner.config.clip
        self.frames_per_window, self.size, self.mode = clip.frames, clip.size, clip.preprocess
        layout = self.runner.layout
        gt, gh, gw = layout.grid
        self.target_shape = (gt - layout.context_grid[0], gh, gw)
        self._target_idx = layout.target_idx
        self.buffer: deque[np.ndarray] = deque(maxlen=self.frames_per_window)
        self.count = 0  # frames pushed since the last reset

    @property
    def fps(self) -> float:
        return self.runner.fps

    def reset(self) -> None:
        self.buffer.clear()
        self.count = 0

    def push(self, frame: np.ndarray) -> SurpriseResult | None:
        self.buffer.append(frame_to_input(_check_frame(frame), self.size, self.mode))
        self.count += 1
        if len(self.buffer) < self.frames_per_window or (self.count - self.frames_per_window) % self.stride:
            return None
        return self.score_buffered(self.count - 1)

    def score_buffered(self, frame_index: int) -> SurpriseResult:
        """Score the window currently in the buffer (must be full)."""
        clip = torch.from_numpy(np.stack(self.buffer, axis=1)[None])  # [1, 3, T, S, S]
        return self.score_clips(clip, [frame_index])[0]

    def score_clips(self, clips: torch.Tensor, frame_indices: Sequence[int]) -> list[SurpriseResult]:
        """Score preprocessed windows [B, 3, T, S, S] (batched when the runner allows)."""
        errors = step_errors(self.runner.run(clips), self._target_idx)  # [B, Nt]
        if not torch.isfinite(errors).all():
            raise FloatingPointError(
                f"the {self.runner.backend} model produced NaN/inf for the window ending at frame "
                f"{frame_indices[0]}; check the input frames and the model ({self.runner})"
            )
        maps = errors.reshape(len(frame_indices), *self.target_shape).numpy()
        return [SurpriseResult(int(i), float(m.mean()), m) for i, m in zip(frame_indices, maps, strict=True)]


def surprise_trace(model: VJEPA2 | Runner | str | SurpriseScorer, frames: np.ndarray | Sequence[np.ndarray], *,
                   stride: int = 1, batch_size: int = 8) -> list[SurpriseResult]:
    """SurpriseResults of every window (ending every `stride` frames) of a whole video, batched."""
    scorer = model if isinstance(model, SurpriseScorer) else SurpriseScorer(model, stride=stride)
    arr = check_frames(frames)
    T = scorer.frames_per_window
    if len(arr) < T:
        warnings.warn(f"{len(arr)} frame(s) are fewer than one window of the model ({T} frames at "
                      f"{scorer.fps:g} fps): nothing was scored (every score is NaN); give at least {T} frames",
                      RuntimeWarning, stacklevel=2)
        return []
    inputs = np.stack([frame_to_input(f, scorer.size, scorer.mode) for f in arr], axis=1)  # [3, F, S, S]
    ends = list(range(T - 1, len(arr), stride))
    limit = scorer.runner.max_batch or batch_size
    results: list[SurpriseResult] = []
    for i in range(0, len(ends), limit):
        chunk = ends[i : i + limit]
        clips = torch.from_numpy(np.stack([inputs[:, e - T + 1 : e + 1] for e in chunk]))
        results += scorer.score_clips(clips, chunk)
    return results


def surprise_scores(model: VJEPA2 | Runner | str, frames: np.ndarray | Sequence[np.ndarray], *,
                    stride: int = 1) -> np.ndarray:
    """Surprise attributed to each frame: float [F], NaN until the first window is complete.

    frames: uint8 RGB [F, H, W, 3] of any resolution, at the model's frame rate (`model.config.clip.fps`).
    With stride > 1, frames between two scored windows carry the latest score.
    """
    arr = check_frames(frames)
    scores = np.full(len(arr), np.nan, dtype=np.float64)
    for r in surprise_trace(model, arr, stride=stride):
        scores[r.frame_index : r.frame_index + stride] = r.score
    return scores


def max_surprise(scores: np.ndarray) -> float:
    valid = scores[np.isfinite(scores)]
    return float(valid.max()) if len(valid) else math.nan


def _check_frame(frame: np.ndarray) -> np.ndarray:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        desc = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise ValueError(f"expected a uint8 RGB frame [H, W, 3], got {desc}"
                         + (" (grey-scale: convert to RGB)" if isinstance(frame, np.ndarray) and frame.ndim == 2
                            else ""))
    return frame
