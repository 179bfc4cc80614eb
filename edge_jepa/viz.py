"""Drawing surprise: heatmap overlays and score strips on frames (OpenCV), timeline plots (matplotlib)."""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from edge_jepa.io import atomic_file
from edge_jepa.video import quiet_opencv


def overlay_heatmap(frame: np.ndarray, heatmap: np.ndarray | None, *, vmax: float, alpha: float = 0.45,
                    region: tuple[float, float, float, float] | None = None, floor: float = 0.15,
                    outline: np.ndarray | None = None) -> np.ndarray:
    """RGB frame with a per-patch surprise map ([H', W'], scaled by `vmax`) over it, at the model's own resolution:
    each token is one flat cell (no smoothing that would suggest a precision the model does not have), tinted
    only where its level is at least `floor` of `vmax`.

    region: (x0, y0, x1, y1) as fractions of the frame that the map covers (default: the whole frame; see
    `model_view_region` for center-cropping models).
    outline: a boolean [H', W'] token mask (e.g. the top tokens of an event) whose cells are outlined.
    """
    if heatmap is None or not np.isfinite(vmax) or vmax <= 0:
        return frame.copy()
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = region or (0.0, 0.0, 1.0, 1.0)
    left, top = int(round(x0 * w)), int(round(y0 * h))
    right, bottom = max(int(round(x1 * w)), left + 1), max(int(round(y1 * h)), top + 1)
    level = np.nan_to_num(np.clip(heatmap / vmax, 0.0, 1.0), nan=0.0).astype(np.float32)
    level[level < floor] = 0.0
    size = (right - left, bottom - top)
    cells = cv2.resize(level, size, interpolation=cv2.INTER_NEAREST)
    out = frame.copy()
    view = out[top:bottom, left:right]
    if (level > 0).any():
        colour = cv2.applyColorMap((cells * 255).astype(np.uint8), cv2.COLORMAP_JET)[:, :, ::-1]  # RGB
        weight = (alpha * cells)[..., None]
        view[:] = (view * (1 - weight) + colour * weight).astype(np.uint8)
    if outline is not None and outline.any():
        mask = cv2.resize(outline.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(view, contours, -1, (0, 0, 0), 4)
        cv2.drawContours(view, contours, -1, (255, 255, 255), 2)
    return out


def model_view_region(height: int, width: int, size: int, mode: str) -> tuple[float, float, float, float]:
    """The part of a frame a model sees, as fractions (x0, y0, x1, y1): all of it for "resize", the
    center crop of `edge_jepa.preprocess.resize_crop` for "center_crop"."""
    if mode != "center_crop":
        return 0.0, 0.0, 1.0, 1.0
    scale = int(size * 256 / 224) / min(height, width)
    nh, nw = max(size, round(height * scale)), max(size, round(width * scale))
    top, left = (nh - size) // 2, (nw - size) // 2
    return left / nw, top / nh, (left + size) / nw, (top + size) / nh


def score_strip(scores: Sequence[float], width: int, height: int = 60, *, threshold: float | None = None,
                vmax: float | None = None, active: bool = False, low: float | None = None) -> np.ndarray:
    """An RGB strip [height, width, 3] plotting the recent scores (right = now) with the threshold line (solid)
    and the lower hysteresis level (dashed: an event lasts while the score stays above it)."""
    strip = np.full((height, width, 3), 24, np.uint8)
    vals = np.asarray(scores, float)[-width:]
    finite = vals[np.isfinite(vals)]
    top = vmax if vmax else (max(finite.max(), threshold or 0) * 1.1 if len(finite) else 1.0)
    top = top if top > 0 else 1.0

    def y(v: float) -> int:
        return int(round((height - 4) * (1 - min(max(v / top, 0), 1)))) + 2

    if threshold is not None and np.isfinite(threshold):
        cv2.line(strip, (0, y(threshold)), (width - 1, y(threshold)), (230, 200, 40), 1)
    if low is not None and np.isfinite(low):
        for x in range(0, width, 8):
            cv2.line(strip, (x, y(low)), (min(x + 4, width - 1), y(low)), (170, 150, 60), 1)
    x0 = width - len(vals)
    pts = [(x0 + i, y(v)) for i, v in enumerate(vals) if np.isfinite(v)]
    if len(pts) > 1:
        cv2.polylines(strip, [np.array(pts, np.int32)], False, (255, 80, 80) if active else (120, 220, 255), 1,
                      cv2.LINE_AA)
    return strip


def put_text(img: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.45,
             colour: tuple[int, int, int] = (255, 255, 255)) -> None:
    """Text with a dark outline. The outline is the text drawn at 1 px offsets, not a thicker stroke: in
    OpenCV 5 the glyph advance grows with the thickness, so a thick outline would not line up."""
    x, y = org
    for dx, dy in ((-1, -1), (-1, 1), (1, -1), (1, 1), (0, -1), (0, 1), (-1, 0), (1, 0)):
        cv2.putText(img, text, (x + dx, y + dy), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def fit_width(frame: np.ndarray, min_width: int = 0, max_width: int | None = None) -> np.ndarray:
    """The frame scaled (aspect kept) to a width in [min_width, max_width]; itself if it already is.

    Shrinking halves by area averaging while the frame is at least twice too wide (OpenCV's fast path), then
    finishes bilinearly: as free of aliasing as one area resize and 3-5x cheaper (1280 -> 960 px: 0.9 ms instead
    of 4.9; 1920 -> 640: 0.9 instead of 2.9). Enlarging repeats pixels."""
    h, w = frame.shape[:2]
    if w < min_width:
        return cv2.resize(frame, (min_width, int(round(h * min_width / w))), interpolation=cv2.INTER_NEAREST)
    if max_width is None or w <= max_width:
        return frame
    height = int(round(h * max_width / w))
    while frame.shape[1] >= 2 * max_width:
        frame = cv2.resize(frame, (frame.shape[1] // 2, frame.shape[0] // 2), interpolation=cv2.INTER_AREA)
    if frame.shape[1] == max_width and frame.shape[0] == height:
        return frame
    return cv2.resize(frame, (max_width, height), interpolation=cv2.INTER_LINEAR)


def annotate(frame: np.ndarray, *, heatmap: np.ndarray | None, vmax: float, history: Sequence[float],
             threshold: float | None, label: str, active: bool = False, min_width: int = 320,
             max_width: int | None = None, status: str | None = None,
             region: tuple[float, float, float, float] | None = None, low: float | None = None,
             outline: np.ndarray | None = None) -> np.ndarray:
    """Frame (scaled to [min_width, max_width]) + heatmap + label on top (one line per line of `label`) (+ status
    line at the bottom) + score strip below with the threshold and the lower level `low`. RGB out. `region`: where
    the heatmap lies; `outline`: token mask to outline (see `overlay_heatmap`)."""
    frame = fit_width(frame, min_width, max_width)
    img = overlay_heatmap(frame, heatmap, vmax=vmax, region=region, outline=outline)
    if active:
        cv2.rectangle(img, (1, 1), (img.shape[1] - 2, img.shape[0] - 2), (255, 40, 40), 3)
    for i, line in enumerate(label.splitlines()):
        put_text(img, line, (6, 16 + 16 * i))
    if status:
        put_text(img, status, (6, img.shape[0] - 8), scale=0.4, colour=(200, 230, 255))
    strip = score_strip(history, img.shape[1], threshold=threshold, active=active, low=low)
    return np.concatenate([img, strip], axis=0)


def plot_timeline(path: str | os.PathLike, times: np.ndarray, scores: np.ndarray, *,
                  threshold: np.ndarray | float | None = None, events: Sequence[tuple[float, float]] = (),
                  truth: Sequence[tuple[float, str]] = (), title: str = "surprise",
                  calibration: tuple[float, float] | None = None, low: np.ndarray | float | None = None) -> Path:
    """PNG: surprise over time, threshold (and the lower hysteresis level `low`, dotted), detected events
    shaded, true violations as labelled lines.

    calibration: a (start, end) time span shaded grey as the detector's warm-up.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 3.4), dpi=110)
    ax.plot(times, scores, lw=1.2, color="#1f77b4", label="surprise")
    if threshold is not None:
        thr = np.broadcast_to(np.asarray(threshold, float), np.shape(times))
        ax.plot(times, thr, lw=1, ls="--", color="#d4a017", label="threshold")
    if low is not None:
        ax.plot(times, np.broadcast_to(np.asarray(low, float), np.shape(times)), lw=1, ls=":", color="#a08a3c",
                label="lower level (an event holds above it)")
    if calibration is not None:
        ax.axvspan(*calibration, color="#888888", alpha=0.2, label="calibration")
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
    """An MP4 writer (OpenCV, RGB frames in) written to a temp name and renamed on close.

    background=True: frames are encoded by a thread of their own through a bounded queue of `queue_size` frames
    (`write` blocks only when it is full, so memory stays bounded and nothing is dropped); `close` writes what is
    queued before the file is checked and renamed, `abort` discards it. The caller must not change a frame after
    handing it over. An encoding error is raised by the next `write` or by `close`.
    """

    def __init__(self, path: str | os.PathLike, fps: float, *, background: bool = False, queue_size: int = 16):
        self.path, self.fps = Path(path), fps
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self.writer: cv2.VideoWriter | None = None
        self.size: tuple[int, int] | None = None
        self.frames = 0
        self._t0: float | None = None  # write_at: time of the first output tick
        self._ticks = 0  # write_at: output ticks written
        self._pending: tuple[float, np.ndarray] | None = None  # write_at: the latest frame, not yet written
        self.background, self.queue_size = background, max(1, queue_size)
        self.queue_peak = 0  # background: the most frames waiting at once
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._discard = False

    def write(self, frame: np.ndarray) -> None:
        if self.writer is None:
            self.size = (frame.shape[1], frame.shape[0])
            self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self.size)
            if not self.writer.isOpened():
                raise RuntimeError(f"{self.path}: OpenCV cannot open an MP4 writer (codec mp4v)")
            if self.background:
                self._queue = queue.Queue(self.queue_size)
                self._thread = threading.Thread(target=self._encode_queued, name=f"edge-jepa-video {self.path.name}",
                                                daemon=True)
                self._thread.start()
        if self._error is not None:
            raise self._error
        if self._queue is not None:
            self._queue.put(frame)
            self.queue_peak = max(self.queue_peak, self._queue.qsize())
        else:
            self._encode(frame)
        self.frames += 1

    def _encode(self, frame: np.ndarray) -> None:
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = cv2.resize(frame, self.size)
        with quiet_opencv():  # a full disk logs a warning per frame: close() raises one clear error instead
            self.writer.write(np.ascontiguousarray(frame[:, :, ::-1]))

    def _encode_queued(self) -> None:
        """The encoding thread: frames in order until the None that `_stop_thread` queues."""
        while (frame := self._queue.get()) is not None:
            if self._error is None and not self._discard:
                try:
                    self._encode(frame)
                except BaseException as e:  # noqa: BLE001 - raised in the caller's thread
                    self._error = e

    def _stop_thread(self, discard: bool) -> None:
        """Finish (or, discarding, skip) what is queued and end the encoding thread."""
        if self._thread is None:
            return
        self._discard = discard
        if discard:  # make room for the sentinel at once
            with contextlib.suppress(queue.Empty):
                while True:
                    self._queue.get_nowait()
        self._queue.put(None)
        self._thread.join()
        self._thread, self._queue = None, None

    def write_at(self, t: float, frame: np.ndarray) -> int:
        """Add a frame shown from time t (seconds) on; the file is resampled to the writer's fps by timestamps.

        Each output tick t0 + n / fps shows the latest frame at or before it, so the file plays in real time
        whatever the input rate (fast input is thinned, slow input repeated). A frame is written once the
        next one arrives (or at `close`). Returns the number of frames written by this call.
        """
        written = 0
        if self._pending is not None:
            while self._tick() < t - 1e-6:
                self.write(self._pending[1])
                self._ticks += 1
                written += 1
        elif self._t0 is None:
            self._t0 = t
        self._pending = (t, frame)
        return written

    def due(self, t: float) -> bool:
        """Would a frame at t be shown at all (False if the next frame already replaces it)? For skipping the
        drawing of frames that arrive faster than fps: a frame at t is shown if t is past the next tick."""
        return self._t0 is None or self._pending is None or t >= self._tick() - 1e-6

    def _tick(self) -> float:
        return self._t0 + self._ticks / self.fps

    def abort(self) -> None:
        """Discard the file being written."""
        self._stop_thread(discard=True)
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        self.tmp.unlink(missing_ok=True)

    def close(self) -> Path | None:
        if self._pending is not None:  # write_at: the last frame covers its own tick
            if self._tick() <= self._pending[0] + 1e-6:
                self.write(self._pending[1])
                self._ticks += 1
            self._pending = None
        if self.writer is None:
            return None
        self._stop_thread(discard=False)
        if self._error is not None:
            self.abort()
            raise self._error
        self.writer.release()
        self.writer = None
        self._verify()
        os.replace(self.tmp, self.path)
        return self.path

    def _verify(self) -> None:
        """The temp file holds every frame written (OpenCV's writer fails silently, e.g. on a full disk:
        the file then has no index and no decodable frame); else it is deleted and an error raised."""
        cap = cv2.VideoCapture(str(self.tmp))
        found = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
        cap.release()
        if found >= self.frames:
            return
        self.tmp.unlink(missing_ok=True)
        if shutil.disk_usage(self.tmp.parent).free < 4 * 2**20:
            raise OSError(errno.ENOSPC, f"no space left on the device: {self.path} was left incomplete "
                          f"({max(found, 0)} of {self.frames} frames) and not kept", str(self.path))
        raise OSError(errno.EIO, f"{self.path}: OpenCV wrote {max(found, 0)} of {self.frames} frames; the file was "
                      "not kept", str(self.path))

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
