"""What the stream loop hands out: a scored window, and the update the caller renders."""

from __future__ import annotations

from dataclasses import dataclass, field

from edge_jepa.stream.events import DetectorStep, Event
from edge_jepa.stream.ring import CapturedFrame
from edge_jepa.surprise import SurpriseResult


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
