"""Drawing surprise: heatmap overlays and score strips on frames (OpenCV), timeline plots (matplotlib)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from edge_jepa.io import atomic_file


def overlay_heatmap(frame: np.ndarray, heatmap: np.ndarray | None, *, vmax: float, alpha: float = 0.45) -> np.ndarray:
    """RGB frame with a per-patch surprise map ([H', W'], scaled by `vmax`) blended over it."""
    if heatmap is None or not np.isfinite(vmax) or vmax <= 0:
        return frame.copy()
    h, w = frame.shape[:2]
    level = np.clip(heatmap / vmax, 0.0, 1.0)
    level = cv2.resize(level.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    colour = cv2.applyColorMap((level * 255).astype(np.uint8), cv2.COLORMAP_JET)[:, :, ::-1]  # RGB
    weight = (alpha * level)[..., None]
    return (frame * (1 - weight) + colour * weight).astype(np.uint8)


def score_strip(scores: Sequence[float], width: int, height: int = 60, *, threshold: float | None = None,
                vmax: float | None = None, active: bool = False) -> np.ndarray:
    """An RGB strip [height, width, 3] plotting the recent scores (right = now) with the threshold line."""
    strip = np.full((height, width, 3), 24, np.uint8)
    vals = np.asarray(scores, float)[-width:]
    finite = vals[np.isfinite(vals)]
    top = vmax if vmax else (max(finite.max(), threshold or 0) * 1.1 if len(finite) else 1.0)
    top = top if top > 0 else 1.0

    def y(v: float) -> int:
        return int(round((height - 4) * (1 - min(max(v / top, 0), 1)))) + 2

    if threshold is not None and np.isfinite(threshold):
        cv2.line(strip, (0, y(threshold)), (width - 1, y(threshold)), (230, 200, 40), 1)
    x0 = width - len(vals)
    pts = [(x0 + i, y(v)) for i, v in enumerate(vals) if np.isfinite(v)]
    if len(pts) > 1:
        cv2.polylines(strip, [np.array(pts, np.int32)], False, (255, 80, 80) if active else (120, 220, 255), 1,
                      cv2.LINE_AA)
    return strip


def put_text(img: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.45,
             colour: tuple[int, int, int] = (255, 255, 255)) -> None:
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def annotate(frame: np.ndarray, *, heatmap: np.ndarray | None, vmax: float, history: Sequence[float],
             threshold: float | None, label: str, active: bool = False, min_width: int = 320) -> np.ndarray:
    """Frame (upscaled to at least `min_width`) + heatmap + label on top + score strip below. RGB out."""
    h, w = frame.shape[:2]
    if w < min_width:
        frame = cv2.resize(frame, (min_width, int(round(h * min_width / w))), interpolation=cv2.INTER_NEAREST)
    img = overlay_heatmap(frame, heatmap, vmax=vmax)
    if active:
        cv2.rectangle(img, (1, 1), (img.shape[1] - 2, img.shape[0] - 2), (255, 40, 40), 3)
    put_text(img, label, (6, 16))
    strip = score_strip(history, img.shape[1], threshold=threshold, active=active)
    return np.concatenate([img, strip], axis=0)


def plot_timeline(path: str | os.PathLike, times: np.ndarray, scores: np.ndarray, *,
                  threshold: np.ndarray | float | None = None, events: Sequence[tuple[float, float]] = (),
                  truth: Sequence[tuple[float, str]] = (), title: str = "surprise") -> Path:
    """PNG: surprise over time, threshold, detected events shaded, true violations as labelled lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 3.4), dpi=110)
    ax.plot(times, scores, lw=1.2, color="#1f77b4", label="surprise")
    if threshold is not None:
        thr = np.broadcast_to(np.asarray(threshold, float), np.shape(times))
        ax.plot(times, thr, lw=1, ls="--", color="#d4a017", label="threshold")
    for i, (start, end) in enumerate(events):
        ax.axvspan(start, end, color="#e74c3c", alpha=0.25, label="event" if i == 0 else None)
    for i, (t, name) in enumerate(truth):
        ax.axvline(t, color="#2ca02c", lw=1.2, label="true violation" if i == 0 else None)
        ax.text(t, 0.98, f" {name}", transform=ax.get_xaxis_transform(), fontsize=8, va="top", color="#2ca02c",
                rotation=90)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("surprise (L1)")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8, ncol=4)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


class VideoWriter:
    """An MP4 writer (OpenCV, RGB frames in) written to a temp name and renamed on close."""

    def __init__(self, path: str | os.PathLike, fps: float):
        self.path, self.fps = Path(path), fps
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self.writer: cv2.VideoWriter | None = None
        self.size: tuple[int, int] | None = None
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        if self.writer is None:
            self.size = (frame.shape[1], frame.shape[0])
            self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self.size)
            if not self.writer.isOpened():
                raise RuntimeError(f"{self.path}: OpenCV cannot open an MP4 writer (codec mp4v)")
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = cv2.resize(frame, self.size)
        self.writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
        self.frames += 1

    def close(self) -> Path | None:
        if self.writer is None:
            return None
        self.writer.release()
        self.writer = None
        os.replace(self.tmp, self.path)
        return self.path

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        elif self.writer is not None:
            self.writer.release()
            self.tmp.unlink(missing_ok=True)
