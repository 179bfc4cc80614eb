"""The capture ring buffer: the last seconds of frames, and model windows resampled from it by timestamps.

A window of T frames at the model's rate ending at time t_end takes, for each sample time
t_end - (T-1-j) / fps, the latest frame at or before it (the same rule as `edge_jepa.video.resample_indices`).
Windows never span a segment boundary (a reopened live source, a resolution change, a long gap).
"""

from __future__ import annotations

import bisect
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

EPS = 1e-6  # timestamp tolerance (as in resample_indices)


@dataclass(eq=False)
class CapturedFrame:
    image: np.ndarray  # uint8 RGB [H, W, 3]
    t: float  # source time (s)
    index: int  # capture index since the loop started
    wall: float  # time.monotonic() when captured
    segment: int  # windows only combine frames of one segment
    seq: int = -1  # rank among the frames that end a full window (-1: this one does not)
    prep: np.ndarray | None = field(default=None, repr=False)  # model input, filled once (capture or inference)
    view: np.ndarray | None = field(default=None, repr=False)  # the image shrunk for drawing (capture), if smaller
    tokens: object = field(default=None, repr=False)  # frame-causal models: its tokens, encoded once (inference)


class FrameRing:
    """Thread-safe ring of captured frames covering `span_s` seconds (the model window) plus slack.

    realtime=True: the ring keeps only what the newest window needs (and at most `max_frames`), so capture
    never waits. realtime=False: the consumer `release`s what it no longer needs and `put` blocks while the
    capture is more than `backlog_s` ahead of the consumer (back-pressure, nothing dropped).
    """

    def __init__(self, span_s: float, *, realtime: bool, backlog_s: float = 1.0, max_frames: int = 1024):
        self.span_s, self.realtime, self.backlog_s, self.max_frames = span_s, realtime, backlog_s, max_frames
        self._frames: deque[CapturedFrame] = deque()
        self._cond = threading.Condition()
        self.closed = False
        self.keep_from = -np.inf  # the consumer needs nothing before this time (realtime=False)
        self.first_t: float | None = None  # time of the first frame ever put
        self.eligible = 0  # frames that end a full window
        self.peak_frames = 0  # the most frames held at once
        self._segment_start: tuple[int, float] = (-1, 0.0)

    # -- producer --------------------------------------------------------------------------------------

    def put(self, frame: CapturedFrame, stop: threading.Event | None = None) -> bool:
        """Add the newest frame (blocking for back-pressure when realtime=False); False if stopped."""
        with self._cond:
            if not self.realtime:
                while (self._frames and self._frames[-1].t - self.keep_from > self.span_s + self.backlog_s
                       and not self.closed and not (stop and stop.is_set())):
                    self._cond.wait(0.1)
                if self.closed or (stop and stop.is_set()):
                    return False
            if frame.segment != self._segment_start[0]:
                self._segment_start = (frame.segment, frame.t)
                if self.realtime:
                    self._frames.clear()
            elif frame.t - self._segment_start[1] >= self.span_s - EPS:
                frame.seq = self.eligible
                self.eligible += 1
            if self.first_t is None:
                self.first_t = self.keep_from = frame.t
            self._frames.append(frame)
            if self.realtime:
                self._trim(frame.t - self.span_s)
                while len(self._frames) > self.max_frames:
                    self._frames.popleft()
            self.peak_frames = max(self.peak_frames, len(self._frames))
            self._cond.notify_all()
            return True

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    # -- consumer --------------------------------------------------------------------------------------

    def release(self, t: float) -> None:
        """The consumer needs no sample before time t any more."""
        with self._cond:
            self.keep_from = max(self.keep_from, t)
            self._trim(t)
            self._cond.notify_all()

    def _trim(self, t: float) -> None:
        """Drop frames before t, keeping the latest one at or before it (it still serves sample t)."""
        while len(self._frames) > 1 and self._frames[1].t <= t + EPS:
            self._frames.popleft()

    def newest(self) -> CapturedFrame | None:
        with self._cond:
            return self._frames[-1] if self._frames else None

    def wait(self, predicate, timeout: float | None = None) -> bool:
        """Wait until predicate(newest frame or None, closed) holds; returns its value."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self._frames[-1] if self._frames else None, self.closed),
                                       timeout)

    def frame_at(self, t: float) -> CapturedFrame | None:
        """The latest frame at or before t (None if all frames are later)."""
        with self._cond:
            times = [f.t for f in self._frames]
            i = bisect.bisect_right(times, t + EPS) - 1
            return self._frames[i] if i >= 0 else None

    def window(self, sample_times: Sequence[float]) -> list[CapturedFrame] | None:
        """The frames for these sample times (oldest first), or None if the window is not full.

        Full means: every sample has a frame at or before it, all in the segment of the last one.
        """
        with self._cond:
            frames = list(self._frames)
        times = [f.t for f in frames]
        out = []
        for s in sample_times:
            i = bisect.bisect_right(times, s + EPS) - 1
            if i < 0:
                return None
            out.append(frames[i])
        segment = out[-1].segment
        if any(f.segment != segment for f in out):
            return None
        return out

    def __len__(self) -> int:
        with self._cond:
            return len(self._frames)
