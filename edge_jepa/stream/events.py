"""Surprise scores -> anomaly events: warm-up calibration, robust running statistics, hysteresis.

`EventDetector` learns what the scene's surprise normally looks like and raises an event when the score
stands out from it:

* calibration: the first `warmup_s` seconds of scores (at least `min_samples`) only feed the statistics;
* running statistics over a sliding `history_s` of *normal* scores (event and candidate scores excluded):
  baseline = median, spread = max(1.4826 * MAD, min_spread * median) (the floor keeps a perfectly static
  scene from turning noise into events);
* hysteresis: a candidate starts when score > baseline + k * spread, and becomes an event once it has
  stayed above the lower level baseline + k_low * spread for `min_duration_s`; the event ends when the
  score has stayed below the lower level for `gap_s` (its end time is the last time above it);
* an event longer than `max_event_s` means the scene changed for good: it is closed and the detector
  recalibrates on what follows.

Times are source seconds (file timestamps, or the live clock), so the detector works at any update rate.
"""

from __future__ import annotations

import json
import math
import os
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

CALIBRATING, NORMAL, CANDIDATE, EVENT = "calibrating", "normal", "candidate", "event"


@dataclass
class Event:
    id: int
    start_s: float  # first score above the threshold
    end_s: float  # last score above the lower (hysteresis) level
    peak_s: float
    peak_score: float
    peak_frame: int  # capture index of the window's last frame at the peak
    threshold: float  # the upper level when the event started
    baseline: float  # the running median when the event started
    peak_xy: tuple[float, float] | None = None  # where: the most surprising patch at the peak, (x, y) in [0, 1]
    closed_by: str = "score"  # "score", "timeout" (> max_event_s), "recalibrate", "end" (of stream), "shutdown"
    clip: str | None = None  # the event's clip, relative to the output folder
    wall_time: str | None = None  # ISO 8601 start time on the wall clock (live sources)
    low: float | None = None  # the lower (hysteresis) level when the event started
    spread: float | None = None  # the robust spread when the event started
    region: tuple[int, int, int, int] | None = None  # (x0, y0, x1, y1) source pixels: the top tokens at the peak
    frame_size: tuple[int, int] | None = None  # (width, height) of the source frame at the peak
    thumbnail: str | None = None  # the peak frame with the region drawn, relative to the output folder
    run_id: str | None = None  # the run that raised it (one id per watch run)

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def margin(self) -> float:
        """How far the peak rose over the threshold (score units)."""
        return self.peak_score - self.threshold

    @property
    def margin_ratio(self) -> float:
        """peak / threshold (2.0: the peak was twice the threshold); NaN for a threshold <= 0."""
        return self.peak_score / self.threshold if self.threshold > 0 else math.nan

    @property
    def margin_spreads(self) -> float:
        """The margin in robust spreads of the normal scores (NaN when the spread is unknown)."""
        return self.margin / self.spread if self.spread else math.nan

    def where(self) -> str | None:
        """Where in the frame, in words ("top-left", "center", ...): from the region, else the peak patch."""
        if self.region is not None and self.frame_size is not None:
            x0, y0, x1, y1 = self.region
            x, y = (x0 + x1) / 2 / self.frame_size[0], (y0 + y1) / 2 / self.frame_size[1]
        elif self.peak_xy is not None:
            x, y = self.peak_xy
        else:
            return None
        row = ("top", "", "bottom")[min(int(y * 3), 2)]
        col = ("left", "", "right")[min(int(x * 3), 2)]
        return "-".join(p for p in (row, col) if p) or "center"

    def describe(self) -> str:
        """One line for a person: "surprise 0.310 (2.1x threshold 0.148) at top-left, 1.4 s"."""
        r = self.margin_ratio
        ratio = f"{r:.2f}x" if r < 1.1 else f"{r:.1f}x"  # a bare crossing reads 1.01x, not 1.0x
        ratio = f"{ratio} threshold {self.threshold:.3f}" if math.isfinite(r) else f"threshold {self.threshold:.3f}"
        where = self.where()
        return (f"surprise {self.peak_score:.3f} ({ratio})" + (f" at {where}" if where else "")
                + (f", {self.duration_s:.1f} s" if self.duration_s >= 1 else f", {self.duration_s:.2f} s"))

    def to_json(self) -> dict:
        d = asdict(self)
        d["duration_s"] = round(self.duration_s, 4)
        for key in ("start_s", "end_s", "peak_s", "peak_score", "threshold", "baseline", "low", "spread"):
            if d[key] is not None:
                d[key] = round(float(d[key]), 6)
        if self.peak_xy is not None:
            d["peak_xy"] = [round(float(v), 4) for v in self.peak_xy]
        for key in ("region", "frame_size"):
            if d[key] is not None:
                d[key] = [int(v) for v in d[key]]
        d["margin"] = round(self.margin, 6)
        d["margin_ratio"] = round(self.margin_ratio, 4) if math.isfinite(self.margin_ratio) else None
        d["margin_spreads"] = round(self.margin_spreads, 3) if math.isfinite(self.margin_spreads) else None
        d["description"] = self.describe()
        return d


@dataclass
class DetectorStep:
    """The detector's state after one score."""

    state: str
    threshold: float  # upper level (NaN while calibrating)
    low: float  # lower (hysteresis) level
    baseline: float  # running median
    spread: float  # robust standard deviation
    started: Event | None = None
    ended: Event | None = None

    @property
    def active(self) -> bool:
        return self.state == EVENT

    @property
    def calibrating(self) -> bool:
        return self.state == CALIBRATING


@dataclass
class _Sample:
    t: float
    score: float
    frame: int
    heatmap: np.ndarray | None = field(default=None, repr=False)


class EventDetector:
    """Online anomaly events from (time, score) pairs; see the module docstring for the rules.

    Defaults were tuned on the embedded default model (see edge_jepa/stream/README.md).
    """

    def __init__(self, *, warmup_s: float = 5.0, k: float = 6.0, k_low: float = 3.0, min_duration_s: float = 0.0,
                 gap_s: float = 0.5, history_s: float = 60.0, min_spread: float = 0.02,
                 max_event_s: float = 30.0, min_samples: int = 10, first_id: int = 1):
        if not 0 < k_low <= k:
            raise ValueError(f"need 0 < k_low <= k, got k={k}, k_low={k_low}")
        for name, value in (("warmup_s", warmup_s), ("min_duration_s", min_duration_s), ("gap_s", gap_s),
                            ("min_spread", min_spread)):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if history_s <= 0 or max_event_s <= 0 or min_samples < 3:
            raise ValueError("history_s and max_event_s must be > 0 and min_samples >= 3")
        self.warmup_s, self.k, self.k_low = warmup_s, k, k_low
        self.min_duration_s, self.gap_s, self.history_s = min_duration_s, gap_s, history_s
        self.min_spread, self.max_event_s, self.min_samples = min_spread, max_event_s, min_samples
        self.next_id = first_id
        self.events: list[Event] = []
        self.heat_baseline: np.ndarray | None = None  # running mean per patch of normal heatmaps
        self._history: deque[tuple[float, float]] = deque()
        self._stats = (math.nan, math.nan)
        self._heat_n = 0
        self.recalibrate()

    # -- statistics ------------------------------------------------------------------------------------

    @property
    def baseline(self) -> float:
        return self._stats[0]

    @property
    def spread(self) -> float:
        return self._stats[1]

    @property
    def threshold(self) -> float:
        return math.nan if self.state == CALIBRATING else self.baseline + self.k * self.spread

    @property
    def low(self) -> float:
        return math.nan if self.state == CALIBRATING else self.baseline + self.k_low * self.spread

    @property
    def open_event(self) -> Event | None:
        """The event in progress (None outside an event)."""
        return self._event if self.state == EVENT else None

    def _add_normal(self, s: _Sample) -> None:
        self._history.append((s.t, s.score))
        while self._history and self._history[0][0] < s.t - self.history_s:
            self._history.popleft()
        if s.heatmap is not None:
            if self.heat_baseline is None or self.heat_baseline.shape != s.heatmap.shape:
                self.heat_baseline, self._heat_n = np.zeros_like(s.heatmap, dtype=np.float64), 0
            self._heat_n += 1
            rate = max(1.0 / self._heat_n, 0.02)
            self.heat_baseline += rate * (s.heatmap - self.heat_baseline)
        scores = np.fromiter((v for _, v in self._history), float, len(self._history))
        med = float(np.median(scores))
        mad = float(np.median(np.abs(scores - med))) * 1.4826
        self._stats = (med, max(mad, self.min_spread * abs(med), 1e-9))

    # -- state machine ---------------------------------------------------------------------------------

    def recalibrate(self) -> Event | None:
        """Forget the statistics and learn the scene anew (an open event is closed first and returned)."""
        ended = self._close("recalibrate") if getattr(self, "state", None) == EVENT else None
        self.state = CALIBRATING
        self._history.clear()
        self._stats = (math.nan, math.nan)
        self._calib_start: float | None = None
        self._candidate: list[_Sample] = []
        self._event: Event | None = None
        self._last_above = math.nan
        self._last: _Sample | None = None
        return ended

    def update(self, t: float, score: float, *, frame_index: int = -1,
               heatmap: np.ndarray | None = None) -> DetectorStep:
        """Feed one score (source time t, seconds); returns the new state and any event started/ended."""
        if not math.isfinite(score):
            raise ValueError(f"score must be finite, got {score} at t={t}")
        s = _Sample(float(t), float(score), int(frame_index), None if heatmap is None else np.asarray(heatmap))
        self._last = s
        started = ended = None
        if self.state == CALIBRATING:
            if self._calib_start is None:
                self._calib_start = s.t
            self._add_normal(s)
            if s.t - self._calib_start >= self.warmup_s - 1e-6 and len(self._history) >= self.min_samples:
                self.state = NORMAL
        elif self.state == NORMAL:
            if s.score > self.threshold:
                self.state, self._candidate = CANDIDATE, [s]
                started = self._maybe_start()
            else:
                self._add_normal(s)
        elif self.state == CANDIDATE:
            if s.score > self.low:
                self._candidate.append(s)
                started = self._maybe_start()
            else:  # a blip shorter than min_duration: it was normal after all
                for c in self._candidate:
                    self._add_normal(c)
                self._add_normal(s)
                self.state, self._candidate = NORMAL, []
        else:  # EVENT
            ev = self._event
            if s.score > self.low:
                self._last_above = s.t
                if s.score > ev.peak_score:
                    self._set_peak(ev, s)
                if s.t - ev.start_s > self.max_event_s:
                    ended = self._close("timeout")
                    self.recalibrate()
            elif s.t - self._last_above >= self.gap_s - 1e-6:
                ended = self._close("score")
                self._add_normal(s)
        return DetectorStep(self.state, self.threshold, self.low, self.baseline, self.spread, started, ended)

    def finish(self, reason: str = "shutdown") -> Event | None:
        """Close an open event (end of stream, shutdown); returns it."""
        if self.state == EVENT:
            return self._close(reason)
        if self.state == CANDIDATE:
            self.state, self._candidate = NORMAL, []
        return None

    def _maybe_start(self) -> Event | None:
        first, last = self._candidate[0], self._candidate[-1]
        if last.t - first.t < self.min_duration_s - 1e-6:
            return None
        ev = Event(id=self.next_id, start_s=first.t, end_s=last.t, peak_s=first.t, peak_score=-math.inf,
                   peak_frame=first.frame, threshold=self.threshold, baseline=self.baseline)
        ev.low, ev.spread = self.low, self.spread
        self.next_id += 1
        for c in self._candidate:
            if c.score > ev.peak_score:
                self._set_peak(ev, c)
        self.state, self._event, self._candidate, self._last_above = EVENT, ev, [], last.t
        return ev

    def _set_peak(self, ev: Event, s: _Sample) -> None:
        ev.peak_s, ev.peak_score, ev.peak_frame = s.t, s.score, s.frame
        if s.heatmap is not None:
            heat = s.heatmap - self.heat_baseline if self.heat_baseline is not None and \
                self.heat_baseline.shape == s.heatmap.shape else s.heatmap
            y, x = np.unravel_index(int(np.argmax(heat)), heat.shape)
            ev.peak_xy = (float((x + 0.5) / heat.shape[1]), float((y + 0.5) / heat.shape[0]))

    def _close(self, reason: str) -> Event:
        ev = self._event
        ev.end_s = self._last_above if math.isfinite(self._last_above) else ev.start_s
        ev.closed_by = reason
        self.events.append(ev)
        self.state, self._event = NORMAL, None
        return ev


class EventLog:
    """events.jsonl: one JSON object per event, appended, flushed and fsynced as each event ends.

    A line is written with a single `write` on an O_APPEND descriptor, so a killed process leaves only
    complete lines. Reopening an existing log continues its event numbering.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        existing = self.read(self.path) if self.path.exists() else []
        self.next_id = max((int(e.get("id", 0)) for e in existing), default=0) + 1
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if self.path.stat().st_size and not self.path.read_bytes().endswith(b"\n"):
            os.write(self._fd, b"\n")  # a torn line from an older writer: never glue onto it
        self.written = 0

    def append(self, event: Event | dict) -> None:
        record = event.to_json() if isinstance(event, Event) else event
        os.write(self._fd, (json.dumps(record) + "\n").encode())
        os.fsync(self._fd)
        self.written += 1

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    @staticmethod
    def read(path: str | os.PathLike) -> list[dict]:
        """The events of a log (lines that do not parse, e.g. a torn last line, are skipped)."""
        out = []
        for line in Path(path).read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                out.append(record)
        return out

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def detect_events(times: np.ndarray, scores: np.ndarray, detector: EventDetector | None = None,
                  heatmaps: list[np.ndarray | None] | None = None) -> tuple[list[Event], np.ndarray]:
    """Run the online detector over a recorded trace (NaN scores are skipped): every event (one still open at
    the end is closed with reason "end") and the upper threshold in force at each time (NaN while
    calibrating or unscored). The offline twin of what `StreamLoop` does live."""
    detector = detector or EventDetector()
    thresholds = np.full(len(scores), np.nan)
    for i, (t, s) in enumerate(zip(times, scores, strict=True)):
        if np.isfinite(s):
            step = detector.update(float(t), float(s), frame_index=i,
                                   heatmap=None if heatmaps is None else heatmaps[i])
            thresholds[i] = step.threshold
    detector.finish("end")
    return list(detector.events), thresholds
