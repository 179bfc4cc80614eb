"""The held-out check of `fit`: how a model does on footage it was never trained on.

For each held-out slice (the tail of a video, `edge_jepa.train.data.HeldOut`) every frame with a full window
before it is scored the way `watch` scores it:
    prediction loss = mean over scored frames and tokens of |predicted - observed| (L1, LayerNorm-ed tokens):
                      the training objective's future prediction, on unseen footage
    surprise        = the model's surprise score per frame (a window model: that same mean; a frame-causal
                      model: its scorer's default reduction); summarised as median, p95 and max
    events          = what the stream's event detector (`EventDetector`, defaults as in `watch`) raises on the
                      slice's scores, with times in seconds of the source video
`fit` runs it on the model before and after training; the scores themselves stay in `ModelCheck.scores`.
Slices are scored in chunks (with one window of overlap), so memory does not grow with the slice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge_jepa.stream.events import EventDetector, detect_events
from edge_jepa.surprise import surprise_trace
from edge_jepa.train.data import HeldOut

CHUNK_FRAMES = 900  # frames scored at once (30 s at 30 fps)


@dataclass
class ModelCheck:
    """One model on the held-out slices."""

    prediction_loss: float
    median: float
    p95: float
    max: float
    windows: int  # frames scored
    events: list[dict]  # Event.to_json() with the video's path, times in the video's seconds
    scores: list[np.ndarray] = field(repr=False)  # per slice: [F] surprise of each frame, NaN before its window
    times: list[np.ndarray] = field(repr=False)  # per slice: [F] seconds in the video

    def summary(self) -> dict[str, Any]:
        """The JSON of the model card (without the per-frame scores)."""
        return {"prediction_loss": round(self.prediction_loss, 6),
                "surprise": {"median": round(self.median, 6), "p95": round(self.p95, 6), "max": round(self.max, 6)},
                "windows": self.windows, "events": self.events}


def check_model(model, held_out: Sequence[HeldOut], *, detector: Callable[[], EventDetector] = EventDetector,
                on_progress: Callable[[int, int], None] | None = None, chunk: int = CHUNK_FRAMES) -> ModelCheck:
    """Score `model` (a window or frame-causal model) on every held-out slice; see the module docstring.
    `detector()` makes a fresh event detector per slice; on_progress(frames done, frames in all)."""
    total, done = sum(len(h.frames) for h in held_out), 0
    losses: list[float] = []
    all_scores, all_times, events = [], [], []
    T = model.config.clip.frames
    for h in held_out:
        scores = np.full(len(h.frames), np.nan)
        heatmaps: list[np.ndarray | None] = [None] * len(h.frames)
        for start in range(0, len(h.frames), chunk):
            a = max(0, start - (T - 1))  # one window of overlap: the chunk's first frame gets its full window
            for r in surprise_trace(model, h.frames[a : start + chunk], fps=h.fps):
                i = a + r.frame_index
                if i >= start:
                    scores[i], heatmaps[i] = r.score, r.heatmap
                    losses.append(float(r.token_errors.mean()))
            done += min(chunk, len(h.frames) - start)
            if on_progress:
                on_progress(done, total)
        found, _ = detect_events(h.times, scores, detector(), heatmaps=heatmaps)
        first = int(round(h.start_s * h.fps))  # frame numbers in the video at h.fps, not in the slice
        events += [{"video": h.name, **e.to_json(), "peak_frame": e.peak_frame + first} for e in found]
        all_scores.append(scores)
        all_times.append(h.times)
    valid = np.concatenate([s[np.isfinite(s)] for s in all_scores]) if all_scores else np.zeros(0)
    if not len(valid):
        raise ValueError("the held-out slices gave no surprise score (each is shorter than the model's window)")
    return ModelCheck(float(np.mean(losses)), float(np.median(valid)), float(np.percentile(valid, 95)),
                      float(valid.max()), int(len(valid)), events, all_scores, all_times)
