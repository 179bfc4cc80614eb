"""End to end with the embedded window model (`window`, on which the detector was tuned): violations at known
times become events, a plausible scene stays quiet, an open event survives shutdown, the event log survives
SIGKILL; the example app runs with its default model (the frame-causal default).

The frame-causal default does not pass the quiet-scene checks on these 128 px scenes (measured when it became the
default: 9 events in the 38 s plausible scene, and 13 in the swap scene of which 7 away from the swaps), so the
window model stays the model of this file."""

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import edge_jepa
from edge_jepa.data.synthetic import WorldConfig, render_long_video, write_mp4
from edge_jepa.stream import ArraySource, EventDetector, EventLog, watch

ROOT = Path(__file__).resolve().parents[1]
FPS = 30.0  # the videos are written at 30 fps (the loop resamples them to the model's fps by timestamps)
TEST_SEED = 4242  # never used to tune the detector (tuning: seeds 100-109, see edge_jepa/stream/README.md)
# The violation: the world is swapped for another synthetic scene for 1 s (every object vanishes, others appear,
# then everything is back). The embedded window model detects this reliably; single-object violations of the
# synthetic world it detects far less reliably (its card gives a matched-pair AUROC of 0.66): see docs/world-model.md.
# Scenes have no occluder: objects re-emerging from behind it are what the window model finds surprising in
# plausible scenes.
SWAPS = (10.0, 17.0, 24.0, 31.0)
SWAP_S = 1.0
TOLERANCE = (-0.2, 1.0)  # an event starts within [t - 0.2 s, t + 1.0 s] of each violation
REQUIRED = {"id", "start_s", "end_s", "peak_s", "peak_score", "clip"}
WORLD = WorldConfig(size=128, fps=FPS, occluder_prob=0.0)


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_inference_thread):
    """Torch on one thread for the whole module (see conftest.one_inference_thread)."""


@pytest.fixture(scope="module")
def model():
    return edge_jepa.load("window")


def swapped_scene(path: Path, seconds: float, swaps=(), seed: int = TEST_SEED) -> Path:
    """A synthetic scene written at 30 fps in which another scene replaces it for SWAP_S at each swap time."""
    frames = render_long_video(seed, seconds, WORLD).frames.copy()
    if swaps:
        other = render_long_video(seed + 1, seconds, WORLD).frames
        for t in swaps:
            a, b = int(round(t * FPS)), int(round((t + SWAP_S) * FPS))
            frames[a:b] = other[a:b]
    return write_mp4(frames, path, FPS)


def near(event, t: float) -> bool:
    """The event starts at the swap, or when the world comes back (t + SWAP_S), within the tolerance."""
    return any(s + TOLERANCE[0] <= event.start_s <= s + TOLERANCE[1] for s in (t, t + SWAP_S))


@pytest.mark.slow
def test_violations_become_events_within_tolerance(model, tmp_path):
    video = swapped_scene(tmp_path / "violations.mp4", 38.0, SWAPS)
    # k = 6: the setting the window model was tuned at (the default k = 8 was chosen for the frame-causal default;
    # at 8 the window model keeps 9 of 80 validation violations against 17: edge_jepa/stream/README.md)
    summary = watch(video, model=model, headless=True, out=tmp_path / "out", detector=EventDetector(k=6.0))
    events = summary.events
    described = [(round(e.start_s, 2), round(e.peak_score, 3)) for e in events]
    for t in SWAPS:
        assert any(t + TOLERANCE[0] <= e.start_s <= t + TOLERANCE[1] for e in events), \
            f"no event within {TOLERANCE} s of the violation at {t:.2f} s; events: {described}"
    assert all(any(near(e, t) for t in SWAPS) for e in events), f"events away from the violations: {described}"
    logged = EventLog.read(tmp_path / "out" / "events.jsonl")
    assert [r["id"] for r in logged] == [e.id for e in events]
    for record in logged:
        assert set(record) >= REQUIRED and (tmp_path / "out" / record["clip"]).exists()


@pytest.mark.slow
def test_a_plausible_scene_gives_no_events_after_calibration(model, tmp_path):
    video = swapped_scene(tmp_path / "plausible.mp4", 38.0)
    summary = watch(video, model=model, headless=True, out=tmp_path / "out")
    assert summary.events == [], [e.to_json() for e in summary.events]
    clip = model.config.clip  # one window per frame at the model's fps once the first window is full
    assert summary.stats.windows_scored == round(38.0 * clip.fps) - (clip.frames - 1)
    assert summary.calibration["state"] == "normal"


def test_an_open_event_is_closed_and_logged_at_shutdown(model, tmp_path):
    """The picture turns to static for good: the event is still open when watch stops, and is logged."""
    fps = model.config.clip.fps  # a source at the model's own rate (a slower one repeats frames: see below)
    scene = render_long_video(1, 6.0, WorldConfig(size=96, fps=fps)).frames
    static = np.random.default_rng(0).integers(0, 256, (round(6 * fps), 96, 96, 3), dtype=np.uint8)
    frames = np.concatenate([scene, static])
    logged, times = [], []
    summary = watch(ArraySource(frames, fps=fps, realtime=False), model=model, out=tmp_path,
                    detector=EventDetector(warmup_s=3.0), max_seconds=8.0, on_event=logged.append,
                    on_update=lambda update, image: times.append(update.t))
    (ev,) = summary.events
    assert ev.closed_by == "shutdown" and 5.9 <= ev.start_s <= 6.5 and summary.interrupted
    assert 8.0 - 1e-6 <= max(times) < 8.0 + 1 / fps  # max_seconds counts from the source's first frame (t = 0)
    (record,) = EventLog.read(tmp_path / "events.jsonl")
    assert record["id"] == ev.id == logged[0].id and record["clip"] == "clips/event_0001.mp4"
    assert (tmp_path / "clips" / "event_0001.mp4").exists()


@pytest.mark.slow
def test_event_log_is_intact_after_sigkill(tmp_path):
    video = swapped_scene(tmp_path / "long.mp4", 120.0, [8.0 + 6.0 * i for i in range(18)])
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "edge_jepa.stream", "watch", str(video), "--headless", "--out", str(out),
           "--threads", "1"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    log = out / "events.jsonl"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            if log.exists() and log.read_text().count("\n") >= 1:
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"watch ended before an event was logged: {proc.stderr.read().decode()}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert text.endswith("\n")
    lines = text.splitlines()
    assert lines
    for line in lines:
        record = json.loads(line)  # every line parses ...
        assert set(record) >= REQUIRED  # ... and is complete
        assert record["start_s"] <= record["peak_s"] <= record["end_s"]
    assert not (out / "summary.json").exists()  # it was killed mid-stream, not finished


@pytest.mark.slow
def test_example_app_runs_without_a_window(tmp_path):
    video = swapped_scene(tmp_path / "short.mp4", 3.0)
    res = subprocess.run([sys.executable, str(ROOT / "apps" / "webcam_surprise.py"), str(video), "--no-window",
                          "--log", str(tmp_path / "events.jsonl"), "--warmup", "1"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "scores/s" in res.stdout and (tmp_path / "events.jsonl").exists()


def test_a_source_slower_than_the_model_is_warned_about(model, tmp_path):
    """A 10 fps source fills the model's 30 fps windows with repeated frames: watch says so (and still runs)."""
    frames = render_long_video(1, 2.0, WorldConfig(size=64, fps=10.0)).frames
    with pytest.warns(RuntimeWarning, match=r"delivers 10 fps but the model works at 30 fps.*stop-and-go"):
        summary = watch(ArraySource(frames, fps=10.0, realtime=False), model=model, out=tmp_path, clips=False)
    assert summary.stats.windows_scored > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # at the model's rate: no warning
        watch(ArraySource(np.repeat(frames, 3, axis=0), fps=30.0, realtime=False), model=model,
              out=tmp_path / "native", clips=False, detector=EventDetector(warmup_s=1.0))


def test_a_source_too_short_to_judge_is_warned_about(model, tmp_path):
    """A video shorter than one window scores nothing, one shorter than the calibration can raise no event:
    watch says which (and still writes its outputs); a long enough one gets no such warning."""
    frames = render_long_video(2, 2.0, WorldConfig(size=64, fps=30.0)).frames  # 60 frames at the model's 30 fps
    with pytest.warns(RuntimeWarning, match=r"ended after 3 frame\(s\).*before one window.*nothing was scored"):
        summary = watch(ArraySource(frames[:3], fps=30.0, realtime=False), model=model, out=tmp_path / "a")
    assert summary.stats.windows_scored == 0 and (tmp_path / "a" / "summary.json").exists()
    with pytest.warns(RuntimeWarning, match=r"ended after 2\.0 s, inside the detector's 5 s calibration"):
        summary = watch(ArraySource(frames, fps=30.0, realtime=False), model=model, out=tmp_path / "b", clips=False)
    assert summary.stats.windows_scored > 0 and not summary.events
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        watch(ArraySource(frames, fps=30.0, realtime=False), model=model, out=tmp_path / "c", clips=False,
              detector=EventDetector(warmup_s=1.0))
