"""Live surprise: camera/file/URL/folder sources, a stream loop that never blocks capture, events, display.

    from edge_jepa.stream import watch
    summary = watch(0, model="default", headless=False, out="watch-out")   # webcam 0, live window

Building blocks (composable):
    open_source(spec, realtime=..., fps=...)      -> Source (webcam index, file, URL, image folder, array)
    EventDetector(warmup_s=5, k=8, k_low=3, prior=...)  -> .update(t, score) -> DetectorStep (started/ended Event)
    detect_events(times, scores)                  -> the same detector over a recorded trace
    StreamLoop(runner, source, detector=...)      -> iterate StreamUpdates (frame, newest score, events)
    Renderer(loop).draw(update), ClipRecorder, EventLog (events.jsonl, fsynced per event)
See edge_jepa/stream/README.md.
"""

from edge_jepa.stream.events import DetectorStep, Event, EventDetector, EventLog, detect_events
from edge_jepa.stream.loop import ScoredWindow, StreamLoop, StreamUpdate
from edge_jepa.stream.render import ClipRecorder, Renderer
from edge_jepa.stream.ring import CapturedFrame, FrameRing
from edge_jepa.stream.sources import (
    ArraySource,
    CameraSource,
    FileSource,
    ImageFolderSource,
    ReopeningSource,
    Source,
    SourceError,
    SourceFrame,
    SourceLost,
    StreamSource,
    open_source,
)
from edge_jepa.stream.stats import StreamStats
from edge_jepa.stream.watcher import WatchSummary, watch

__all__ = [
    "ArraySource", "CameraSource", "CapturedFrame", "ClipRecorder", "DetectorStep", "Event", "EventDetector",
    "EventLog", "FileSource", "FrameRing", "ImageFolderSource", "Renderer", "ReopeningSource", "ScoredWindow",
    "Source", "SourceError", "SourceFrame", "SourceLost", "StreamLoop", "StreamSource", "StreamStats",
    "StreamUpdate", "WatchSummary", "detect_events", "open_source", "watch",
]
