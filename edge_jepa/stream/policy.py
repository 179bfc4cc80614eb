"""The stream loop's two inference policies: which windows are scored and what the caller is handed.

* `RealtimePolicy` (cameras, streams, files paced at their own rate): capture never waits; inference scores
  the window ending at the newest frame, windows that became stale meanwhile are dropped and counted; the
  caller gets the newest frame with the newest score (frames it did not take are render drops).
* `EveryWindowPolicy` (files and folders read as fast as consumed): one window per tick of the model's clock
  (t0 + k / fps), all scored in order, capture held back by the consumer through a bounded channel:
  deterministic, equal to scoring `read_video(path, fps=model fps)` offline; one update per tick.

Both run `infer()` in the inference thread and `next_update(timeout)` in the caller's thread; the loop they
serve (`StreamLoop`) owns the ring, the scorer, the events and the counters.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import TYPE_CHECKING

from edge_jepa.stream.ring import EPS
from edge_jepa.stream.update import StreamUpdate

if TYPE_CHECKING:
    from edge_jepa.stream.loop import StreamLoop


class Channel:
    """A bounded FIFO between the inference thread and the caller (every-window mode)."""

    def __init__(self, maxsize: int):
        self.items: deque = deque()
        self.maxsize, self.peak, self.done = maxsize, 0, False
        self.cond = threading.Condition()

    def put(self, item: object, stop: threading.Event, force: bool = False) -> None:
        with self.cond:
            while not force and len(self.items) >= self.maxsize and not stop.is_set():
                self.cond.wait(0.1)
            self.items.append(item)
            self.peak = max(self.peak, len(self.items))
            self.cond.notify_all()

    def get(self, timeout: float | None) -> object | None:
        with self.cond:
            if not self.cond.wait_for(lambda: self.items or self.done, timeout):
                return None
            if not self.items:
                return None
            item = self.items.popleft()
            self.cond.notify_all()
            return item

    def finish(self) -> None:
        with self.cond:
            self.done = True
            self.cond.notify_all()


class RealtimePolicy:
    """Score the newest window; drop stale ones; hand the caller the newest frame."""

    queue_peak = 0

    def __init__(self, loop: StreamLoop):
        self.loop = loop
        self._last_rendered = -1

    @property
    def eligible(self) -> int:
        """Windows that could have been scored: captured frames that end a full window."""
        return self.loop.ring.eligible

    def infer(self) -> None:
        loop, ring = self.loop, self.loop.ring
        last_index, last_seq = -1, None
        while not loop.stopping:
            ring.wait(lambda f, closed, last=last_index: closed or loop.stopping
                      or (f is not None and f.index > last and not loop.paused), 0.25)
            frame = ring.newest()
            if frame is None or frame.index <= last_index:
                if ring.closed:
                    return
                continue
            if loop.paused:
                last_index, last_seq = frame.index, None  # nothing is stale while paused
                continue
            last_index = frame.index
            T = loop.frames_per_window
            window = ring.window([frame.t - (T - 1 - j) / loop.fps for j in range(T)])
            if window is None:
                continue
            if last_seq is not None and frame.seq > last_seq:
                loop.counters.dropped += frame.seq - last_seq - 1
            last_seq = frame.seq
            loop.score(window)

    def next_update(self, timeout: float | None) -> StreamUpdate | None:
        loop, ring, last = self.loop, self.loop.ring, self._last_rendered
        done = lambda: loop.inference_done and ring.closed  # noqa: E731
        ring.wait(lambda f, closed: (f is not None and f.index > last) or (closed and done()), timeout)
        frame = ring.newest()
        latest = loop.latest
        if frame is not None and frame.index > last:
            if last >= 0:
                loop.counters.render_drops += frame.index - last - 1
            self._last_rendered = frame.index
            return StreamUpdate(frame.t, frame, latest, *loop.drain_events())
        if not done():  # timed out
            return None
        return loop.final_update(latest)

    def finish(self) -> None:
        pass


class EveryWindowPolicy:
    """Score one window per tick of the model's clock, in order; hand each to the caller through a channel."""

    def __init__(self, loop: StreamLoop, queue_size: int):
        self.loop = loop
        self.channel = Channel(queue_size)
        self.eligible = 0  # ticks of the model's clock with a full window (frames of a slower source repeat)

    @property
    def queue_peak(self) -> int:
        return self.channel.peak

    def infer(self) -> None:
        loop, ring = self.loop, self.loop.ring
        ring.wait(lambda f, closed: f is not None or closed or loop.stopping)
        if ring.first_t is None:
            return
        t0, k = ring.first_t, 0
        while not loop.stopping and self._tick(t0, k):
            k += 1

    def _tick(self, t0: float, k: int) -> bool:
        """Score (once a full window exists) and hand on tick k; False when the stream has ended."""
        loop, ring = self.loop, self.loop.ring
        step, T = 1.0 / loop.fps, loop.frames_per_window
        tick = t0 + k * step
        ring.wait(lambda f, closed: closed or loop.stopping or (f is not None and f.t > tick + EPS))
        if loop.stopping:
            return False
        while loop.paused and not loop.stopping:
            time.sleep(0.05)
        newest = ring.newest()
        if ring.closed and (newest is None or tick > newest.t + 1e-9):
            return False
        end = ring.frame_at(tick)
        scored = None
        if k >= T - 1:
            window = ring.window([t0 + (k - T + 1 + j) * step for j in range(T)])
            if window is not None:
                self.eligible += 1
                scored = loop.score(window)
        self.channel.put(StreamUpdate(tick, end, scored, *loop.drain_events()), loop.stop_event)
        ring.release(t0 + (k + 2 - T) * step)
        return True

    def next_update(self, timeout: float | None) -> StreamUpdate | None:
        update = self.channel.get(timeout)
        if update is None and self.channel.done and not self.channel.items:
            return self.loop.final_update(self.loop.latest)
        return update

    def finish(self) -> None:
        self.channel.finish()
