"""Events a person can act on: records with margin, region (source pixels), thumbnail and run id; the --notify
webhook against real local HTTP servers (one that fails first, one that never answers); the overlay at the
model's token resolution with the lower hysteresis level; the windows_eligible / latency statistics.

End to end runs use real MP4 files (OpenCV) and the embedded window model (`window`: 64 px, a 4x4 token grid, one
score per 8-frame window at 30 fps, as these checks count them)."""

from __future__ import annotations

import http.server
import json
import math
import socket
import threading
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

import edge_jepa
from edge_jepa.data.synthetic import WorldConfig, render_long_video, write_mp4
from edge_jepa.stream import EventDetector, EventLog, open_source, watch
from edge_jepa.stream.events import EVENT, DetectorStep, Event
from edge_jepa.stream.evidence import PeakTracker, region_of, top_tokens
from edge_jepa.stream.notify import Notifier, check_url
from edge_jepa.stream.render import Renderer
from edge_jepa.stream.ring import CapturedFrame
from edge_jepa.stream.update import ScoredWindow, StreamUpdate
from edge_jepa.surprise import SurpriseResult
from edge_jepa.viz import annotate, score_strip
from tests.video_files import count_frames

FPS = 30.0
WORLD = WorldConfig(size=128, fps=FPS, occluder_prob=0.0)
BOX = (0, 0, 96, 64)  # the part of the 192x128 frame that another scene replaces for a second (x0, y0, x1, y1)
CHANGES = ((2.5, 2.8), (4.7, 5.0))  # when it is replaced (after the detector's 2 s calibration)
TOKEN = (48, 32)  # one token of the 4x4 grid over 192x128, in source pixels


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_inference_thread):
    """Torch on one thread for the whole module (see conftest.one_inference_thread)."""


@pytest.fixture(scope="module")
def model():
    return edge_jepa.load("window")


@pytest.fixture(scope="module")
def local_change(tmp_path_factory) -> Path:
    """6 s of a 192x128 scene at 30 fps in which the top-left 96x64 px show another scene twice for 0.3 s."""
    frames = render_long_video(4242, 6.0, WORLD).frames
    frames = np.ascontiguousarray(np.concatenate([frames, frames[:, :, :64]], axis=2))
    other = render_long_video(4243, 6.0, WORLD).frames
    x0, y0, x1, y1 = BOX
    for change in CHANGES:
        a, b = (round(t * FPS) for t in change)
        frames[a:b, y0:y1, x0:x1] = other[a:b, y0:y1, x0:x1]
    return write_mp4(frames, tmp_path_factory.mktemp("evidence") / "local_change.mp4", FPS)


class Hook:
    """A real HTTP server in a thread, recording each POSTed JSON body. `fail_first`: answer that many requests
    with 503 first; `hold`: block every request until the event is set (a hook that never answers); `status`: the
    answer otherwise."""

    def __init__(self, fail_first: int = 0, hold: threading.Event | None = None, status: int = 200):
        answer = status
        self.bodies: list[dict] = []
        self.statuses: list[int] = []
        self.requests = 0
        lock, hook = threading.Lock(), self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    hook.requests += 1
                    status = 503 if hook.requests <= fail_first else answer
                if hold is not None:
                    hold.wait()
                with lock:
                    hook.statuses.append(status)
                    if status == 200:
                        hook.bodies.append(body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def inside(region, box, slack) -> bool:
    """region lies within box grown by slack (dx, dy) on every side."""
    return (region[0] >= box[0] - slack[0] and region[1] >= box[1] - slack[1]
            and region[2] <= box[2] + slack[0] and region[3] <= box[3] + slack[1])


def test_event_records_carry_margin_region_thumbnail_run_id_and_reach_the_webhook(model, local_change, tmp_path):
    hook = Hook(fail_first=2)
    notifier = Notifier(hook.url, backoff_s=0.05, timeout_s=5.0, close_timeout_s=10.0)
    out = tmp_path / "out"
    try:
        summary = watch(local_change, model=model, headless=True, out=out, detector=EventDetector(warmup_s=2.0),
                        notify=notifier)
    finally:
        hook.close()
    records = EventLog.read(out / "events.jsonl")
    assert records and [r["id"] for r in records] == [e.id for e in summary.events]
    first = records[0]
    near = [t for change in CHANGES for t in change]  # an event as the part changes, or as it comes back
    assert all(any(t - 0.2 <= r["start_s"] <= t + 0.5 for t in near) for r in records), records
    assert all(any(a - 0.2 <= r["start_s"] <= b + 0.5 for r in records) for a, b in CHANGES), records
    for r in records:
        assert r["run_id"] == summary.run_id  # one id per run, on every line and in the summary
        assert r["margin"] == pytest.approx(r["peak_score"] - r["threshold"], abs=1e-5) and r["margin"] > 0
        assert r["margin_ratio"] == pytest.approx(r["peak_score"] / r["threshold"], rel=1e-3)
        assert r["margin_spreads"] == pytest.approx(r["margin"] / r["spread"], rel=1e-2)
        assert r["baseline"] < r["low"] < r["threshold"] < r["peak_score"]
        assert r["frame_size"] == [192, 128]
        # the box around the top tokens: inside the replaced part (give or take a token), at least one token big
        region = r["region"]
        assert inside(region, BOX, TOKEN), (region, BOX)
        assert region[2] - region[0] >= TOKEN[0] and region[3] - region[1] >= TOKEN[1]
        assert "top-left" in r["description"] and f"{r['peak_score']:.3f}" in r["description"]
        thumb = cv2.imread(str(out / r["thumbnail"]))
        assert thumb is not None and thumb.shape[1] <= 320
        x0, y0, x1, y1 = region
        b, g, rd = (int(v) for v in thumb[(y0 + y1) // 2, x0 + 1])  # on the box's left edge: red
        assert rd > 180 and g < 120 and b < 120, (b, g, rd)
    saved = json.loads((out / "summary.json").read_text())
    assert saved["run_id"] == summary.run_id and saved["events"][0]["region"] == first["region"]
    # the webhook: two 503s, retried with backoff, then every record delivered once, equal to its log line
    assert hook.statuses[:2] == [503, 503]
    assert sorted(b["id"] for b in hook.bodies) == [r["id"] for r in records]
    assert {b["id"]: b for b in hook.bodies} == {r["id"]: r for r in records}
    assert saved["notify"] == {"url": hook.url, "sent": len(records), "failed": 0, "dropped": 0, "unsent": 0,
                               "retries": 2, "last_error": "HTTP 503 Service Unavailable"}
    # offline (every window): no frame-to-score latency, the scoring time per window instead
    stats = saved["stats"]
    assert stats["latency_ms"]["p50"] is None and stats["process_ms"]["p50"] > 0
    assert stats["windows_eligible"] == stats["windows_scored"] > 0


def test_a_webhook_that_never_answers_never_blocks_the_stream(model, local_change, tmp_path):
    hold = threading.Event()
    hook = Hook(hold=hold)
    notifier = Notifier(hook.url, queue_size=1, retries=0, timeout_s=600.0, close_timeout_s=0.2)
    result: dict = {}

    def run() -> None:
        result["summary"] = watch(local_change, model=model, headless=True, out=tmp_path / "out", clips=False,
                                  detector=EventDetector(warmup_s=2.0), notify=notifier)

    worker = threading.Thread(target=run, daemon=True)
    try:
        worker.start()
        worker.join(300)  # a watchdog, not a speed target: a blocked stream would never return
        assert not worker.is_alive(), "watch did not finish while the webhook hung"
        summary = result["summary"]
        assert hook.requests == 1 and not hook.statuses  # the one request in flight is still unanswered
    finally:
        hold.set()
        hook.close()
    frames, _ = count_frames(local_change)
    assert frames == round(6.0 * FPS)
    assert summary.stats.frames_captured == frames  # capture read the whole file
    assert summary.stats.windows_scored == round(6.0 * FPS) - 7  # and every window was scored
    n = len(summary.events)
    assert n >= 2, [e.to_json() for e in summary.events]
    assert summary.notify["sent"] == 0 and summary.notify["unsent"] == 2  # one in flight, one queued ...
    assert summary.notify["dropped"] == n - 2 and summary.notify["failed"] == 0  # ... the rest dropped
    assert len(EventLog.read(tmp_path / "out" / "events.jsonl")) == n  # the log has every event


def test_a_full_queue_drops_and_counts_instead_of_waiting():
    hold = threading.Event()
    hook = Hook(hold=hold)
    notifier = Notifier(hook.url, queue_size=2, retries=0, timeout_s=60.0)
    try:
        assert notifier.send({"id": 1})
        for _ in range(500):  # until the worker has taken it (the hook holds it)
            if hook.requests:
                break
            threading.Event().wait(0.01)
        assert [notifier.send({"id": i}) for i in range(2, 6)] == [True, True, False, False]
        stats = notifier.close(0.1)
        assert (stats.sent, stats.dropped, stats.unsent, stats.failed) == (0, 2, 3, 0)
    finally:
        hold.set()
        hook.close()


def test_webhook_failures_are_counted_not_raised():
    """A hook that refuses (404: not retried) and a port nobody listens on (retried, then failed)."""
    hook = Hook(status=404)
    refused = Notifier(hook.url, retries=3, backoff_s=0.01)
    assert refused.send({"id": 1}) is True
    stats = refused.close()
    hook.close()
    assert (stats.sent, stats.failed, stats.retries, stats.unsent) == (0, 1, 0, 0)
    assert stats.last_error.startswith("HTTP 404")
    with socket.socket() as s:  # a free port, closed again: connections are refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    nobody = Notifier(f"http://127.0.0.1:{port}/", retries=2, backoff_s=0.01, timeout_s=2.0)
    nobody.send({"id": 1})
    stats = nobody.close()
    assert (stats.sent, stats.failed, stats.retries) == (0, 1, 2) and "refused" in stats.last_error.lower()


@pytest.mark.parametrize("url", ["ftp://host/x", "localhost:8080", "http://", "http://host:99999/"])
def test_bad_webhook_urls_are_refused(url):
    with pytest.raises(ValueError, match=r"--notify"):
        check_url(url)


def test_windows_eligible_is_never_below_windows_scored_for_a_slow_source(model, tmp_path):
    """A 12.5 fps file: every-window mode scores one window per tick of the model's 30 fps clock (frames repeat),
    real time one per new frame; eligible counts what each mode could score (it counted frames before)."""
    frames = render_long_video(7, 3.0, WorldConfig(size=64, fps=12.5)).frames
    video = write_mp4(frames, tmp_path / "slow.mp4", 12.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # slower than the model: warned about elsewhere
        offline = watch(open_source(video, realtime=False), model=model, out=None).stats
        live = watch(open_source(video, realtime=True), model=model, out=None).stats
    ticks = math.floor((len(frames) - 1) / 12.5 * FPS + 1e-6) + 1  # the model's ticks over the file
    assert offline.windows_eligible == offline.windows_scored == ticks - 7 > len(frames)
    assert live.windows_eligible >= live.windows_scored + live.windows_dropped and live.windows_scored > 0
    assert live.windows_eligible <= len(frames)
    assert math.isnan(offline.latency_ms["p50"]) and offline.process_ms["p50"] > 0
    assert math.isfinite(live.latency_ms["p50"]) and live.process_ms["p50"] > 0


# ----------------------------------------------------------------------------------------- region, overlay
def test_region_maps_the_top_tokens_through_the_models_view():
    excess = np.zeros((4, 4))
    excess[2, 3], excess[3, 3], excess[0, 0] = 1.0, 0.6, 0.4  # a group of two (bottom-right) and a lone weaker one
    assert top_tokens(excess).sum() == 2
    assert region_of(excess, (480, 640), 64, "resize") == (480, 240, 640, 480)
    # a center-cropping model sees the middle 480x480 of a 640x480 frame (after its 1.14x resize and crop)
    x0, y0, x1, y1 = region_of(excess, (480, 640), 64, "center_crop")
    assert 80 < x0 < x1 < 560 and y1 <= 480 and x1 - x0 == pytest.approx(480 * 64 / 73 / 4, abs=2)
    masked = np.full((4, 4), np.nan)  # every token masked out: no region
    assert region_of(masked, (480, 640), 64, "resize") is None


def test_the_peak_tracker_keeps_the_peak_frame_of_a_candidate_and_its_region():
    det = EventDetector(warmup_s=1.0, min_duration_s=0.2, min_samples=5)
    tracker = PeakTracker(64, "resize", lambda: det.heat_baseline)
    calm, hot = np.full((4, 4), 0.1), np.full((4, 4), 0.1)
    hot[0, 3] = 5.0  # the top-right token
    images = {}
    for i in range(80):
        t = i / 30
        surprising = 40 <= i < 50
        score = (0.9 if i == 41 else 0.5) if surprising else 0.1 + 0.01 * (i % 3)
        images[i] = np.full((120, 160, 3), i, np.uint8)
        step = det.update(t, score, frame_index=i, heatmap=hot if surprising else calm)
        tracker.observe(i, score, images[i], hot if surprising else calm, step.state, step.started, det.open_event)
        if step.started is not None:
            ev = step.started
            assert ev.peak_frame == 41 and tracker.image(ev.id) is images[41]  # found among the candidates
            assert ev.region == (120, 0, 160, 30) and ev.frame_size == (160, 120)
    assert det.events and det.events[0].peak_frame == 41


def test_overlay_is_drawn_per_token_with_an_outline_and_the_lower_level():
    frame = np.full((128, 192, 3), 100, np.uint8)
    heat = np.zeros((4, 4))
    heat[0, 0], heat[0, 1] = 1.0, 0.8
    outline = top_tokens(heat)
    img = annotate(frame, heatmap=heat, vmax=1.0, history=[0.1, 0.5, 0.2], threshold=0.4, low=0.25,
                   label="x", min_width=192, outline=outline)
    body = img[:128]
    assert (body[40:, 100:] == 100).all()  # no smear: tokens without excess keep the frame as it was
    assert not (body[22:28, 20:90] == 100).any()  # the hot tokens are tinted, flat
    assert (body[31, 60] == 255).all() and (body[34, 60] == 100).all()  # the outline: along the token edge
    strip = score_strip([0.1, 0.5, 0.2], 192, threshold=0.4, low=0.25)
    top = max(0.5, 0.4) * 1.1
    y_low = int(round(56 * (1 - 0.25 / top))) + 2
    assert tuple(strip[y_low, 1]) == (170, 150, 60) and tuple(strip[y_low, 6]) == (24, 24, 24)  # dashed


def _update(score: float, state: str, threshold: float = 0.4, low: float = 0.25) -> StreamUpdate:
    result = SurpriseResult(10, score, np.zeros((1, 4, 4)))
    step = DetectorStep(state, threshold, low, 0.1, 0.05)
    frame = CapturedFrame(np.zeros((8, 8, 3), np.uint8), 1.0, 10, 0.0, 0)
    return StreamUpdate(1.0, frame, ScoredWindow(1.0, 10, result, step, 0.0))


def test_the_label_says_why_an_event_holds_under_the_threshold():
    assert Renderer.label(_update(0.5, EVENT)).endswith("thr 0.400  EVENT")
    assert Renderer.label(_update(0.3, EVENT)).splitlines()[1] == "EVENT (holding above low 0.250)"
    assert Renderer.label(_update(0.2, EVENT)).splitlines()[1] == "EVENT (ending: under low 0.250)"
    assert Renderer.label(_update(0.3, "normal")).endswith("normal")


def test_event_description_and_margins_without_a_region():
    ev = Event(id=1, start_s=1.0, end_s=2.4, peak_s=1.5, peak_score=0.31, peak_frame=45, threshold=0.15,
               baseline=0.1, spread=0.01, peak_xy=(0.125, 0.125))
    record = ev.to_json()
    assert record["description"] == "surprise 0.310 (2.1x threshold 0.150) at top-left, 1.4 s"
    assert record["margin"] == pytest.approx(0.16) and record["margin_spreads"] == pytest.approx(16.0)
    assert record["region"] is None and record["thumbnail"] is None and record["run_id"] is None
