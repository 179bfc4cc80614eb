"""The stream loop with real threads and real video files: every-window equivalence with offline scoring,
real-time dropping, reopening, resolution changes, headless outputs and the `watch` command."""

import json
import time

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edge_jepa.data.synthetic import WorldConfig, render_long_video, write_mp4
from edge_jepa.runtime import EagerRunner, Runner
from edge_jepa.stream import (
    ArraySource,
    EventDetector,
    FileSource,
    ReopeningSource,
    SourceLost,
    StreamLoop,
    open_source,
    watch,
)
from edge_jepa.surprise import surprise_scores
from edge_jepa.video import read_video
from tests.video_files import count_frames


@pytest.fixture
def model(tiny_model):
    return tiny_model  # 4 frames of 32 px, random weights: the mechanics, not the detection quality


def unscored(model) -> int:
    """Ticks of a segment before its first full window."""
    return model.config.clip.frames - 1


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_inference_thread):
    """Torch on one thread for the whole module (see conftest.one_inference_thread)."""


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """3 s of a synthetic scene at 30 fps, written with OpenCV."""
    clip = render_long_video(5, 3.0, WorldConfig(size=64, fps=30.0))
    return write_mp4(clip.frames, tmp_path_factory.mktemp("loop") / "scene.mp4", 30.0)


def tick_scores(loop: StreamLoop) -> tuple[list[float], list[float]]:
    """(times, scores) of every update of an every-window loop (NaN where no window was complete)."""
    times, scores = [], []
    for update in loop:
        if not update.repeat:
            times.append(update.t)
            scores.append(update.scored.result.score if update.scored is not None else np.nan)
    return times, scores


def test_every_window_mode_equals_offline_scoring(model, video):
    ref = read_video(video, fps=10.0)
    expected = surprise_scores(model, ref.frames)
    loop = StreamLoop(model, open_source(video, realtime=False))
    times, scores = tick_scores(loop)
    assert np.allclose(times, ref.times)
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-6, equal_nan=True)
    stats = loop.stats()
    assert stats.windows_scored == len(expected) - unscored(model) and stats.windows_dropped == 0
    assert stats.frames_captured == 90 and stats.queue_peak <= 8


class SlowRunner(Runner):
    """A runner that takes at least `delay` s per window: inference slower than a 30 fps camera."""

    def __init__(self, model, delay: float):
        self.inner, self.delay = EagerRunner(model), delay
        self.config, self.backend = model.config, "slow"

    def _run(self, clip):
        time.sleep(self.delay)
        return self.inner._run(clip)


def test_realtime_capture_never_waits_and_stale_windows_are_dropped(model):
    frames = render_long_video(6, 3.0, WorldConfig(size=64, fps=30.0)).frames
    loop = StreamLoop(SlowRunner(model, 0.1), ArraySource(frames, fps=30.0))  # paced at 30 fps
    windows = []
    for update in loop:
        if update.scored is not None and (not windows or windows[-1] != update.scored.frame_index):
            windows.append(update.scored.frame_index)
    stats = loop.stats()
    assert stats.frames_captured + stats.frames_skipped == 90  # capture kept up with the source ...
    assert stats.capture_fps == pytest.approx(30.0, rel=0.15)
    assert stats.update_fps < 11  # ... while inference managed < 10 windows/s
    assert stats.windows_dropped > 20  # so stale windows were dropped, and counted
    assert abs(stats.windows_scored + stats.windows_dropped - stats.windows_eligible) <= 1
    assert stats.ring_peak_frames <= 30 * unscored(model) / 10 + 2  # only what the newest window needs
    assert stats.latency_ms["p50"] < 250  # the newest window, not a queue of old ones
    assert windows == sorted(windows) and len(windows) >= 3


def test_a_dropped_file_is_reopened_and_scores_continue(model, video):
    class Flaky(FileSource):
        failed = False

        def _read(self):
            if self.position == 40 and not self.failed:
                self.failed = True
                raise SourceLost(f"{self.name}: stopped delivering frames")
            return super()._read()

    clean = StreamLoop(model, open_source(video, realtime=False))
    _, expected = tick_scores(clean)
    loop = StreamLoop(model, ReopeningSource(Flaky(video), backoff=(0.05,)).open())
    _, scores = tick_scores(loop)
    assert loop.stats().reopens == 1 and loop.stats().losses == 1
    np.testing.assert_allclose(scores, expected, atol=1e-6, equal_nan=True)  # resumed exactly: same scores


def test_a_discontinuous_reopen_starts_a_new_segment(model, video):
    class LiveLike(FileSource):
        resumes = False  # as a camera: the stream after a reopen does not continue the old one
        failed = False

        def _read(self):
            if self.position == 45 and not self.failed:
                self.failed = True
                raise SourceLost(f"{self.name}: stopped delivering frames")
            return super()._read()

    loop = StreamLoop(model, ReopeningSource(LiveLike(video), backoff=(0.01,)).open())
    _, scores = tick_scores(loop)
    assert loop.stats().segments == 2
    assert int(np.isnan(scores).sum()) == 2 * unscored(model)  # no window spans the gap


def test_resolution_change_mid_stream(model, tmp_path):
    frames = render_long_video(7, 3.0, WorldConfig(size=96, fps=10.0)).frames
    for i, frame in enumerate(frames):
        if i >= 15:  # the camera switches to another resolution
            frame = cv2.resize(frame, (128, 72))
        cv2.imwrite(str(tmp_path / f"{i:04d}.png"), frame[:, :, ::-1])
    out = tmp_path / "out"
    summary = watch(tmp_path, model=model, headless=True, out=out)
    stats = summary.stats
    assert stats.resolution_changes == 1 and stats.segments == 2
    assert stats.frames_captured == 30 and stats.windows_scored == 30 - 2 * unscored(model)
    assert (out / "annotated.mp4").exists()


def test_headless_outputs(model, video, tmp_path):
    out = tmp_path / "out"
    summary = watch(video, model=model, headless=True, out=out)
    assert not summary.realtime and not summary.interrupted
    n, (h, w, _) = count_frames(out / "annotated.mp4")
    assert n == 30  # one annotated frame per tick of the model's clock: 3 s at 10 fps
    assert w == 320 and h == 320 + 60  # the frame upscaled to 320 px + the score strip
    png = cv2.imread(str(out / "timeline.png"))
    assert png is not None and png.shape[1] > 800
    report = json.loads((out / "summary.json").read_text())
    assert report["stats"]["windows_scored"] == 30 - unscored(model) and report["stats"]["windows_dropped"] == 0
    assert set(report["outputs"]) >= {"events", "video", "timeline", "summary"}
    assert report["calibration"]["k"] == EventDetector().k and (out / "events.jsonl").exists()


def test_watch_command(model, video, tmp_path):
    from edge_jepa.cli.app import app
    from edge_jepa.cli.stream_commands import watch_command  # noqa: F401  (registers `watch`)

    model_dir = tmp_path / "model"
    model.save(model_dir)
    runner = CliRunner()
    out = tmp_path / "out"
    res = runner.invoke(app, ["watch", str(video), "--model", str(model_dir), "--headless", "--out", str(out),
                              "--k", "8"])
    assert res.exit_code == 0, res.output
    n = 30 - unscored(model)
    assert "windows eligible / scored / dropped" in res.output and f"{n} / {n} / 0" in res.output
    assert "n/a (every window" in res.output and "scoring time per window" in res.output  # no offline latency
    assert json.loads((out / "summary.json").read_text())["calibration"]["k"] == 8.0
    # a 1 s video ends inside the 5 s calibration: said on one plain line, not as a Python warning
    assert "warning: " in res.output and "inside the detector's 5 s calibration" in res.output
    assert "RuntimeWarning" not in res.output
    bad = runner.invoke(app, ["watch", str(tmp_path / "nope.mp4"), "--model", str(model_dir), "--headless"])
    assert bad.exit_code == 2 and "no such file or folder" in bad.output
    bad = runner.invoke(app, ["watch", str(video), "--model", str(model_dir), "--headless", "--k", "1",
                              "--k-low", "2"])
    assert bad.exit_code == 2 and "k_low" in bad.output


def test_window_keys_quit_pause_recalibrate(model, video, tmp_path, monkeypatch):
    """The live window path with OpenCV's GUI calls scripted (no display here): r recalibrates, space pauses
    and resumes scoring, q quits; a file is played in real time when shown."""
    shown, scored_during_pause = [], set()
    script = {60: ord("r"), 20: ord(" "), 40: ord(" "), 85: ord("q")}  # key pressed once N frames were shown
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(cv2, "imshow", lambda name, image: shown.append(image.shape))
    monkeypatch.setattr(cv2, "waitKey", lambda ms: script.pop(len(shown), -1))
    monkeypatch.setattr(cv2, "getWindowProperty", lambda *args: 1.0)
    monkeypatch.setattr(cv2, "destroyWindow", lambda *args: None)

    def on_update(update, image):
        if 25 <= len(shown) <= 38 and update.scored is not None:
            scored_during_pause.add(update.scored.frame_index)

    summary = watch(video, model=model, headless=False, out=tmp_path, on_update=on_update,
                    detector=EventDetector(warmup_s=1.0))
    assert summary.realtime and summary.interrupted and not script  # every key was read; q ended it
    assert 80 <= len(shown) <= 86 and shown[0] == (380, 320, 3)
    assert len(scored_during_pause) <= 2  # paused: no new scores (one may have been in flight)
    assert summary.calibration["state"] == "calibrating"  # recalibrated at 2 s: still learning at 2.8 s
    assert not (tmp_path / "annotated.mp4").exists()  # only headless runs write the annotated video
