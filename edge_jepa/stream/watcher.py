"""`watch`: a source, a model, a detector and the outputs, wired together (what `edge-jepa watch` runs).

Outputs in `out` (when given):
    events.jsonl        one JSON object per event, appended + fsynced as each event ends (with clips: once its
                        clip is complete, so that a line never names an unfinished clip)
    clips/event_0001.mp4, ...  the annotated frames around each event (pre- and post-roll)
    thumbs/event_0001.jpg, ... the source frame at each event's peak, its region boxed (written before its line)
    annotated.mp4       headless: every frame annotated, at the model's fps
    timeline.png        headless: score, threshold, calibration and events over time
    summary.json        run id, rates, drops, latency, calibration, events, webhook deliveries, outputs

Every events.jsonl line and summary.json carry the run's id (one per call of `watch`): a log that several runs
append to stays readable. `notify`: a webhook URL that gets each event record as a JSON POST (see
edge_jepa.stream.notify; it never blocks the stream, its failures are counted in the summary).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_jepa.io import atomic_file, strict_json
from edge_jepa.models.vjepa2 import VJEPA2
from edge_jepa.outputs import OutputError, OutputLock, clean_leftovers
from edge_jepa.photometric import check_photometric
from edge_jepa.roi import RoiMask, as_mask
from edge_jepa.runtime.base import Runner
from edge_jepa.stream.events import Event, EventDetector, EventLog
from edge_jepa.stream.evidence import PeakTracker, thumbnail_name, write_thumbnail
from edge_jepa.stream.loop import StreamLoop, StreamUpdate
from edge_jepa.stream.notify import Notifier
from edge_jepa.stream.render import ClipRecorder, Renderer, clip_name
from edge_jepa.stream.sources import Source, open_source
from edge_jepa.stream.stats import StreamStats
from edge_jepa.surprise import as_scorer
from edge_jepa.timing import torch_threads
from edge_jepa.viz import VideoWriter, plot_timeline

HEADLESS_WIDTH, WINDOW_WIDTH = 640, 960  # default width of the drawn frames (annotated video; the window)
QUIT_KEYS = (ord("q"), 27)  # q, Esc
PAUSE_KEYS = (ord(" "), ord("p"))
RECALIBRATE_KEYS = (ord("r"),)


@dataclass
class WatchSummary:
    source: str
    model: str
    backend: str
    realtime: bool
    headless: bool
    stats: StreamStats
    events: list[Event]
    calibration: dict  # the detector's settings and its final baseline / spread / threshold
    outputs: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False  # stopped by the user (q, Ctrl-C) before the source ended
    stopped_by: str = "end"  # "end" (of the source), "quit" (q/Esc), "max_seconds", "interrupt" (Ctrl-C)
    warnings: list[str] = field(default_factory=list)  # the source could not be fully judged (see _source_warnings)
    run_id: str | None = None  # this run's id, on each of its events.jsonl lines
    notify: dict | None = None  # webhook deliveries (see NotifyStats): sent, failed, dropped, unsent, last_error

    def to_json(self) -> dict:
        return {"run_id": self.run_id, "source": self.source, "model": self.model, "backend": self.backend,
                "realtime": self.realtime,
                "headless": self.headless, "interrupted": self.interrupted, "stopped_by": self.stopped_by,
                "warnings": self.warnings, "stats": self.stats.to_json(),
                "calibration": self.calibration, "events": [e.to_json() for e in self.events],
                "notify": self.notify, "outputs": self.outputs}


def new_run_id() -> str:
    """A run id that sorts by start time and does not collide: 20261207T130239Z-3f9a1c."""
    return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def _check_display() -> None:
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise RuntimeError("no display (DISPLAY is not set): use --headless to write an annotated MP4 instead")


def _calibration(det: EventDetector) -> dict:
    return {"warmup_s": det.warmup_s, "k": det.k, "k_low": det.k_low, "min_duration_s": det.min_duration_s,
            "gap_s": det.gap_s, "history_s": det.history_s, "min_spread": det.min_spread,
            "max_event_s": det.max_event_s, "state": det.state, "warming": det.warming,
            "baseline": None if np.isnan(det.baseline) else round(det.baseline, 6),
            "spread": None if np.isnan(det.spread) else round(det.spread, 6),
            "threshold": None if np.isnan(det.threshold) else round(det.threshold, 6),
            "learn_k": det.learn_k, "max_rise": det.max_rise, "max_growth": det.max_growth,
            "prior": det.prior.to_json() if det.prior is not None else None}


def watch(source: str | int | os.PathLike | np.ndarray | Source, *, model: Runner | VJEPA2 | str = "default",
          headless: bool = True, out: str | os.PathLike | None = None, realtime: bool | None = None,
          detector: EventDetector | None = None, fps: float | None = None, max_seconds: float | None = None,
          clips: bool = True, clip_pre_s: float = 2.0, clip_post_s: float = 2.0,
          on_event: Callable[[Event], None] | None = None,
          on_update: Callable[[StreamUpdate, np.ndarray | None], None] | None = None,
          window: str = "edge-jepa watch", notify: str | Notifier | None = None,
          run_id: str | None = None, width: int | None = None, threads: int | None = 1,
          photometric: str | None = "gain",
          mask: RoiMask | str | os.PathLike | np.ndarray | None = None) -> WatchSummary:
    """Watch a source for surprise until it ends, the user quits (q/Esc, Ctrl-C) or `max_seconds` of source
    time have passed; returns the summary (outputs are complete even after Ctrl-C).

    source: camera index, file, URL, image folder, array (see `open_source`) or an opened Source.
    realtime: for files/folders, emulate a live camera (paced, stale windows dropped) or score every window
              at the model's fps (deterministic). None: every window when headless, real time with a display.
    fps: frame rate of an image folder (default: the model's).
    on_event: called once each event is logged: when it ends, or with clips when its clip is complete (an
              events.jsonl line only ever points at a finished clip); on_update: called with each update and
              its rendered frame (None when nothing is drawn).
    notify: a webhook URL (or a Notifier) that gets each logged event record as a JSON POST, from its own
            thread (never blocking the stream; the deliveries are counted in the summary).
    run_id: this run's id on every event and in the summary (default: new_run_id()).
    out: one run at a time (a second one gets OutputError); leftovers of a killed run are removed first.
    Output write failures (a full disk) remove what was half-written and raise OSError.
    photometric: "gain" (default: exposure and white-balance changes are normalized away, so an auto-exposure
                 camera's adjustments are no events; a cut to a brighter scene of the same colours is mostly
                 normalized too), "match", "off" (frames as they come), or None (the scorer's own setting)
                 (edge_jepa.photometric).
    mask: regions of interest (white = watch): a picture path, an array or a RoiMask (edge_jepa.roi).
    Keys in the window: q/Esc quit, space/p pause, r recalibrate.
    width: the drawn frames' width at most (window, annotated video, clips); each frame is shrunk to it once,
           right after capture. Default: 640 headless, 960 with a window.
    threads: torch CPU threads for inference during the run (restored after; None: torch's setting). One is
             the default: inference runs beside capture, drawing and encoding, and on a shared machine a second
             thread waits for a busy core.
    """
    mask = as_mask(mask)  # a bad mask file fails before anything is opened
    if photometric is not None:
        check_photometric(photometric)
    out_dir = Path(out) if out is not None else None
    notifier = Notifier(notify) if isinstance(notify, str) else notify  # a bad URL fails before any work
    width = width or (HEADLESS_WIDTH if headless else WINDOW_WIDTH)
    try:
        with claim_output_folder(out_dir, "watch"), torch_threads(threads):
            return _watch(source, model=model, headless=headless, out_dir=out_dir, realtime=realtime,
                          detector=detector, fps=fps, max_seconds=max_seconds, clips=clips, clip_pre_s=clip_pre_s,
                          clip_post_s=clip_post_s, on_event=on_event, on_update=on_update, window=window,
                          notifier=notifier, run_id=run_id or new_run_id(), width=width,
                          photometric=photometric, mask=mask)
    finally:
        if notifier is not None:
            notifier.close(0.0)  # after a failure (else already closed): stop its thread


@contextlib.contextmanager
def claim_output_folder(out_dir: Path | None, command: str) -> Iterator[None]:
    """Lock `out_dir` for this run (OutputError if another run holds it, or if it is a file) and remove the
    leftovers of killed runs (temp files, partial clips)."""
    if out_dir is None:
        yield
        return
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir}: exists and is not a folder; --out needs a folder (new or of an earlier run)")
    with OutputLock(out_dir, command):
        for folder in (out_dir, out_dir / "clips", out_dir / "thumbs"):
            clean_leftovers(folder, partials=True)
        yield


def _watch(source, *, model, headless: bool, out_dir: Path | None, realtime: bool | None,
           detector: EventDetector | None, fps: float | None, max_seconds: float | None, clips: bool,
           clip_pre_s: float, clip_post_s: float, on_event: Callable[[Event], None] | None,
           on_update: Callable[[StreamUpdate, np.ndarray | None], None] | None, window: str,
           notifier: Notifier | None, run_id: str, width: int,
           photometric: str | None = None, mask: RoiMask | None = None) -> WatchSummary:
    scorer = as_scorer(model)  # a window model's (through its Runner) or a frame-causal model's
    src = _open(source, scorer, headless, realtime, fps)
    log = EventLog(out_dir / "events.jsonl") if out_dir is not None else None
    detector = detector or EventDetector()
    if log is not None:
        detector.next_id = max(detector.next_id, log.next_id)
    events = _EventSink(out_dir, clips, log, on_event, notifier, run_id)
    loop = StreamLoop(scorer, src, detector=detector, on_event=events, keep_trace=headless, view_width=width,
                      photometric=photometric, mask=mask)
    events.peaks = loop.peaks
    sinks = _Sinks(Renderer(loop, max_width=width),
                   ClipRecorder(out_dir, loop.fps, pre_s=clip_pre_s, post_s=clip_post_s, background=True)
                   if out_dir is not None and clips else None,
                   VideoWriter(out_dir / "annotated.mp4", loop.fps, background=True)
                   if out_dir is not None and headless else None,
                   None if headless else _Display(window, loop))
    stopped_by, failure, write_failure = "end", None, None
    try:
        stopped_by, failure = _consume(loop, sinks, events, on_update, max_seconds)
    except OSError as e:  # writing an output failed (a full disk): nothing half-written is kept
        write_failure = e
    finally:
        with _second_interrupt_ignored():  # a second Ctrl-C must not cost the outputs
            write_failure = _shut_down(loop, sinks, events, log, write_failure)
    if write_failure is not None:
        src.close()
        raise write_failure
    with _second_interrupt_ignored():
        summary = _summarize(src, loop, detector, out_dir, sinks, headless, stopped_by,
                             checked=stopped_by == "end" and failure is None, run_id=run_id,
                             notify=None if events.notify_stats is None else events.notify_stats.to_json())
    src.close()
    if failure is not None:
        raise failure
    return summary


@dataclass
class _Sinks:
    """Where updates go: the renderer, and (each optional) event clips, the annotated video, the live window."""

    renderer: Renderer
    recorder: ClipRecorder | None
    video: VideoWriter | None
    display: _Display | None


def _open(source: str | int | os.PathLike | np.ndarray | Source, scorer, headless: bool,
          realtime: bool | None, fps: float | None) -> Source:
    """The opened source; with a display, fail (closing the source) when there is no display."""
    src = source_for(source, scorer, headless=headless, realtime=realtime, fps=fps)
    if not headless:
        try:
            _check_display()
        except RuntimeError:
            src.close()
            raise
    return src


class _EventSink:
    """What happens as each event ends (called in the inference thread): stamp the run id, write its thumbnail,
    name its clip, log it, queue it for the webhook, tell the caller. With clips, an event waits until the
    recorder has closed its clip (`commit_finished`, in the caller's thread), so that a logged line never names a
    clip still being written; a clip that could not be kept is logged as null."""

    def __init__(self, out_dir: Path | None, clips: bool, log: EventLog | None,
                 on_event: Callable[[Event], None] | None, notifier: Notifier | None = None,
                 run_id: str | None = None):
        self.out_dir, self.clips, self.log, self.on_event = out_dir, out_dir is not None and clips, log, on_event
        self.notifier, self.run_id = notifier, run_id
        self.notify_stats = None  # set when the notifier is closed
        self.peaks: PeakTracker | None = None  # the loop's: the frame at each event's peak
        self._waiting: dict[int, Event] = {}
        self._lock = threading.Lock()

    def __call__(self, ev: Event) -> None:
        ev.run_id = self.run_id
        image = self.peaks.image(ev.id) if self.peaks is not None else None
        if self.out_dir is not None and image is not None:
            ev.thumbnail = thumbnail_name(ev.id)
            ratio = f" ({ev.margin_ratio:.2f}x thr)" if ev.threshold > 0 else ""
            write_thumbnail(self.out_dir / ev.thumbnail, image, ev.region,
                            label=f"event {ev.id}  {ev.peak_score:.3f}{ratio}  {ev.peak_s:.1f} s")
        if self.clips:
            ev.clip = clip_name(ev.id)
            with self._lock:
                self._waiting[ev.id] = ev
            return
        self._commit(ev)

    def commit_finished(self, recorder: ClipRecorder | None, final: bool = False) -> None:
        """Log the events whose clips are closed (at the end: every one still waiting)."""
        done = set(recorder.finished) if recorder is not None else set()
        with self._lock:
            ready = sorted(i for i in self._waiting if final or i in done)
            events = [self._waiting.pop(i) for i in ready]
        for ev in events:
            if ev.clip is not None and not (self.out_dir / ev.clip).exists():
                ev.clip = None
            self._commit(ev)

    def _commit(self, ev: Event) -> None:
        if self.log is not None:
            self.log.append(ev)
        if self.notifier is not None:
            self.notifier.send(ev.to_json())
        if self.on_event is not None:
            self.on_event(ev)

    def close_notifier(self) -> None:
        """Give the webhook its grace period for the events still queued; keep its counts."""
        if self.notifier is not None:
            self.notify_stats = self.notifier.close()


def _consume(loop: StreamLoop, sinks: _Sinks, events: _EventSink,
             on_update: Callable[[StreamUpdate, np.ndarray | None], None] | None,
             max_seconds: float | None) -> tuple[str, Exception | None]:
    """Run the loop, drawing each update, until the stream ends, the user quits or max_seconds of source time
    passed; (why it stopped: see WatchSummary.stopped_by, the capture/inference error to re-raise once the
    outputs are complete). An OSError from writing an output propagates."""
    display, t_first = sinks.display, None
    try:
        loop.start()
        while True:
            try:
                update = loop.next_update(timeout=0.5 if display is None else 0.03)
            except Exception as e:  # noqa: BLE001 - the capture/inference error, re-raised after the outputs
                return "end", e
            if update is not None:
                t_first = update.t if t_first is None else t_first
                image = _draw(update, sinks.renderer, loop, sinks.recorder, sinks.video, display is None)
                events.commit_finished(sinks.recorder)
                if on_update is not None:
                    on_update(update, image)
                if display is not None and image is not None and not update.repeat:
                    display.show(image)
                if max_seconds is not None and update.t - t_first >= max_seconds:
                    return "max_seconds", None
            elif loop.finished:
                return "end", None
            if display is not None and display.poll():
                return "quit", None
    except KeyboardInterrupt:
        return "interrupt", None


def _shut_down(loop: StreamLoop, sinks: _Sinks, events: _EventSink, log: EventLog | None,
               write_failure: OSError | None) -> OSError | None:
    """Stop the loop; draw the events closed at shutdown (clips complete); close the clips, log the events still
    waiting, close the log and window. After a write failure (or one here) the partial clips and video are
    removed instead; returns the write failure, if any."""
    loop.stop()
    if write_failure is None:
        try:
            for update in _drain(loop):
                _draw(update, sinks.renderer, loop, sinks.recorder, sinks.video, sinks.display is None)
            if sinks.recorder is not None:
                sinks.recorder.close()
        except OSError as e:
            write_failure = e
    if write_failure is not None:
        for writer in (sinks.recorder, sinks.video):
            if writer is not None:
                writer.abort()
    with contextlib.suppress(OSError):
        events.commit_finished(sinks.recorder, final=True)
    events.close_notifier()
    if log is not None:
        log.close()
    if sinks.display is not None:
        sinks.display.close()
    return write_failure


def _summarize(src: Source, loop: StreamLoop, detector: EventDetector, out_dir: Path | None,
               sinks: _Sinks, headless: bool, stopped_by: str, checked: bool, run_id: str | None = None,
               notify: dict | None = None) -> WatchSummary:
    """The summary, the closing outputs (annotated video, timeline) and summary.json (strict JSON)."""
    try:
        outputs = _finish_outputs(loop, out_dir, sinks.video, sinks.recorder, headless, src)
    except OSError:
        if sinks.video is not None:
            sinks.video.abort()
        raise
    summary = WatchSummary(src.name, loop.scorer.config.name, loop.scorer.backend, loop.realtime,
                           headless, loop.stats(), list(detector.events), _calibration(detector), outputs,
                           stopped_by != "end", stopped_by, run_id=run_id, notify=notify)
    if checked:
        summary.warnings = _source_warnings(summary.stats, loop, src)
    if out_dir is not None:
        summary.outputs["summary"] = str(out_dir / "summary.json")
        with atomic_file(out_dir / "summary.json") as tmp:
            tmp.write_text(strict_json(summary.to_json()))
    return summary


@contextlib.contextmanager
def _second_interrupt_ignored() -> Iterator[None]:
    """While the outputs are finished, Ctrl-C is ignored (in the main thread; elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _source_warnings(stats: StreamStats, loop: StreamLoop, src: Source) -> list[str]:
    """Warn (and return the messages) when the source could not be judged: it ended before one window (an
    image folder whose resolution changes), inside the detector's calibration, or before its announced end."""
    det, name, messages = loop.detector, str(src.name), []
    changes = getattr(getattr(src, "inner", src), "size_changes", [])
    if stats.windows_scored == 0 and changes:
        first = changes[0]
        messages.append(
            f"{name}: the image size changes {len(changes)} time(s) (first at {first}), and a window of the model "
            f"needs {loop.frames_per_window} consecutive frames of one size: nothing was scored. Give the images "
            "one size")
    elif stats.windows_scored == 0:
        window = f"{loop.frames_per_window} frames at {loop.fps:g} fps, {loop.frames_per_window / loop.fps:.2f} s"
        messages.append(
            f"{name}: the source ended after {stats.frames_captured} frame(s) ({stats.source_s:.2f} s), before one "
            f"window of the model ({window}): nothing was scored. Use a longer video")
    elif det.warming:
        judged = "the model's prior and, in hindsight, these seconds" if det.prior is not None else \
            "these seconds only, in hindsight"
        messages.append(
            f"{name}: the source ended after {stats.source_s:.1f} s, inside the detector's {det.warmup_s:g} s "
            f"calibration: its scores were judged against {judged}, never against the scene's settled statistics. "
            "Use a longer video or a shorter --warmup")
    early = getattr(src, "ended_early", lambda: None)()
    if early:
        messages.append(early)
    for message in messages:
        warnings.warn(message, RuntimeWarning, stacklevel=5)
    return messages


def source_for(source: str | int | os.PathLike | np.ndarray | Source, runner, *, headless: bool,
               realtime: bool | None = None, fps: float | None = None) -> Source:
    """Open `source` with watch's defaults: files and folders are scored every window when headless and
    paced in real time with a display (unless `realtime` says otherwise); folders default to the model's fps."""
    if isinstance(source, Source):
        return source if source.is_open else source.open()
    if realtime is None and not headless:
        realtime = True
    return open_source(source, realtime=realtime, fps=fps or runner.fps)


def _drain(loop: StreamLoop) -> list[StreamUpdate]:
    updates = []
    try:
        while (update := loop.next_update(timeout=0.0 if loop.realtime else 0.05)) is not None:
            updates.append(update)
    except Exception:  # noqa: BLE001 - already reported by the main loop
        pass
    return updates


def _draw(update: StreamUpdate, renderer: Renderer, loop: StreamLoop, recorder: ClipRecorder | None,
          video: VideoWriter | None, headless: bool) -> np.ndarray | None:
    """Render if anything will show the frame; feed the clip recorder and the annotated video."""
    needed = not headless or update.started or update.ended or (not update.repeat and (
        (video is not None and (not loop.realtime or video.due(update.t)))
        or (recorder is not None and recorder.wants(update.t))))
    if not needed:
        return None
    image = renderer.draw(update, paused=loop.paused)
    if recorder is not None:
        recorder.add(update.t, image, update.started, update.ended)
    if video is not None and not update.repeat:
        video.write_at(update.t, image)
    return image


def _finish_outputs(loop: StreamLoop, out_dir: Path | None, video: VideoWriter | None,
                    recorder: ClipRecorder | None, headless: bool, src: Source) -> dict[str, str]:
    outputs: dict[str, str] = {}
    if out_dir is None:
        return outputs
    outputs["events"] = str(out_dir / "events.jsonl")
    if recorder is not None:
        outputs["clips"] = str(out_dir / "clips")
    if (out_dir / "thumbs").is_dir():
        outputs["thumbnails"] = str(out_dir / "thumbs")
    if video is not None and (path := video.close()) is not None:
        outputs["video"] = str(path)
    if headless:
        tr = loop.trace()
        det = loop.detector
        calibrating = np.isnan(tr["threshold"])
        calib = (float(tr["t"][0]), float(tr["t"][calibrating][-1])) if calibrating.any() else None
        plot_timeline(out_dir / "timeline.png", tr["t"], tr["score"], threshold=tr["threshold"], low=tr["low"],
                      events=[(e.start_s, e.end_s) for e in det.events], calibration=calib,
                      title=f"surprise of {loop.scorer.config.name} on {Path(str(src.name)).name}")
        outputs["timeline"] = str(out_dir / "timeline.png")
    return outputs


class _Display:
    """The live window (cv2.imshow in the caller's thread) and its keys."""

    def __init__(self, window: str, loop: StreamLoop):
        self.window, self.loop, self.shown = window, loop, False

    def show(self, image: np.ndarray) -> None:
        import cv2

        try:
            cv2.imshow(self.window, np.ascontiguousarray(image[:, :, ::-1]))
        except cv2.error as e:
            raise RuntimeError(f"cannot open a window ({str(e).strip().splitlines()[-1]}); use --headless") from None
        self.shown = True

    def poll(self) -> bool:
        """Pump the GUI and handle keys; True to quit (q/Esc, or the window was closed)."""
        import cv2

        if not self.shown:
            return False
        key = cv2.waitKey(1) & 0xFF
        if key in QUIT_KEYS:
            return True
        if key in PAUSE_KEYS:
            self.loop.pause(not self.loop.paused)
        elif key in RECALIBRATE_KEYS:
            self.loop.recalibrate()
        try:
            return cv2.getWindowProperty(self.window, cv2.WND_PROP_VISIBLE) < 1
        except cv2.error:
            return False

    def close(self) -> None:
        import cv2

        if self.shown:
            try:
                cv2.destroyWindow(self.window)
                cv2.waitKey(1)
            except cv2.error:
                pass
