"""The stream loop's running counters and the statistics it reports (`StreamLoop.stats()`).

Each counter is written by one thread (capture, inference or the caller) and read by `stats()`.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from dataclasses import dataclass, field

import numpy as np


@dataclass
class StreamStats:
    realtime: bool
    wall_s: float  # since start()
    source_s: float  # source time covered
    frames_captured: int
    frames_skipped: int  # skipped by the source: late in real-time pacing, or unreadable
    windows_eligible: int  # windows the policy could score: real time, captured frames ending a full window;
    #                        every window, the model's ticks with a full window (so always >= windows_scored)
    windows_scored: int
    windows_dropped: int  # stale when inference got to them (real time only)
    frames_rendered: int
    render_drops: int  # captured frames the caller never took (real time only)
    capture_fps: float
    update_fps: float  # scored windows per second of wall time
    render_fps: float
    latency_ms: dict[str, float]  # frame-to-score latency: p50, p90, p99, max (real time only; else NaN: an
    #                               every-window run holds capture back, so the time since capture means nothing)
    reopens: int
    losses: int
    segments: int
    resolution_changes: int
    ring_peak_frames: int
    queue_peak: int
    process_ms: dict[str, float] = field(default_factory=dict)  # scoring time per window: p50, p90, p99, max

    def to_json(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def _percentiles_ms(seconds) -> dict[str, float]:
    ms = np.asarray(seconds, float) * 1000.0
    pct = {f"p{q}": float(np.percentile(ms, q)) if len(ms) else math.nan for q in (50, 90, 99)}
    pct["max"] = float(ms.max()) if len(ms) else math.nan
    return pct


def rate(count: int, first: float | None, last: float | None) -> float:
    """Events per second between the first and the last of `count` events (0 if undefined)."""
    return (count - 1) / (last - first) if count > 1 and first is not None and last and last > first else 0.0


class LoopCounters:
    """Frames captured, windows scored / dropped, frames rendered, latencies and the score trace."""

    def __init__(self, keep_trace: bool = True, latency_slots: int = 36_000):
        self.keep_trace = keep_trace
        self.captured, self.cap_first, self.cap_last = 0, None, None
        self.scored, self.dropped, self.inf_first, self.inf_last = 0, 0, None, None
        self.rendered, self.render_drops, self.ren_first, self.ren_last = 0, 0, None, None
        self.t_first: float | None = None  # source time of the first / last captured frame
        self.t_last: float | None = None
        self._latencies = np.zeros(latency_slots)  # a fixed ring: the newest latencies (s), memory flat
        self._n_latencies = 0
        self._process = np.zeros(latency_slots)  # the same ring for the scoring time of each window (s)
        self._n_process = 0
        self.recent: deque[tuple[float, float, float]] = deque(maxlen=1024)  # (t, score, threshold)
        self._trace = {k: array("d") for k in ("t", "score", "threshold", "active", "low")}

    def on_capture(self, t: float, now: float) -> None:
        self.captured, self.cap_last = self.captured + 1, now
        self.cap_first = self.cap_first or now
        self.t_first = t if self.t_first is None else self.t_first
        self.t_last = t

    def on_score(self, t: float, score: float, threshold: float, active: bool, latency_s: float,
                 now: float, low: float = math.nan) -> None:
        self._latencies[self._n_latencies % len(self._latencies)] = latency_s
        self._n_latencies += 1
        self.scored, self.inf_last = self.scored + 1, now
        self.inf_first = self.inf_first or now
        self.recent.append((t, score, threshold))
        if self.keep_trace:
            for key, value in (("t", t), ("score", score), ("threshold", threshold), ("active", float(active)),
                               ("low", low)):
                self._trace[key].append(value)

    def on_render(self, now: float) -> None:
        self.rendered, self.ren_last = self.rendered + 1, now
        self.ren_first = self.ren_first or now

    def counts(self) -> dict[str, int]:
        return {"captured": self.captured, "scored": self.scored, "dropped": self.dropped,
                "rendered": self.rendered}

    def trace(self) -> dict[str, np.ndarray]:
        return {k: np.frombuffer(v, dtype=np.float64).copy() for k, v in self._trace.items()}

    def on_process(self, seconds: float) -> None:
        """The time one window took to score (preprocessing, model, detector)."""
        self._process[self._n_process % len(self._process)] = seconds
        self._n_process += 1

    def latency_ms(self, applies: bool = True) -> dict[str, float]:
        """p50, p90, p99 and max of the frame-to-score latency (NaN before the first score, or when it does not
        apply: an every-window run, whose capture waits for inference)."""
        return _percentiles_ms(self._latencies[: min(self._n_latencies, len(self._latencies))] if applies else [])

    def process_ms(self) -> dict[str, float]:
        """p50, p90, p99 and max of the scoring time per window (NaN before the first score)."""
        return _percentiles_ms(self._process[: min(self._n_process, len(self._process))])

    def source_seconds(self) -> float:
        return (self.t_last - self.t_first) if self.t_first is not None else 0.0

    def fps(self) -> tuple[float, float, float]:
        """(capture, update, render) rates per second of wall time."""
        return (rate(self.captured, self.cap_first, self.cap_last), rate(self.scored, self.inf_first, self.inf_last),
                rate(self.rendered, self.ren_first, self.ren_last))
