"""Reading video files with OpenCV: RGB frames resampled to a target frame rate by timestamps."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
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


def iter_frames(path: str | os.PathLike) -> Iterator[tuple[float, np.ndarray]]:
    """(time in seconds, RGB frame) for every decodable frame; clear errors for unreadable files."""
    path = Path(path)
    if not path.exists():
        raise VideoError(f"{path}: no such video file")
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
            if frame.ndim == 2:
                frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
            else:
                frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            yield t, frame
    finally:
        cap.release()
    if index == 0:
        raise VideoError(f"{path}: no decodable frames (corrupt file or unsupported codec?)")


def resample_indices(times: np.ndarray, fps: float) -> np.ndarray:
    """Indices of the frames shown at t = t0, t0 + 1/fps, ... (the latest frame at or before each tick)."""
    if len(times) == 0:
        return np.zeros(0, dtype=np.int64)
    ticks = np.arange(times[0], times[-1] + 1e-9, 1.0 / fps)
    return np.searchsorted(times, ticks + 1e-6, side="right") - 1


def read_video(path: str | os.PathLike, fps: float | None = None, *, max_seconds: float | None = None,
               resize: tuple[int, int] | None = None) -> Video:
    """Decode a whole video (optionally only its first `max_seconds`), resampled to `fps` by timestamps.

    resize: (width, height) to shrink frames while decoding (saves memory on long videos).
    """
    times, frames = [], []
    for t, frame in iter_frames(path):
        if max_seconds is not None and times and t - times[0] > max_seconds:
            break
        if resize is not None:
            frame = cv2.resize(frame, resize, interpolation=cv2.INTER_AREA)
        times.append(t)
        frames.append(frame)
    t_arr = np.asarray(times, dtype=np.float64)
    stack = np.stack(frames)
    if fps is None:
        dt = np.diff(t_arr)
        rate = float(1.0 / np.median(dt)) if len(dt) else 30.0
        return Video(stack, t_arr, rate, Path(path))
    idx = resample_indices(t_arr, fps)
    return Video(stack[idx], t_arr[0] + np.arange(len(idx)) / fps, float(fps), Path(path))
