"""The stream loop: capture and inference threads around a FrameRing; the caller renders.

    source --capture thread--> FrameRing --inference thread--> scores -> EventDetector -> events
                                    \\________________ caller: next_update() / iteration (render) ____/

The parts: capture (edge_jepa.stream.capture), the inference policy chosen by the source's `realtime` flag
(edge_jepa.stream.policy: real time, or every window in order) and the counters behind `stats()`
(edge_jepa.stream.stats). This module scores windows, tracks events and hands updates to the caller.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator

import numpy as np
import torch

from edge_jepa.models.vjepa2 import VJEPA2
from edge_jepa.models.world import FrameCausalJEPA
from edge_jepa.photometric import check_photometric
from edge_jepa.roi import RoiMask
from edge_jepa.runtime.base import Runner
from edge_jepa.stream.capture import Capture
from edge_jepa.stream.events import Event, EventDetector
from edge_jepa.stream.evidence import PeakTracker
from edge_jepa.stream.policy import EveryWindowPolicy, RealtimePolicy
from edge_jepa.stream.ring import CapturedFrame, FrameRing
from edge_jepa.stream.sources import Source
from edge_jepa.stream.stats import LoopCounters, StreamStats
from edge_jepa.stream.update import ScoredWindow, StreamUpdate
from edge_jepa.surprise import FrameCausalScorer, as_scorer, scorer_for_source

SLOW_SOURCE_SHARE = 0.9  # a source announcing fewer than this share of the model's fps gets a warning


class StreamLoop:
    """Surprise on a live source: `start()`, then consume `StreamUpdate`s (iterate, or `next_update`).

    model: any Runner (eager, ExecuTorch, ONNX, CoreML bundle), a VJEPA2, or anything `Runner.open` takes; or a
           frame-causal model (its path), which scores the source at the source's own rate, each frame through
           the encoder once and the predictor over the window's cached tokens.
    source: an opened `Source` (see `open_source`); its `realtime` flag chooses the policy (module docstring).
    detector: the EventDetector (default settings if None).
    on_event: called in the inference thread as each event ends (before the caller hears of it) — the
              place for durable logging (`EventLog.append`); it may set `event.clip`.
    max_gap_s: a gap between frames longer than this (or 2.5 frame intervals of a slower source) starts a new
               segment: no window spans it.
    keep_trace: keep (t, score, threshold, active) of every scored window for `trace()` (32 bytes each).
    view_width: the capture thread also keeps each frame shrunk to at most this width in `frame.view`, for
                drawing (None: no copy). The model's input is always prepared there, once per frame.
    photometric: "gain" normalizes exposure / white-balance changes away, "match" likewise by whole-frame
                 statistics, "off" (the scorers' default) not (edge_jepa.photometric); None keeps the scorer's.
    mask: regions of interest (a RoiMask, a picture path or an array; edge_jepa.roi): only its tokens count in the
          score and the heatmap. None keeps the scorer's.
    """

    def __init__(self, model: Runner | VJEPA2 | FrameCausalJEPA | str, source: Source, *,
                 detector: EventDetector | None = None, on_event: Callable[[Event], None] | None = None,
                 max_gap_s: float = 1.0, keep_trace: bool = True, queue_size: int = 8,
                 view_width: int | None = None, photometric: str | None = None,
                 mask: RoiMask | str | os.PathLike | np.ndarray | None = None):
        scorer = as_scorer(model)
        if photometric is not None:
            scorer.photometric = check_photometric(photometric)
        if mask is not None:
            scorer.set_mask(mask)
        self.scorer = scorer_for_source(scorer, source.nominal_fps)
        self.causal = isinstance(self.scorer, FrameCausalScorer)
        self.source = source
        self.realtime = bool(source.realtime)
        self.detector = detector or EventDetector()
        self._use_model_prior()
        self.on_event = on_event
        self.fps = float(self.scorer.fps)
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
        self.stop_event, self._paused, self._recalibrate = threading.Event(), threading.Event(), threading.Event()
        self.counters = LoopCounters(keep_trace)
        self.recent = self.counters.recent  # (t, score, threshold) of the newest windows
        self.capture = Capture(source, self.ring, self.counters, self.max_gap_s, self.stop_event,
                               prepare=self._prepare, view_width=view_width)
        self.policy = RealtimePolicy(self) if self.realtime else EveryWindowPolicy(self, queue_size)
        self.peaks = PeakTracker(self.scorer.size, self.scorer.mode, lambda: self.detector.heat_baseline)
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._errors: list[BaseException] = []
        self._events: deque[tuple[str, Event]] = deque()
        self._latest: ScoredWindow | None = None
        self._inference_done = threading.Event()
        self.finished = False
        self._t_start: float | None = None
        self._last_frame: CapturedFrame | None = None
        self._last_t = math.nan
        self._prep_segment: int | None = None  # segment of the last frame prepared for the model

    def _use_model_prior(self) -> None:
        """Give the detector the model's surprise prior (edge_jepa.stream.prior) so it judges from the first
        window; a model without one gets a one-line warning that its first seconds calibrate."""
        from edge_jepa.stream.prior import prior_for

        det = self.detector
        if det.prior is not None or not det.use_prior:
            return
        prior = prior_for(self.scorer)
        if prior is not None:
            det.set_prior(prior)
        elif det.warmup_s > 0:
            warnings.warn(
                f"{self.scorer.config.name} carries no surprise prior for {self.scorer.fps:g} fps: the first "
                f"{det.warmup_s:g} s of scores calibrate the detector (what stands out in them is reported when they "
                "end, flagged 'warmup'); store one with `edge-jepa calibrate MODEL_DIR`",
                RuntimeWarning, stacklevel=3)

    # -- control ---------------------------------------------------------------------------------------

    def start(self) -> StreamLoop:
        if self._threads:
            raise RuntimeError("StreamLoop already started")
        if not self.source.is_open:
            self.source.open()
        self._t_start = time.monotonic()
        self._threads = [threading.Thread(target=self._capture, name="edge-jepa-capture", daemon=True),
                         threading.Thread(target=self._infer, name="edge-jepa-inference", daemon=True)]
        for th in self._threads:
            th.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop capture and inference; an open event is closed (and handed to on_event) before this returns."""
        self.stop_event.set()
        self.source.interrupt()
        self.ring.close()
        for th in self._threads:
            th.join(timeout)
        self.policy.finish()

    def pause(self, paused: bool = True) -> None:
        """Pause scoring (capture keeps running so a camera's buffer stays fresh)."""
        if paused:
            self._paused.set()
        else:
            self._paused.clear()

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    @property
    def stopping(self) -> bool:
        return self.stop_event.is_set()

    @property
    def inference_done(self) -> bool:
        return self._inference_done.is_set()

    @property
    def segments(self) -> int:
        return self.capture.segments

    @property
    def resolution_changes(self) -> int:
        return self.capture.resolution_changes

    def recalibrate(self) -> None:
        """Relearn the scene: the detector restarts its warm-up at the next score."""
        self._recalibrate.set()

    def __enter__(self) -> StreamLoop:
        return self.start() if not self._threads else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the two threads -------------------------------------------------------------------------------

    def _capture(self) -> None:
        try:
            self.capture.run()
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            self._errors.append(e)
        finally:
            self.ring.close()

    def _infer(self) -> None:
        try:
            self.policy.infer()
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            self._errors.append(e)
            self.stop_event.set()
            self.source.interrupt()
            self.ring.close()
        finally:
            try:
                for ev in self.detector.review_warmup():  # the stream ended inside the warm-up: nothing unjudged
                    self._flagged(ev)
                ended = self.detector.finish("shutdown" if self.stopping else "end")
                if ended is not None:
                    self._event_ended(ended)
            except BaseException as e:  # noqa: BLE001
                self._errors.append(e)
            self._inference_done.set()
            self.policy.finish()
            self.ring.close()  # wakes a caller waiting in next_update

    # -- scoring and events (inference thread) ---------------------------------------------------------

    def _step_frames(self, window: list[CapturedFrame]):
        """The end frame's result from a frame-causal bundle's stream step: the window's frames not yet stepped go
        through it in order; if frames were skipped since the last step (a dropped frame, a new segment), the
        cache restarts from the window's first frame, so each prediction sees only consecutive frames."""
        pushed = getattr(self, "_stepped_index", None)
        new = [i for i, f in enumerate(window) if pushed is None or f.index > pushed]
        if not new or new[0] == 0 or window[new[0] - 1].index != pushed:
            self.scorer.reset()
            new = list(range(len(window)))
        result = None
        for i in new:
            result = self.scorer.push_input(window[i].prep)
        self._stepped_index = window[-1].index
        if result is not None:
            result.frame_index = window[-1].index  # the source's index (the scorer counts frames stepped)
        else:
            raise RuntimeError(f"the stream step gave no score for frame {window[-1].index} "
                               f"({len(window)} frames in the window, {self.scorer.frames_per_window} needed)")
        return result

    def _prepare(self, image: np.ndarray, t: float, segment: int) -> np.ndarray:
        """The model's input for a frame (capture thread, in capture order): the scorer's preprocessing with its
        photometric normalization; a new segment restarts the photometric reference."""
        if segment != self._prep_segment:
            self.scorer.normalizer.reset()
            self._prep_segment = segment
        return self.scorer.prepare(image, t)

    def score(self, window: list[CapturedFrame]) -> ScoredWindow:
        """Score one window, step the detector, record the events and counters; the ScoredWindow."""
        end = window[-1]
        began = time.monotonic()
        if self.causal and self.scorer.stepper is not None:  # a bundle's KV stream step, one call per frame
            result = self._step_frames(window)
        elif self.causal:  # each frame through the encoder once, the predictor over the window's cached tokens
            for f in window:
                if f.tokens is None:
                    f.tokens = self.scorer.encode(f.prep)
            result = self.scorer.score_tokens([f.tokens for f in window], end.index)
        else:
            clip = torch.from_numpy(np.stack([f.prep for f in window], axis=1)[None])
            result = self.scorer.score_clips(clip, [end.index])[0]
        if self._recalibrate.is_set():
            self._recalibrate.clear()
            ended = self.detector.recalibrate()
            if ended is not None:
                self._event_ended(ended)
        step = self.detector.update(end.t, result.score, frame_index=end.index, heatmap=result.heatmap)
        self.peaks.observe(end.index, result.score, end.image, result.heatmap, step.state, step.started,
                           self.detector.open_event)
        now = time.monotonic()
        self.counters.on_process(now - began)
        scored = ScoredWindow(end.t, end.index, result, step, now - end.wall)
        self.counters.on_score(end.t, result.score, step.threshold, step.active, scored.latency_s, now, low=step.low)
        if step.started is not None:
            self._set_wall_time(step.started)
            with self._lock:
                self._events.append(("started", step.started))
        if step.ended is not None:
            self._event_ended(step.ended)
        for ev in step.flagged:  # found in the warm-up, in hindsight: started and ended at once
            self._flagged(ev)
        with self._lock:
            self._latest = scored
        return scored

    def _flagged(self, event: Event) -> None:
        self._set_wall_time(event)
        with self._lock:
            self._events.append(("started", event))
        self._event_ended(event)

    def _set_wall_time(self, event: Event) -> None:
        offset = self.capture.wall_offset
        if offset is not None and event.wall_time is None:
            event.wall_time = dt.datetime.fromtimestamp(offset + event.start_s, dt.UTC).isoformat(
                timespec="milliseconds")

    def _event_ended(self, event: Event) -> None:
        self._set_wall_time(event)
        if self.on_event is not None:
            self.on_event(event)  # it may take the peak frame: self.peaks.image(event.id)
        self.peaks.forget(event.id)
        with self._lock:
            self._events.append(("ended", event))

    def drain_events(self) -> tuple[list[Event], list[Event]]:
        """(started, ended) events since the last drain."""
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
        update = self.policy.next_update(timeout)
        if update is not None:
            if not update.repeat:
                self.counters.on_render(time.monotonic())
            self._last_frame, self._last_t = update.frame, update.t
        elif self.finished and self._errors:
            raise self._errors[0]
        return update

    def final_update(self, latest: ScoredWindow | None) -> StreamUpdate | None:
        """At the end of the stream: an update carrying the last events (on the last frame), else None and
        `finished` is set."""
        started, ended = self.drain_events()
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
        return self.counters.counts()

    @property
    def latest(self) -> ScoredWindow | None:
        with self._lock:
            return self._latest

    @property
    def error(self) -> BaseException | None:
        return self._errors[0] if self._errors else None

    def trace(self) -> dict[str, np.ndarray]:
        """Every scored window so far: arrays t, score, threshold and low (NaN while calibrating), active (0/1)."""
        return self.counters.trace()

    def stats(self) -> StreamStats:
        c = self.counters
        capture_fps, update_fps, render_fps = c.fps()
        return StreamStats(
            realtime=self.realtime,
            wall_s=time.monotonic() - self._t_start if self._t_start else 0.0,
            source_s=c.source_seconds(),
            frames_captured=c.captured, frames_skipped=int(self.source.skipped),
            windows_eligible=self.policy.eligible, windows_scored=c.scored, windows_dropped=c.dropped,
            frames_rendered=c.rendered, render_drops=c.render_drops,
            capture_fps=capture_fps, update_fps=update_fps, render_fps=render_fps,
            latency_ms=c.latency_ms(self.realtime), process_ms=c.process_ms(),
            reopens=int(getattr(self.source, "reopens", 0)),
            losses=int(getattr(self.source, "losses", 0)),
            segments=max(self.segments, 1 if c.captured else 0), resolution_changes=self.resolution_changes,
            ring_peak_frames=self.ring.peak_frames, queue_peak=self.policy.queue_peak,
        )
