"""Drawing stream updates (frame, surprise heatmap, score line, rates) and recording event clips."""

from __future__ import annotations

import math
import os
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_jepa.stream.events import CANDIDATE, EVENT, Event
from edge_jepa.stream.evidence import top_tokens
from edge_jepa.stream.loop import StreamLoop, StreamUpdate
from edge_jepa.viz import VideoWriter, annotate, model_view_region


def clip_name(event_id: int) -> str:
    """The clip of an event, relative to the output folder."""
    return f"clips/event_{event_id:04d}.mp4"


class Renderer:
    """Annotated frames for a StreamLoop: the heatmap of *excess* surprise (each patch's error above that
    patch's running normal) where it is, one cell per token, with the top tokens outlined while a candidate or an
    event is open (the same tokens as the event's region); the label (time, score, threshold and lower level,
    state); a status line (capture, update and render rates, frame-to-score latency, drops) and the scrolling
    score line with the threshold (solid) and the lower hysteresis level (dashed).
    """

    def __init__(self, loop: StreamLoop, *, min_width: int = 320, max_width: int = 960, history: int = 400):
        self.loop, self.min_width, self.max_width, self.history = loop, min_width, max_width, history
        self._region_cache: dict[tuple[int, int], tuple[float, float, float, float]] = {}
        self._rates: deque[tuple[float, int, int, int]] = deque(maxlen=64)  # (wall, captured, scored, rendered)
        self._status = ""
        self._status_at = 0.0

    def heat(self, update: StreamUpdate) -> tuple[np.ndarray | None, float]:
        """(map, vmax) to overlay: each patch's excess over its running normal; full colour where a patch
        carries the excess of a threshold crossing concentrated on a quarter of the view."""
        s = update.scored
        det = self.loop.detector
        if s is None or s.step.calibrating or det.heat_baseline is None:
            return None, math.nan
        heat = s.result.heatmap
        if det.heat_baseline.shape != heat.shape:
            return None, math.nan
        excess = np.maximum(heat - det.heat_baseline, 0.0)
        vmax = (s.step.threshold - s.step.baseline) * 4.0
        return excess, vmax

    def region(self, frame: np.ndarray) -> tuple[float, float, float, float]:
        key = frame.shape[:2]
        if key not in self._region_cache:
            self._region_cache[key] = model_view_region(*key, self.loop.scorer.size, self.loop.scorer.mode)
        return self._region_cache[key]

    def status(self) -> str:
        """Real time: rates over the last few seconds, latency of the newest score, drops so far (refreshed
        twice a second). Every-window mode: the mode (deterministic, so the annotated video is too)."""
        loop = self.loop
        if not loop.realtime:  # offline analysis: wall-clock rates would make the video non-reproducible
            return f"every window at {loop.fps:g} fps ({loop.source.name})"
        now = time.monotonic()
        if now - self._status_at < 0.5 and self._status:
            return self._status
        counts = loop.counts()
        self._rates.append((now, counts["captured"], counts["scored"], counts["rendered"]))
        while len(self._rates) > 2 and now - self._rates[0][0] > 3.0:
            self._rates.popleft()
        w0, c0, s0, r0 = self._rates[0]
        span = now - w0
        _, c, sc, r = self._rates[-1]
        rates = [(c - c0) / span, (sc - s0) / span, (r - r0) / span] if span > 0.2 else [math.nan] * 3
        latest = loop.latest
        lat = f"{latest.latency_s * 1000:.0f} ms" if latest else "-"
        self._status = (f"cap {rates[0]:.0f}/s  score {rates[1]:.1f}/s  draw {rates[2]:.0f}/s  lat {lat}  "
                        f"drop {counts['dropped']}")
        self._status_at = now
        return self._status

    @staticmethod
    def label(update: StreamUpdate) -> str:
        """The label: time, score, levels and state, consistent with each other: an event whose score fell under
        the threshold but not under the lower level says that it is held (second line)."""
        s = update.scored
        if s is None:
            return f"{update.t:7.1f}s  waiting for a full window"
        score, step = s.result.score, s.step
        if step.calibrating:
            return f"{update.t:7.1f}s  surprise {score:.3f}  CALIBRATING"
        head = f"{update.t:7.1f}s  surprise {score:.3f}  thr {step.threshold:.3f}"
        if not step.active:
            return f"{head}  {step.state}"
        if score > step.threshold:
            return f"{head}  EVENT"
        if score > step.low:
            return f"{head}\nEVENT (holding above low {step.low:.3f})"
        return f"{head}\nEVENT (ending: under low {step.low:.3f})"

    def draw(self, update: StreamUpdate, *, paused: bool = False) -> np.ndarray:
        s = update.scored
        label = self.label(update)
        if paused:
            label += "  [PAUSED]"
        heat, vmax = self.heat(update)
        outline = top_tokens(heat) if heat is not None and s.step.state in (CANDIDATE, EVENT) else None
        recent = list(self.loop.recent)[-self.history:]
        calibrated = s is not None and not s.step.calibrating
        frame = update.frame
        image = frame.view if frame.view is not None else frame.image  # shrunk once at capture (loop's view_width)
        return annotate(image, heatmap=heat, vmax=vmax, history=[v for _, v, _ in recent],
                        threshold=s.step.threshold if calibrated else None, low=s.step.low if calibrated else None,
                        label=label, active=bool(s and s.step.active), outline=outline,
                        min_width=self.min_width, max_width=self.max_width, status=self.status(),
                        region=self.region(frame.image))


@dataclass
class _Clip:
    writer: VideoWriter
    event: Event
    last_t: float = -math.inf
    close_at: float | None = None  # source time after which the clip is complete (event end + post-roll)


class ClipRecorder:
    """MP4 clips around events: keeps `pre_s` seconds of rendered frames; when an event starts, writes them
    and every following frame until `post_s` after the event ends (at most `max_s` seconds per clip), then
    renames the clip into place (`clips/event_0001.mp4, ...`). Memory: only the pre-roll, at `fps` frames/s.
    background: each clip is encoded in a thread of its own (`VideoWriter(background=True)`)."""

    def __init__(self, out_dir: str | os.PathLike, fps: float, *, pre_s: float = 2.0, post_s: float = 2.0,
                 max_s: float = 60.0, background: bool = False):
        self.out_dir, self.fps, self.pre_s, self.post_s, self.max_s = Path(out_dir), fps, pre_s, post_s, max_s
        self.background = background
        self._ring: deque[tuple[float, np.ndarray]] = deque()
        self._open: dict[int, _Clip] = {}
        self.written: list[Path] = []
        self.finished: list[int] = []  # ids of the events whose clips are closed (written, or failed and removed)

    def wants(self, t: float) -> bool:
        """Would a frame at t be kept (pre-roll at `fps`, or an open clip)? Lets the caller skip drawing."""
        return bool(self._open) or not self._ring or t - self._ring[-1][0] >= 1.0 / self.fps - 1e-6

    def add(self, t: float, image: np.ndarray, started: Sequence[Event] = (),
            ended: Sequence[Event] = ()) -> list[Path]:
        """Feed a rendered frame shown at source time t and the events started/ended since the last call.
        Returns the clips completed by this call."""
        if not self._ring or t - self._ring[-1][0] >= 1.0 / self.fps - 1e-6:
            self._ring.append((t, image))
        while self._ring and self._ring[0][0] < t - self.pre_s - 1.0 / self.fps:
            self._ring.popleft()
        for ev in started:
            clip = self._open[ev.id] = _Clip(VideoWriter(self.out_dir / clip_name(ev.id), self.fps,
                                                          background=self.background), ev)
            for ft, frame in self._ring:
                if ft >= ev.start_s - self.pre_s - 1e-6:
                    clip.writer.write_at(ft, frame)
                    clip.last_t = ft
        for ev in ended:
            if ev.id in self._open:
                self._open[ev.id].close_at = ev.end_s + self.post_s
        done = []
        for eid, clip in list(self._open.items()):
            if t > clip.last_t and t - clip.event.start_s <= self.max_s:
                clip.writer.write_at(t, image)
                clip.last_t = t
            if clip.close_at is not None and t >= clip.close_at:
                done.append(self._finish(eid))
        return [p for p in done if p is not None]

    def _finish(self, eid: int) -> Path | None:
        clip = self._open.pop(eid)
        try:
            path = clip.writer.close()
        except BaseException:
            clip.writer.abort()
            self.finished.append(eid)
            raise
        if path is not None:
            self.written.append(path)
        self.finished.append(eid)
        return path

    def abort(self) -> None:
        """Discard every open clip (its partial file included): after a failure."""
        for clip in self._open.values():
            clip.writer.abort()
        self._open.clear()

    def close(self) -> list[Path]:
        """Finish every open clip (at shutdown their post-roll is cut short)."""
        return [p for p in (self._finish(eid) for eid in list(self._open)) if p is not None]
