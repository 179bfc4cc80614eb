"""What an event record shows a person: where (a box in source pixels around the most surprising tokens at the
peak) and a thumbnail (the source frame at the peak with that box drawn).

The box is found at the model's real resolution: the token grid of the heatmap (4x4 for the 64 px default
model), each token's error above that token's running normal. The top tokens are the 8-connected group around
the most surprising one whose excess is at least `share` of its excess; their grid box is mapped through the
part of the frame the model sees (`edge_jepa.viz.model_view_region`) to source pixels.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from edge_jepa.io import atomic_file
from edge_jepa.viz import model_view_region, put_text

TOP_SHARE = 0.5  # tokens with at least half the peak token's excess belong to the region


def thumbnail_name(event_id: int) -> str:
    """The thumbnail of an event, relative to the output folder."""
    return f"thumbs/event_{event_id:04d}.jpg"


def top_tokens(excess: np.ndarray, share: float = TOP_SHARE) -> np.ndarray:
    """Boolean [H', W'] mask: the 8-connected tokens around the most surprising one whose excess is at least
    `share` of its excess (just that token when nothing stands out). Non-finite tokens (masked out) never count."""
    heat = np.where(np.isfinite(excess), excess, -np.inf).astype(np.float64)
    if not np.isfinite(heat).any():
        return np.zeros(heat.shape, bool)
    y, x = np.unravel_index(int(np.argmax(heat)), heat.shape)
    peak = heat[y, x]
    hot = heat >= share * peak if peak > 0 else np.zeros(heat.shape, bool)
    hot[y, x] = True
    _, labels = cv2.connectedComponents(hot.astype(np.uint8), connectivity=8)
    return labels == labels[y, x]


def grid_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(c0, r0, c1, r1): the token columns/rows [c0, c1) x [r0, r1) that hold the mask."""
    rows, cols = np.nonzero(mask)
    return int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1


def to_source_box(box: tuple[int, int, int, int], grid_hw: tuple[int, int], frame_hw: tuple[int, int],
                  view: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    """A token box (c0, r0, c1, r1) of a [H', W'] grid -> (x0, y0, x1, y1) source pixels, through `view` (the
    fractions of the frame the model sees, see `model_view_region`)."""
    (gh, gw), (h, w) = grid_hw, frame_hw
    vx0, vy0, vx1, vy1 = view
    c0, r0, c1, r1 = box
    x0 = (vx0 + (vx1 - vx0) * c0 / gw) * w
    x1 = (vx0 + (vx1 - vx0) * c1 / gw) * w
    y0 = (vy0 + (vy1 - vy0) * r0 / gh) * h
    y1 = (vy0 + (vy1 - vy0) * r1 / gh) * h
    clip = lambda v, hi: int(min(max(round(v), 0), hi))  # noqa: E731
    return clip(x0, w), clip(y0, h), clip(x1, w), clip(y1, h)


def region_of(excess: np.ndarray, frame_hw: tuple[int, int], size: int, mode: str,
              share: float = TOP_SHARE) -> tuple[int, int, int, int] | None:
    """The box in source pixels around the top tokens of an excess map (None if the map has no finite token)."""
    mask = top_tokens(excess, share)
    if not mask.any():
        return None
    return to_source_box(grid_box(mask), mask.shape, frame_hw, model_view_region(*frame_hw, size, mode))


def draw_thumbnail(image: np.ndarray, region: tuple[int, int, int, int] | None, label: str = "",
                   max_width: int = 320) -> np.ndarray:
    """The RGB frame scaled to at most `max_width` wide, the region boxed in red, an optional label on top."""
    h, w = image.shape[:2]
    scale = min(1.0, max_width / w)
    out = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA) \
        if scale < 1.0 else image.copy()
    if region is not None:
        x0, y0, x1, y1 = (int(round(v * scale)) for v in region)
        cv2.rectangle(out, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), (0, 0, 0), 4)
        cv2.rectangle(out, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), (255, 40, 40), 2)
    if label:
        put_text(out, label, (4, 14), scale=0.4)
    return out


def write_thumbnail(path: str | os.PathLike, image: np.ndarray, region: tuple[int, int, int, int] | None,
                    label: str = "", max_width: int = 320) -> Path:
    """Write the thumbnail (JPEG, or PNG by the suffix) atomically; returns its path."""
    path = Path(path)
    ok, data = cv2.imencode(path.suffix or ".jpg",
                            np.ascontiguousarray(draw_thumbnail(image, region, label, max_width)[:, :, ::-1]))
    if not ok:
        raise RuntimeError(f"{path}: OpenCV could not encode the thumbnail")
    with atomic_file(path) as tmp:
        tmp.write_bytes(data.tobytes())
    return path


class PeakTracker:
    """Follows the detector as the stream loop scores (inference thread): at each new peak of the open event,
    sets the event's region (source pixels) and frame size and keeps a reference to the peak frame (no copy) for
    the thumbnail. While a candidate (not yet an event) lasts, only its highest window is kept (memory: one frame,
    whatever `min_duration_s`).

    baseline: returns the detector's per-token normal (or None), subtracted from each heatmap.
    """

    def __init__(self, size: int, mode: str, baseline: Callable[[], np.ndarray | None]):
        self.size, self.mode, self.baseline = size, mode, baseline
        self._best: tuple[int, float, np.ndarray, np.ndarray | None] | None = None  # a candidate's highest window
        self._images: dict[int, np.ndarray] = {}  # event id -> its peak frame
        self._peak: dict[int, float] = {}  # event id -> the peak score already recorded

    def observe(self, frame_index: int, score: float, image: np.ndarray, heatmap: np.ndarray | None,
                state: str, started, open_event) -> None:
        """After each detector update: `started` (the event it started, if any), `open_event` (the event in
        progress, if any), `state` (the detector's state)."""
        sample = (frame_index, score, image, heatmap)
        if state == "candidate":
            if self._best is None or score > self._best[1]:  # the detector's peak: the first highest score
                self._best = sample
            return
        ev = started or open_event
        best, self._best = self._best, None
        if ev is None:
            return
        if started is not None:
            peak = best if best is not None and best[1] >= score else sample
        elif self._peak.get(ev.id) != ev.peak_score:
            peak = sample  # the peak rose with this window
        else:
            return
        self._record(ev, *peak)

    def _record(self, ev, frame_index: int, score: float, image: np.ndarray, heatmap: np.ndarray | None) -> None:
        self._peak[ev.id] = score
        self._images[ev.id] = image
        ev.frame_size = (int(image.shape[1]), int(image.shape[0]))
        if heatmap is None:
            return
        base = self.baseline()
        excess = heatmap - base if base is not None and base.shape == heatmap.shape else heatmap
        ev.region = region_of(excess, image.shape[:2], self.size, self.mode)

    def image(self, event_id: int) -> np.ndarray | None:
        """The source frame at the event's peak (while the event is being reported)."""
        return self._images.get(event_id)

    def forget(self, event_id: int) -> None:
        self._images.pop(event_id, None)
        self._peak.pop(event_id, None)
