"""Reading video files with OpenCV: RGB frames resampled to a target frame rate by timestamps.

Long recordings are read at the size they are used at: `read_video(path, fps, transform=...)` shrinks each frame
as it is decoded and keeps only the frames the target rate shows, so memory follows the output (frames x its
size), never the source's resolution or frame rate.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")


@contextlib.contextmanager
def quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own log lines (probing a source, writing to a full disk): we raise one clear error."""
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is None:
        yield
        return
    level = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(level)


class VideoError(RuntimeError):
    """A video that cannot be opened or decoded, or a folder without videos."""


@dataclass
class Video:
    frames: np.ndarray  # uint8 RGB [F, H, W, 3]
    times: np.ndarray  # float seconds [F]
    fps: float  # the rate frames were sampled at (the file's own if no resampling)
    path: Path


def list_videos(folder: str | os.PathLike) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        what = "no such file or directory" if not folder.exists() else "not a directory"
        raise VideoError(f"{folder}: {what} (expected a folder of videos)")
    videos = sorted(p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
    if not videos:
        raise VideoError(f"{folder}: no video files ({', '.join(VIDEO_SUFFIXES)}) found")
    return videos


def iter_frames(path: str | os.PathLike, transform: Callable[[np.ndarray], np.ndarray] | None = None,
                ) -> Iterator[tuple[float, np.ndarray]]:
    """(time in seconds, RGB frame) for every decodable frame; clear errors for unreadable files.

    transform: a geometric change (resize, crop) applied to each decoded frame before anything else, so the
    full-resolution frame is dropped at once (colour conversion then runs on the small frame).
    """
    path = Path(path)
    if not path.exists():
        raise VideoError(f"{path}: no such video file")
    if not path.is_file():
        raise VideoError(f"{path}: not a file (expected a video file)")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise VideoError(f"{path}: OpenCV cannot open this file as a video")
    native = cap.get(cv2.CAP_PROP_FPS)
    native = native if native and np.isfinite(native) and 0 < native < 1000 else 30.0
    index, last_t = 0, -1.0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            t = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            if not np.isfinite(t) or t <= last_t:  # containers without timestamps: fall back to index/fps
                t = index / native if index / native > last_t else last_t + 1.0 / native
            last_t = t
            index += 1
            if transform is not None:
                frame = transform(frame)
            if frame.ndim == 2:
                frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
            else:
                frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            yield t, frame
    finally:
        cap.release()
    if index == 0:
        raise VideoError(f"{path}: no decodable frames (corrupt file or unsupported codec?)")


def probe_duration(path: str | os.PathLike) -> float | None:
    """The duration (s) the file's header announces (frame count / fps), or None; an estimate for progress bars
    (headers can be wrong: count frames by decoding them)."""
    cap = cv2.VideoCapture(str(path))
    try:
        count, fps = cap.get(cv2.CAP_PROP_FRAME_COUNT), cap.get(cv2.CAP_PROP_FPS)
    finally:
        cap.release()
    if not (count and fps and np.isfinite(count) and np.isfinite(fps) and count > 0 and 0 < fps < 1000):
        return None
    return float(count / fps)


class _Frames:
    """A growing uint8 array of equal-sized frames (capacity doubles): appending never holds a list of frames
    next to their stacked copy."""

    def __init__(self, capacity: int = 256):
        self.capacity, self.n = max(1, capacity), 0
        self.data: np.ndarray | None = None

    def append(self, frame: np.ndarray) -> None:
        if self.data is None:
            self.data = np.empty((self.capacity, *frame.shape), frame.dtype)
        elif frame.shape != self.data.shape[1:]:
            raise VideoError(f"frame size changed mid-video from {self.data.shape[2]}x{self.data.shape[1]} to "
                             f"{frame.shape[1]}x{frame.shape[0]}: read it with a resize")
        if self.n == len(self.data):
            grown = np.empty((2 * len(self.data), *self.data.shape[1:]), self.data.dtype)
            grown[: self.n] = self.data
            self.data = grown
        self.data[self.n] = frame
        self.n += 1

    def array(self) -> np.ndarray:
        """The frames [n, ...]; a copy only when much capacity is unused."""
        assert self.data is not None
        return self.data[: self.n] if self.n * 5 >= 4 * len(self.data) else self.data[: self.n].copy()


def resample_indices(times: np.ndarray, fps: float) -> np.ndarray:
    """Indices of the frames shown at t = t0, t0 + 1/fps, ... (the latest frame at or before each tick)."""
    if len(times) == 0:
        return np.zeros(0, dtype=np.int64)
    ticks = np.arange(times[0], times[-1] + 1e-9, 1.0 / fps)
    return np.searchsorted(times, ticks + 1e-6, side="right") - 1


def read_video(path: str | os.PathLike, fps: float | None = None, *, max_seconds: float | None = None,
               resize: tuple[int, int] | None = None, transform: Callable[[np.ndarray], np.ndarray] | None = None,
               on_progress: Callable[[float, float | None], None] | None = None) -> Video:
    """Decode a video (optionally only its first `max_seconds`), resampled to `fps` by timestamps while reading:
    each tick t0 + k / fps shows the latest frame at or before it, and frames no tick shows are dropped at once.

    resize: (width, height) to shrink frames while decoding; transform: any per-frame resize/crop instead
    (e.g. the model's preprocessing). Either keeps memory bounded by the output size, not the source's.
    on_progress(seconds decoded, announced duration or None), about once per second of video.
    """
    if resize is not None and transform is not None:
        raise ValueError("give resize or transform, not both")
    if resize is not None:
        size = resize

        def transform(frame: np.ndarray) -> np.ndarray:
            return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)

    duration = probe_duration(path)  # also sizes the frame buffer: no doubling, no copy at the end
    if max_seconds is not None and duration is not None:
        duration = min(duration, max_seconds)
    step = None if fps is None else 1.0 / fps
    expected = None if duration is None else duration * (fps or 30.0) + 2
    kept, times = _Frames(int(expected * 1.05) + 8 if expected else 256), []
    t0: float | None = None
    held: np.ndarray | None = None  # the latest frame, waiting for the next frame's time to know its ticks
    reported = 0.0
    for t, frame in iter_frames(path, transform):
        if t0 is None:
            t0 = t
        if max_seconds is not None and t - t0 > max_seconds:
            break
        if on_progress and t - t0 >= reported + 1.0:
            reported = t - t0
            on_progress(reported, duration)
        if step is None:
            kept.append(frame)
            times.append(t)
            continue
        while held is not None and t0 + len(times) * step + 1e-6 < t:  # ticks before this frame show `held`
            times.append(t0 + len(times) / fps)
            kept.append(held)
        held, last_t = frame, t
    if t0 is None:  # iter_frames raises first; only an empty max_seconds window gets here
        raise VideoError(f"{path}: no decodable frames")
    if step is not None:
        while t0 + len(times) * step <= last_t + 1e-9:  # the ticks the last frame shows
            times.append(t0 + len(times) / fps)
            kept.append(held)
    t_arr = np.asarray(times, dtype=np.float64)
    if on_progress:
        on_progress(float(t_arr[-1] - t_arr[0]), float(t_arr[-1] - t_arr[0]))
    if fps is None:
        dt = np.diff(t_arr)
        rate = float(1.0 / np.median(dt)) if len(dt) else 30.0
        return Video(kept.array(), t_arr, rate, Path(path))
    return Video(kept.array(), t_arr, float(fps), Path(path))
