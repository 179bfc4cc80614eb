"""Frame sources for the stream loop: webcams, video files, RTSP/HTTP streams, image folders and arrays.

Every source delivers `SourceFrame(image, t)`: a uint8 RGB frame and its *source time* in seconds.

* files and folders: the frame's own timestamp (container timestamps; image folders: index / fps);
* live sources (webcam, RTSP/HTTP stream): the monotonic clock since the source was first opened.

`read()` returns None at the end of a finite source and raises `SourceLost` when a source stops delivering
(camera unplugged, stream dropped); `ReopeningSource` turns that into a reopen with backoff. Files, folders
and arrays can be paced in real time (`realtime=True`: frame t is delivered at start + t on the wall clock,
frames that are already late are skipped and counted), emulating a live camera; otherwise they are read as
fast as the consumer takes them.
"""

from __future__ import annotations

import os
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge_jepa.video import VIDEO_SUFFIXES, VideoError
from edge_jepa.video import quiet_opencv as _quiet_opencv

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
LIVE_URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "udp", "tcp", "srt")


class SourceError(VideoError):
    """A source that cannot be opened or read: bad camera index, unreadable file or URL, empty folder."""


class SourceLost(SourceError):
    """A source that was delivering frames stopped (camera unplugged, stream dropped, decoder failure)."""


@dataclass
class SourceFrame:
    image: np.ndarray  # uint8 RGB [H, W, 3]
    t: float  # source time in seconds


def to_rgb(frame: np.ndarray) -> np.ndarray:
    """An OpenCV frame (BGR, BGRA or grey) as uint8 RGB [H, W, 3]."""
    if frame.ndim == 2 or frame.shape[2] == 1:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


class _Pacer:
    """Real-time pacing: frame t is due at origin + t on the monotonic clock."""

    def __init__(self, stop: threading.Event, late_after: float):
        self.stop, self.late_after, self.origin = stop, late_after, None

    def is_late(self, t: float) -> bool:
        if self.origin is None:
            self.origin = time.monotonic() - t
            return False
        return time.monotonic() - (self.origin + t) > self.late_after

    def wait(self, t: float) -> None:
        if self.origin is None:
            self.origin = time.monotonic() - t
        delay = self.origin + t - time.monotonic()
        if delay > 0:
            self.stop.wait(delay)


class Source(ABC):
    """Base class. Subclasses implement `_open`, `_read` and `_close`.

    Attributes: `name` (for messages), `live` (camera/stream: clock timestamps, cannot be replayed),
    `realtime` (paced at the source's own rate), `resumes` (a reopen continues exactly where reading
    stopped), `nominal_fps` (the rate the source announces, if any), `skipped` (frames skipped because
    they were already late in real-time pacing, or unreadable).
    """

    name: str = "source"
    live: bool = False
    realtime: bool = True
    resumes: bool = False
    nominal_fps: float | None = None

    def __init__(self) -> None:
        self.skipped = 0
        self.is_open = False
        self._stop = threading.Event()

    def open(self) -> Source:
        """Open (or reopen) the source; raises SourceError with a one-line reason."""
        self._stop.clear()
        self._open()
        self.is_open = True
        return self

    def read(self) -> SourceFrame | None:
        """The next frame; None at the end of a finite source; SourceLost when the source stops delivering."""
        if not self.is_open:
            raise SourceError(f"{self.name}: read() before open()")
        return self._read()

    def close(self) -> None:
        if self.is_open:
            self.is_open = False
            self._close()

    def ended_early(self) -> str | None:
        """After the end: why the source delivered less than it announced (None: it did not, or cannot tell)."""
        return None

    def interrupt(self) -> None:
        """Wake any wait (real-time pacing, reopen backoff) so that a stopping loop does not hang."""
        self._stop.set()

    @abstractmethod
    def _open(self) -> None:
        """Open the underlying device/file (raise SourceError with a clear message)."""

    @abstractmethod
    def _read(self) -> SourceFrame | None:
        """The next frame, None at the end, SourceLost when the source stops delivering."""

    def _close(self) -> None:  # noqa: B027 - optional hook: most sources hold nothing to release
        """Release what `_open` acquired (nothing by default)."""

    def __enter__(self) -> Source:
        if not self.is_open:
            self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


class _CaptureSource(Source):
    """A cv2.VideoCapture behind the Source interface."""

    def __init__(self) -> None:
        super().__init__()
        self.cap: cv2.VideoCapture | None = None

    @abstractmethod
    def _capture(self) -> cv2.VideoCapture:
        """The cv2.VideoCapture to read from."""

    def _open(self) -> None:
        with _quiet_opencv():
            cap = self._capture()
        if not cap.isOpened():
            cap.release()
            raise SourceError(self._open_error())
        self.cap = cap
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.nominal_fps = float(fps) if fps and np.isfinite(fps) and 0 < fps < 1000 else None

    def _open_error(self) -> str:
        return f"{self.name}: cannot open"

    def _close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None


class _LiveCaptureSource(_CaptureSource):
    """A live capture: timestamps from the monotonic clock since the first open (they continue after a reopen)."""

    live = True

    def __init__(self) -> None:
        super().__init__()
        self._t0: float | None = None

    def _read(self) -> SourceFrame | None:
        ok, frame = self.cap.read()
        if not ok or frame is None:
            raise SourceLost(f"{self.name}: stopped delivering frames")
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        return SourceFrame(to_rgb(frame), now - self._t0)


class CameraSource(_LiveCaptureSource):
    """A webcam by index (cv2.VideoCapture(index))."""

    def __init__(self, index: int, *, width: int | None = None, height: int | None = None):
        super().__init__()
        self.index, self.width, self.height = int(index), width, height
        self.name = f"camera {self.index}"

    def _capture(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(self.index)
        if cap.isOpened() and self.width and self.height:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        return cap

    def _open_error(self) -> str:
        return f"camera {self.index}: cannot open (no such camera, no permission, or it is in use)"


class StreamSource(_LiveCaptureSource):
    """A live network stream (RTSP, RTMP, UDP, MJPEG over HTTP) via FFmpeg, with open/read timeouts."""

    def __init__(self, url: str, *, open_timeout_s: float = 10.0, read_timeout_s: float = 5.0):
        super().__init__()
        self.url, self.name = url, url
        self.open_timeout_s, self.read_timeout_s = open_timeout_s, read_timeout_s

    def _capture(self) -> cv2.VideoCapture:
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.open_timeout_s * 1000),
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.read_timeout_s * 1000)]
        return cv2.VideoCapture(self.url, cv2.CAP_FFMPEG, params)

    def _open_error(self) -> str:
        return f"{self.url}: cannot open the stream (unreachable, wrong URL, or a format FFmpeg cannot read)"


class FileSource(_CaptureSource):
    """A video file (or an HTTP URL of one) with its own frame timestamps.

    A reopen resumes after the last frame read. The end of the file (or an undecodable tail) ends the
    stream. Timestamps follow `edge_jepa.video.iter_frames`, so the non-real-time stream equals `read_video`.
    """

    resumes = True

    def __init__(self, path: str | os.PathLike, *, realtime: bool = False):
        super().__init__()
        self.path = str(path)
        self.name = self.path
        self.realtime = realtime
        self.position = 0  # frames consumed from the file (resumed from on reopen)
        self.announced_frames: int | None = None  # the frame count in the file's header, if it has one
        self._last_t = -1.0
        self._native = 30.0
        self._pacer = _Pacer(self._stop, late_after=0.05)

    def _capture(self) -> cv2.VideoCapture:
        if "://" not in self.path:
            p = Path(self.path)
            if not p.exists():
                raise SourceError(f"{self.path}: no such file")
            if not p.is_file():
                raise SourceError(f"{self.path}: not a file")
        return cv2.VideoCapture(self.path)

    def _open_error(self) -> str:
        return f"{self.path}: OpenCV cannot open this as a video (not a video, corrupt, or unsupported codec)"

    def _open(self) -> None:
        super()._open()
        if self.position == 0:
            count = self.cap.get(cv2.CAP_PROP_FRAME_COUNT)
            self.announced_frames = int(count) if np.isfinite(count) and count > 0 else None
        self._native = self.nominal_fps or 30.0
        self._pacer.late_after = 1.5 / self._native
        if self.position == 0:  # a clear error at open, not at the first read
            ok = self.cap.grab()
            self.cap.release()
            with _quiet_opencv():
                self.cap = cv2.VideoCapture(self.path)
            if not ok or not self.cap.isOpened():
                self._close()
                raise SourceError(f"{self.path}: no decodable frames (corrupt file or unsupported codec?)")
        for _ in range(self.position):  # resume after what was already delivered
            if not self.cap.grab():
                break

    def ended_early(self) -> str | None:
        announced = self.announced_frames
        if announced is None or self.position >= 0.98 * announced - 1:
            return None
        return (f"{self.path}: ended after {self.position} of the {announced} frames its header announces "
                f"({self._last_t:.1f} s; a truncated or damaged file, or a server that closed the connection): the "
                "results cover only that part")

    def _timestamp(self) -> float:
        t = self.cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        if not np.isfinite(t) or t <= self._last_t:  # containers without timestamps: index / fps
            guess = self.position / self._native
            t = guess if guess > self._last_t else self._last_t + 1.0 / self._native
        return t

    def _read(self) -> SourceFrame | None:
        while True:
            if not self.cap.grab():
                return None
            t = self._timestamp()
            self._last_t = t
            self.position += 1
            if self.realtime and self._pacer.is_late(t):
                self.skipped += 1
                continue
            ok, frame = self.cap.retrieve()
            if not ok or frame is None:
                return None
            if self.realtime:
                self._pacer.wait(t)
            return SourceFrame(to_rgb(frame), t)


class ImageFolderSource(Source):
    """The images of a folder in name order, at `fps` (timestamps index / fps). Unreadable images are skipped."""

    resumes = True

    def __init__(self, folder: str | os.PathLike, *, fps: float, realtime: bool = False):
        super().__init__()
        if not fps or fps <= 0:
            raise SourceError(f"{folder}: an image folder needs a frame rate > 0, got {fps}")
        self.folder = Path(folder)
        self.name = str(folder)
        self.nominal_fps = float(fps)
        self.realtime = realtime
        self.files: list[Path] = []
        self.position = 0
        self.decoded = 0
        self.size_changes: list[str] = []  # "a.png 64x64 -> b.png 80x60" for each change of image size
        self._last_size: tuple[str, tuple[int, int]] | None = None
        self._pacer = _Pacer(self._stop, late_after=1.5 / fps)

    def _open(self) -> None:
        if not self.folder.is_dir():
            raise SourceError(f"{self.folder}: not a folder")
        self.files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not self.files:
            raise SourceError(f"{self.folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")

    def _read(self) -> SourceFrame | None:
        while self.position < len(self.files):
            i = self.position
            self.position += 1
            t = i / self.nominal_fps
            if self.realtime and self._pacer.is_late(t):
                self.skipped += 1
                continue
            image = cv2.imread(str(self.files[i]), cv2.IMREAD_COLOR)
            if image is None:
                self.skipped += 1
                continue
            self.decoded += 1
            if self._last_size is not None and image.shape[:2] != self._last_size[1]:
                (h0, w0), (h1, w1) = self._last_size[1], image.shape[:2]
                self.size_changes.append(f"{self._last_size[0]} {w0}x{h0} -> {self.files[i].name} {w1}x{h1}")
            self._last_size = (self.files[i].name, image.shape[:2])
            if self.realtime:
                self._pacer.wait(t)
            return SourceFrame(to_rgb(image), t)
        if self.decoded == 0:
            raise SourceError(f"{self.folder}: none of the {len(self.files)} images could be decoded")
        return None


class ArraySource(Source):
    """Frames from memory ([F, H, W, 3] uint8 RGB) at `fps`; `loop=True` repeats them forever."""

    resumes = True

    def __init__(self, frames: np.ndarray, *, fps: float, realtime: bool = True, loop: bool = False,
                 name: str = "array"):
        super().__init__()
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames):
            raise SourceError(f"{name}: frames must be a non-empty uint8 RGB array [F, H, W, 3], "
                              f"got {frames.dtype} {frames.shape}")
        if not fps or fps <= 0:
            raise SourceError(f"{name}: fps must be > 0, got {fps}")
        self.frames, self.nominal_fps, self.realtime, self.loop, self.name = frames, float(fps), realtime, loop, name
        self.position = 0
        self._pacer = _Pacer(self._stop, late_after=1.5 / fps)

    def _open(self) -> None:
        pass

    def _read(self) -> SourceFrame | None:
        while self.loop or self.position < len(self.frames):
            i = self.position
            self.position += 1
            t = i / self.nominal_fps
            if self.realtime and self._pacer.is_late(t):
                self.skipped += 1
                continue
            if self.realtime:
                self._pacer.wait(t)
            return SourceFrame(self.frames[i % len(self.frames)], t)
        return None


class ReopeningSource(Source):
    """Wraps a source: when it stops delivering (SourceLost), reopen it with backoff.

    `backoff` lists the waits (seconds) before successive attempts; the last one repeats until
    `max_attempts` consecutive failures (None: forever). `segment` increases whenever the reopened
    stream does not continue the old one exactly, so that windows never span the gap.
    """

    def __init__(self, inner: Source, *, backoff: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 5.0),
                 max_attempts: int | None = 10):
        super().__init__()
        if not backoff or min(backoff) < 0:
            raise ValueError(f"backoff must be non-empty waits >= 0, got {backoff}")
        self.inner, self.backoff, self.max_attempts = inner, tuple(backoff), max_attempts
        self.name, self.live, self.realtime, self.resumes = inner.name, inner.live, inner.realtime, inner.resumes
        self.reopens = 0  # successful reopens
        self.losses = 0  # times the source stopped delivering
        self.segment = 0

    @property
    def nominal_fps(self) -> float | None:  # type: ignore[override]
        return self.inner.nominal_fps

    @property
    def skipped(self) -> int:  # type: ignore[override]
        return self.inner.skipped

    @skipped.setter
    def skipped(self, value: int) -> None:
        pass  # the inner source counts

    def _open(self) -> None:
        if not self.inner.is_open:
            self.inner.open()

    def ended_early(self) -> str | None:
        return self.inner.ended_early()

    def _close(self) -> None:
        self.inner.close()

    def interrupt(self) -> None:
        super().interrupt()
        self.inner.interrupt()

    def _read(self) -> SourceFrame | None:
        while True:
            try:
                return self.inner.read()
            except SourceLost as lost:
                self.losses += 1
                if not self._reopen(lost):
                    return None

    def _reopen(self, lost: SourceLost) -> bool:
        """Reopen with backoff; False if interrupted; SourceError when every attempt failed."""
        self.inner.close()
        attempt, last_error = 0, str(lost)
        while self.max_attempts is None or attempt < self.max_attempts:
            if self._stop.wait(self.backoff[min(attempt, len(self.backoff) - 1)]):
                return False
            attempt += 1
            try:
                self.inner.open()
            except SourceError as e:
                last_error = str(e)
                continue
            self.reopens += 1
            if not self.inner.resumes:
                self.segment += 1
            return True
        raise SourceError(f"{self.name}: stopped delivering frames and {attempt} reopen attempts failed "
                          f"(last: {last_error})")


def _is_camera_index(spec: object) -> bool:
    return isinstance(spec, int | np.integer) or (isinstance(spec, str) and spec.strip().isdigit())


def open_source(spec: str | int | os.PathLike | np.ndarray, *, realtime: bool | None = None,
                fps: float | None = None, reopen: bool = True, max_attempts: int | None = 10) -> Source:
    """Open a source and return it (errors are one-line `SourceError`s raised here, not at the first read).

    spec: a webcam index (`0` or `"0"`), a video file, an `rtsp://`/`http(s)://`/... URL, a folder of images,
          or a uint8 RGB array [F, H, W, 3].
    realtime: pace files, folders and arrays at their own rate (emulating a live camera, late frames skipped);
          None: live sources are real time by nature, files/folders are read as fast as consumed, arrays paced.
    fps: the frame rate of an image folder or array (required for arrays; folders default to 10).
    reopen: wrap in a `ReopeningSource` (a source that stops delivering is reopened with backoff).
    """
    source: Source
    if isinstance(spec, str) and not spec.strip():  # Path("") is the current directory: never what was meant
        raise SourceError("an empty source: give a camera index, a video file, a URL or an image folder")
    if isinstance(spec, np.ndarray):
        if fps is None:
            raise SourceError("an array source needs fps=")
        source = ArraySource(spec, fps=fps, realtime=True if realtime is None else realtime)
    elif _is_camera_index(spec):
        source = CameraSource(int(spec))
    elif isinstance(spec, str) and "://" in spec:
        scheme = spec.split("://", 1)[0].lower()
        if scheme in ("http", "https") and Path(spec.split("?", 1)[0]).suffix.lower() in VIDEO_SUFFIXES:
            source = FileSource(spec, realtime=bool(realtime))
        elif scheme in LIVE_URL_SCHEMES or scheme in ("http", "https"):
            source = StreamSource(spec)
        elif scheme == "file":
            return open_source(spec.split("://", 1)[1], realtime=realtime, fps=fps, reopen=reopen,
                               max_attempts=max_attempts)
        else:
            raise SourceError(f"{spec}: unsupported URL scheme {scheme!r} (use rtsp, http(s), rtmp, udp, ...)")
    else:
        path = Path(spec).expanduser()
        if path.is_dir():
            source = ImageFolderSource(path, fps=fps or 10.0, realtime=bool(realtime))
        elif path.is_file():
            source = FileSource(path, realtime=bool(realtime))
        else:
            raise SourceError(f"{spec}: no such file or folder (and not a camera index or URL)")
    if source.live and realtime is False:
        raise SourceError(f"{source.name}: a live source is always real time (--no-realtime needs a file or folder)")
    if reopen and not isinstance(source, ArraySource):
        source = ReopeningSource(source, max_attempts=max_attempts)
    return source.open()
