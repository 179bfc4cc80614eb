"""The capture side of the stream loop: read the source, check each frame, cut segments, fill the FrameRing.

A new segment starts (no window spans it) when the resolution changes, the source reopens (its `segment`
counter moves) or the gap between frames exceeds `max_gap_s`. Times that do not increase are nudged forward.

Each frame is shrunk once, right after capture (the stream's cost at 720p and above is in what follows the
source, not in the model): `prepare` turns it into the model's input (exactly the preprocessing of the
offline path, so scores do not change) and `view_width` keeps a copy at most that wide for drawing; the
full frame stays in `image`.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

import numpy as np

from edge_jepa.stream.ring import EPS, CapturedFrame, FrameRing
from edge_jepa.stream.sources import Source, SourceError
from edge_jepa.stream.stats import LoopCounters
from edge_jepa.viz import fit_width


class Capture:
    """The capture thread's work (`run`); `segments`, `resolution_changes` and `wall_offset` are its results."""

    def __init__(self, source: Source, ring: FrameRing, counters: LoopCounters, max_gap_s: float,
                 stop: threading.Event, *, prepare: Callable[[np.ndarray, float, int], np.ndarray],
                 view_width: int | None = None):
        self.source, self.ring, self.counters, self.max_gap_s, self.stop = source, ring, counters, max_gap_s, stop
        self.prepare, self.view_width = prepare, view_width
        self.segments, self.resolution_changes = 0, 0
        self.wall_offset: float | None = None  # time.time() - source time, for live sources
        self._segment, self._last_t, self._last_shape = 0, -math.inf, None
        self._source_segment = getattr(source, "segment", 0)

    def run(self) -> None:
        """Capture until the source ends or `stop` is set; errors propagate (the loop hands them on)."""
        index = 0
        while not self.stop.is_set():
            sf = self.source.read()
            if sf is None:
                return
            self._check(sf.image)
            t = self._place(float(sf.t), sf.image.shape)
            now = time.monotonic()
            if self.wall_offset is None and self.source.live:
                self.wall_offset = time.time() - t
            frame = CapturedFrame(sf.image, t, index, now, self._segment)
            frame.prep = self.prepare(sf.image, t, self._segment)  # the model's input, in capture order
            if self.view_width is not None and sf.image.shape[1] > self.view_width:
                frame.view = fit_width(sf.image, max_width=self.view_width)
            if not self.ring.put(frame, self.stop):
                return
            self.counters.on_capture(t, now)
            index += 1
            self.segments = self._segment + 1

    def _check(self, img: object) -> None:
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise SourceError(f"{self.source.name}: frames must be uint8 RGB [H, W, 3], got "
                              f"{getattr(img, 'dtype', type(img).__name__)} {getattr(img, 'shape', '')}")

    def _place(self, t: float, shape: tuple[int, ...]) -> float:
        """The frame's time (strictly increasing); moves to a new segment where one starts."""
        new_segment = False
        if self._last_shape is not None and shape != self._last_shape:
            self.resolution_changes += 1
            new_segment = True
        if getattr(self.source, "segment", 0) != self._source_segment:
            self._source_segment = self.source.segment
            new_segment = True
        if t <= self._last_t:
            t = self._last_t + 10 * EPS
        if self._last_t > -math.inf and t - self._last_t > self.max_gap_s:
            new_segment = True
        self._segment += new_segment
        self._last_t, self._last_shape = t, shape
        return t
