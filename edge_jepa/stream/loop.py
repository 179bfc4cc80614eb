"""The stream loop: capture and inference threads around a FrameRing; the caller renders.

    source --capture thread--> FrameRing --inference thread--> scores -> EventDetector -> events
                                    \\________________ caller: next_update() / iteration (render) ____/

Two policies, chosen by the source (`source.realtime`):

* real time (cameras, streams, files paced at their own rate): capture never waits; inference scores the
  window ending at the newest frame, and windows that became stale meanwhile are dropped and counted;
  the caller gets the newest frame with the newest score (frames it did not take are render drops);
* every window (files and folders read as fast as consumed): one window per tick of the model's clock
  (t0 + k / fps), all scored in order, capture held back by the consumer: deterministic, equal to
  scoring `read_video(path, fps=model fps)` offline; the caller gets one update per tick.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
import warnings
from array import array
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from edge_jepa.models.vjepa2 import VJEPA2
from edge_jepa.runtime.base import Runner
from edge_jepa.stream.events import DetectorStep, Event, EventDetector
from edge_jepa.stream.ring import EPS, CapturedFrame, FrameRing
from edge_jepa.stream.sources import Source, SourceError
from edge_jepa.surprise import SurpriseResult, SurpriseScorer, frame_to_input

SLOW_SOURCE_SHARE = 0.9  # a source announcing fewer than this share of the model's fps gets a warning


@dataclass
class ScoredWindow:
    t: float  # source time of the window's last frame (the score is attributed to it)
    frame_index: int  # capture index of that frame
    result: SurpriseResult
    step: DetectorStep  # the detector's state after this score (threshold, event active, ...)
    latency_s: float  # capture of the last frame -> score available


@dataclass
class StreamUpdate:
    t: float  # when to show it (source time): the frame's time, or the model-clock tick in every-window mode
    frame: CapturedFrame  # the frame to show
    scored: ScoredWindow | None  # the newest score so far (real time: possibly of an earlier frame)
    started: list[Event] = field(default_factory=list)  # events that started since the previous update
    ended: list[Event] = field(default_factory=list)  # events that ended since the previous update
    repeat: bool = False  # the frame was delivered before; this update only carries events


@dataclass
class StreamStats:
    realtime: bool
    wall_s: float  # since start()
    source_s: float  # source time covered
    frames_captured: int
    frames_skipped: int  # skipped by the source: late in real-time pacing, or unreadable
    windows_eligible: int  # captured frames that ended a full window
    windows_scored: int
    windows_dropped: int  # stale when inference got to them (real time only)
    frames_rendered: int
    render_drops: int  # captured frames the caller never took (real time only)
    capture_fps: float
    update_fps: float  # scored windows per second of wall time
    render_fps: float
    latency_ms: dict[str, float]  # frame-to-score latency: p50, p90, p99, max
    reopens: int
    losses: int
    segments: int
    resolution_changes: int
    ring_peak_frames: int
    queue_peak: int

    def to_json(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


class _Channel:
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


def _rate(count: int, first: float | None, last: float | None) -> float:
    return (count - 1) / (last - first) if count > 1 and first is not None and last and last > first else 0.0


class StreamLoop:
    """Surprise on a live source: `start()`, then consume `StreamUpdate`s (iterate, or `next_update`).

    model: any Runner (eager, ExecuTorch, ONNX, CoreML bundle), a VJEPA2, or anything `Runner.open` takes.
    source: an opened `Source` (see `open_source`); its `realtime` flag chooses the policy (module docstring).
    detector: the EventDetector (default settings if None).
    on_event: called in the inference thread as each event ends (before the caller hears of it) — the
              place for durable logging (`EventLog.append`); it may set `event.clip`.
    max_gap_s: a gap between frames longer than this (or 2.5 frame intervals of a slower source) starts a new
               segment: no window spans it.
    keep_trace: keep (t, score, threshold, active) of every scored window for `trace()` (32 bytes each).
    """

    def __init__(self, model: Runner | VJEPA2 | str, source: Source, *, detector: EventDetector | None = None,
                 on_event: Callable[[Event], None] | None = None, max_gap_s: float = 1.0,
                 keep_trace: bool = True, queue_size: int = 8):
        self.scorer = SurpriseScorer(model)
        self.runner = self.scorer.runner
        self.source = source
        self.realtime = bool(source.realtime)
        self.detector = detector or EventDetector()
        self.on_event = on_event
        self.fps = float(self.runner.fps)
        self.frames_per_window = self.scorer.frames_per_window
        self.span_s = (self.frames_per_window - 1) / self.fps
        nominal = source.nominal_fps
        if nominal and nominal < SLOW_SOURCE_SHARE * self.fps:
            warnings.warn(
                f"{source.name}: the source delivers {nominal:g} fps but the model works at {self.fps:g} fps, so its "
                f"windows repeat frames, which the model sees as stop-and-go motion: expect false events. Use a "
                f"source at >= {self.fps:g} fps, or a model trained at the source's rate (edge-jepa pretrain --fps)",
                RuntimeWarning, stacklevel=2)
        # a slow source (an image folder at 0.5 fps) has long gaps by nature: only longer ones split segments
        self.max_gap_s = max(max_gap_s, 2.5 / nominal) if nominal else max_gap_s
        self.keep_trace = keep_trace
        self.ring = FrameRing(self.span_s, realtime=self.realtime)
        self._channel = _Channel(queue_size)
        self._stop, self._paused, self._recalibrate = threading.Event(), threading.Event(), threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._errors: list[BaseException] = []
        self._events: deque[tuple[str, Event]] = deque()
        self._latest: ScoredWindow | None = None
        self._inference_done = threading.Event()
        self.finished = False
        # statistics
        self._t_start: float | None = None
        self._captured, self._cap_first, self._cap_last = 0, None, None
        self._scored, self._dropped, self._inf_first, self._inf_last = 0, 0, None, None
        self._rendered, self._render_drops, self._ren_first, self._ren_last = 0, 0, None, None
        self._last_rendered = -1
        self._last_frame: CapturedFrame | None = None
        self._last_t = math.nan
        self._latencies = np.zeros(36_000)  # a fixed ring: the newest latencies (s), memory flat
        self._n_latencies = 0
        self.recent: deque[tuple[float, float, float]] = deque(maxlen=1024)  # (t, score, threshold)
        self._trace = {k: array("d") for k in ("t", "score", "threshold", "active")}
        self.segments, self.resolution_changes = 0, 0
        self._t_first: float | None = None
        self._t_last: float | None = None
        self._wall_offset: float | None = None  # time.time() - source time, for live sources

    # -- control ---------------------------------------------------------------------------------------

    def start(self) -> StreamLoop:
        if self._threads:
            raise RuntimeError("StreamLoop already started")
        if not self.source.is_open:
            self.source.open()
        self._t_start = time.monotonic()
        infer = self._infer_realtime if self.realtime else self._infer_every_window
        self._threads = [threading.Thread(target=self._capture, name="edge-jepa-capture", daemon=True),
                         threading.Thread(target=self._guard(infer), name="edge-jepa-inference", daemon=True)]
        for th in self._threads:
            th.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop capture and inference; an open event is closed (and handed to on_event) before this returns."""
        self._stop.set()
        self.source.interrupt()
        self.ring.close()
        for th in self._threads:
            th.join(timeout)
        self._channel.finish()

    def pause(self, paused: bool = True) -> None:
        """Pause scoring (capture keeps running so a camera's buffer stays fresh)."""
        if paused:
            self._paused.set()
        else:
            self._paused.clear()

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    def recalibrate(self) -> None:
        """Relearn the scene: the detector restarts its warm-up at the next score."""
        self._recalibrate.set()

    def __enter__(self) -> StreamLoop:
        return self.start() if not self._threads else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- capture ---------------------------------------------------------------------------------------

    def _capture(self) -> None:
        index, segment, last_t, last_shape = 0, 0, -math.inf, None
        source_segment = getattr(self.source, "segment", 0)
        try:
            while not self._stop.is_set():
                sf = self.source.read()
                if sf is None:
                    break
                img = sf.image
                if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
                    raise SourceError(f"{self.source.name}: frames must be uint8 RGB [H, W, 3], got "
                                      f"{getattr(img, 'dtype', type(img).__name__)} {getattr(img, 'shape', '')}")
                new_segment = False
                if last_shape is not None and img.shape != last_shape:
                    self.resolution_changes += 1
                    new_segment = True
                if getattr(self.source, "segment", 0) != source_segment:
                    source_segment = self.source.segment
                    new_segment = True
                t = float(sf.t)
                if t <= last_t:
                    t = last_t + 10 * EPS
                if last_t > -math.inf and t - last_t > self.max_gap_s:
                    new_segment = True
                segment += new_segment
                last_t, last_shape = t, img.shape
                now = time.monotonic()
                frame = CapturedFrame(img, t, index, now, segment)
                if self._wall_offset is None and self.source.live:
                    self._wall_offset = time.time() - t
                if not self.ring.put(frame, self._stop):
                    break
                self._captured, self._cap_last = self._captured + 1, now
                self._cap_first = self._cap_first or now
                self._t_first = t if self._t_first is None else self._t_first
                self._t_last = t
                index += 1
                self.segments = segment + 1
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            self._errors.append(e)
        finally:
            self.ring.close()

    # -- inference -------------------------------------------------------------------------------------

    def _guard(self, body: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                body()
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                self._errors.append(e)
                self._stop.set()
                self.source.interrupt()
                self.ring.close()
            finally:
                try:
                    ended = self.detector.finish("shutdown" if self._stop.is_set() else "end")
                    if ended is not None:
                        self._event_ended(ended)
                except BaseException as e:  # noqa: BLE001
                    self._errors.append(e)
                self._inference_done.set()
                self._channel.finish()
                self.ring.close()  # wakes a caller waiting in next_update
        return run

    def _infer_realtime(self) -> None:
        last_index, last_seq = -1, None
        while not self._stop.is_set():
            self.ring.wait(lambda f, closed, last=last_index: closed or self._stop.is_set()
                           or (f is not None and f.index > last and not self._paused.is_set()), 0.25)
            frame = self.ring.newest()
            if frame is None or frame.index <= last_index:
                if self.ring.closed:
                    return
                continue
            if self._paused.is_set():
                last_index, last_seq = frame.index, None  # nothing is stale while paused
                continue
            last_index = frame.index
            samples = [frame.t - (self.frames_per_window - 1 - j) / self.fps for j in range(self.frames_per_window)]
            window = self.ring.window(samples)
            if window is None:
                continue
            if last_seq is not None and frame.seq > last_seq:
                self._dropped += frame.seq - last_seq - 1
            last_seq = frame.seq
            self._score(window)

    def _infer_every_window(self) -> None:
        step, T = 1.0 / self.fps, self.frames_per_window
        self.ring.wait(lambda f, closed: f is not None or closed or self._stop.is_set())
        if self.ring.first_t is None:
            return
        t0, k = self.ring.first_t, 0
        while not self._stop.is_set():
            tick = t0 + k * step
            self.ring.wait(lambda f, closed, tick=tick: closed or self._stop.is_set()
                           or (f is not None and f.t > tick + EPS))
            if self._stop.is_set():
                return
            while self._paused.is_set() and not self._stop.is_set():
                time.sleep(0.05)
            newest = self.ring.newest()
            if self.ring.closed and (newest is None or tick > newest.t + 1e-9):
                return
            end = self.ring.frame_at(tick)
            scored = None
            if k >= T - 1:
                window = self.ring.window([t0 + (k - T + 1 + j) * step for j in range(T)])
                if window is not None:
                    scored = self._score(window)
            self._channel.put(StreamUpdate(tick, end, scored, *self._drain_events()), self._stop)
            self.ring.release(t0 + (k + 2 - T) * step)
            k += 1

    def _score(self, window: list[CapturedFrame]) -> ScoredWindow:
        end = window[-1]
        size, mode = self.scorer.size, self.scorer.mode
        for f in window:
            if f.prep is None:
                f.prep = frame_to_input(f.image, size, mode)
        clip = torch.from_numpy(np.stack([f.prep for f in window], axis=1)[None])
        result = self.scorer.score_clips(clip, [end.index])[0]
        if self._recalibrate.is_set():
            self._recalibrate.clear()
            ended = self.detector.recalibrate()
            if ended is not None:
                self._event_ended(ended)
        step = self.detector.update(end.t, result.score, frame_index=end.index, heatmap=result.heatmap)
        now = time.monotonic()
        scored = ScoredWindow(end.t, end.index, result, step, now - end.wall)
        self._latencies[self._n_latencies % len(self._latencies)] = scored.latency_s
        self._n_latencies += 1
        self._scored, self._inf_last = self._scored + 1, now
        self._inf_first = self._inf_first or now
        self.recent.append((end.t, result.score, step.threshold))
        if self.keep_trace:
            for key, value in (("t", end.t), ("score", result.score), ("threshold", step.threshold),
                               ("active", float(step.active))):
                self._trace[key].append(value)
        if step.started is not None:
            self._set_wall_time(step.started)
            with self._lock:
                self._events.append(("started", step.started))
        if step.ended is not None:
            self._event_ended(step.ended)
        with self._lock:
            self._latest = scored
        return scored

    def _set_wall_time(self, event: Event) -> None:
        if self._wall_offset is not None and event.wall_time is None:
            event.wall_time = dt.datetime.fromtimestamp(self._wall_offset + event.start_s, dt.UTC).isoformat(
                timespec="milliseconds")

    def _event_ended(self, event: Event) -> None:
        self._set_wall_time(event)
        if self.on_event is not None:
            self.on_event(event)
        with self._lock:
            self._events.append(("ended", event))

    def _drain_events(self) -> tuple[list[Event], list[Event]]:
        with self._lock:
            items, self._events = list(self._events), deque()
        return [e for kind, e in items if kind == "started"], [e for kind, e in items if kind == "ended"]

    # -- the caller's side -----------------------------------------------------------------------------

    def next_update(self, timeout: float | None = None) -> StreamUpdate | None:
        """The next update, or None on timeout or at the end (then `finished` is True).

        Errors of the capture or inference thread (e.g. a source that could not be reopened) are raised here
        once the stream has ended.
        """
        if not self._threads:
            self.start()
        if self.finished:
            return None
        update = self._next_realtime(timeout) if self.realtime else self._next_every_window(timeout)
        if update is not None:
            if not update.repeat:
                now = time.monotonic()
                self._rendered, self._ren_last = self._rendered + 1, now
                self._ren_first = self._ren_first or now
            self._last_frame, self._last_t = update.frame, update.t
        elif self.finished and self._errors:
            raise self._errors[0]
        return update

    def _next_every_window(self, timeout: float | None) -> StreamUpdate | None:
        update = self._channel.get(timeout)
        if update is None and self._channel.done and not self._channel.items:
            started, ended = self._drain_events()
            if (started or ended) and self._last_frame is not None:
                return StreamUpdate(self._last_t, self._last_frame, self._latest, started, ended, repeat=True)
            self.finished = True
        return update

    def _next_realtime(self, timeout: float | None) -> StreamUpdate | None:
        last = self._last_rendered
        done = lambda: self._inference_done.is_set() and self.ring.closed  # noqa: E731
        self.ring.wait(lambda f, closed: (f is not None and f.index > last) or (closed and done()), timeout)
        frame = self.ring.newest()
        with self._lock:
            latest = self._latest
        if frame is not None and frame.index > last:
            if last >= 0:
                self._render_drops += frame.index - last - 1
            self._last_rendered = frame.index
            return StreamUpdate(frame.t, frame, latest, *self._drain_events())
        if not done():  # timed out
            return None
        started, ended = self._drain_events()
        if (started or ended) and self._last_frame is not None:
            return StreamUpdate(self._last_t, self._last_frame, latest, started, ended, repeat=True)
        self.finished = True
        return None

    def __iter__(self) -> Iterator[StreamUpdate]:
        while True:
            update = self.next_update(timeout=0.5)
            if update is not None:
                yield update
            elif self.finished:
                return

    # -- results ---------------------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Cheap running counters: captured, scored, dropped, rendered."""
        return {"captured": self._captured, "scored": self._scored, "dropped": self._dropped,
                "rendered": self._rendered}

    @property
    def latest(self) -> ScoredWindow | None:
        with self._lock:
            return self._latest

    @property
    def error(self) -> BaseException | None:
        return self._errors[0] if self._errors else None

    def trace(self) -> dict[str, np.ndarray]:
        """Every scored window so far: arrays t, score, threshold (NaN while calibrating), active (0/1)."""
        return {k: np.frombuffer(v, dtype=np.float64).copy() for k, v in self._trace.items()}

    def stats(self) -> StreamStats:
        lat = self._latencies[: min(self._n_latencies, len(self._latencies))] * 1000.0
        pct = {f"p{q}": float(np.percentile(lat, q)) if len(lat) else math.nan for q in (50, 90, 99)}
        pct["max"] = float(lat.max()) if len(lat) else math.nan
        eligible = self.ring.eligible
        return StreamStats(
            realtime=self.realtime,
            wall_s=time.monotonic() - self._t_start if self._t_start else 0.0,
            source_s=(self._t_last - self._t_first) if self._t_first is not None else 0.0,
            frames_captured=self._captured, frames_skipped=int(self.source.skipped),
            windows_eligible=eligible, windows_scored=self._scored, windows_dropped=self._dropped,
            frames_rendered=self._rendered, render_drops=self._render_drops,
            capture_fps=_rate(self._captured, self._cap_first, self._cap_last),
            update_fps=_rate(self._scored, self._inf_first, self._inf_last),
            render_fps=_rate(self._rendered, self._ren_first, self._ren_last),
            latency_ms=pct, reopens=int(getattr(self.source, "reopens", 0)),
            losses=int(getattr(self.source, "losses", 0)),
            segments=max(self.segments, 1 if self._captured else 0), resolution_changes=self.resolution_changes,
            ring_peak_frames=self.ring.peak_frames, queue_peak=self._channel.peak,
        )
