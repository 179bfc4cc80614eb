"""`fit` that proves itself: decoding at the model's size, the held-out slice (never trained on), the before/after
check and its events, --steps / --minutes, and footage too short or unreadable. Real MP4s written by OpenCV."""

from __future__ import annotations

import json
import math
import tracemalloc

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

import edge_jepa
from edge_jepa.cli import app
from edge_jepa.preprocess import resize_frame
from edge_jepa.train.data import FootageTooShort, HeldOut, VideoSource
from edge_jepa.video import iter_frames, read_video, resample_indices
from tests.conftest import TINY

runner = CliRunner()


def _write(path, frames, fps):
    """Write BGR frames with OpenCV (mp4v)."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def _scene(n, w=96, h=72, seed=0, change_at=None):
    """A textured still background with a small square drifting across it; from frame `change_at` on, a large
    bright block sits in the lower right quarter."""
    rng = np.random.default_rng(seed)
    bg = cv2.resize(rng.integers(30, 220, (h // 8, w // 8, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)
    frames = []
    for i in range(n):
        f = bg.copy()
        x = abs((i * 2) % (2 * (w - 12)) - (w - 12))  # back and forth, never jumping
        cv2.rectangle(f, (x, h // 3), (x + 8, h // 3 + 8), (20, 20, 230), -1)
        if change_at is not None and i >= change_at:
            cv2.rectangle(f, (w // 2, h // 2), (w - 4, h - 4), (250, 250, 250), -1)
        frames.append(f)
    return frames


def test_decoding_keeps_only_model_size_frames_at_the_model_rate(tmp_path):
    """The source's 640x480 frames are shrunk as they are decoded: the peak of traced memory is the kept small
    frames plus a few full frames in flight, not the 60 full frames of the file (55 MB); the frames equal those
    of decoding everything first, then resampling by timestamps and resizing."""
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 255, (480, 640, 3), dtype=np.uint8) for _ in range(3)]
    path = _write(tmp_path / "noise.mp4", [frames[i % 3] for i in range(60)], 30.0)
    full_frame = 480 * 640 * 3

    tracemalloc.start()
    try:
        video = read_video(path, 10.0, transform=lambda f: resize_frame(f, 32, "resize"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert video.frames.dtype == np.uint8 and video.frames.shape == (20, 32, 32, 3)
    assert peak < 2 * video.frames.nbytes + 4 * full_frame, f"peak {peak / 2**20:.1f} MB"

    decoded = list(iter_frames(path))  # the whole file at full resolution, then resampled and resized
    times = np.array([t for t, _ in decoded])
    idx = resample_indices(times, 10.0)
    expected = np.stack([resize_frame(decoded[i][1], 32, "resize") for i in idx])
    np.testing.assert_array_equal(video.frames, expected)
    np.testing.assert_allclose(video.times, times[0] + np.arange(20) / 10.0)


def test_the_held_out_tail_is_never_trained_on(tmp_path):
    """Frame i of the file is grey level 20 + 2 i: every training clip comes from the first 80% of the video."""
    grey = [np.full((48, 64, 3), 20 + 2 * i, np.uint8) for i in range(100)]
    path = _write(tmp_path / "ramp.mp4", grey, 10.0)
    src = VideoSource(path, TINY.clip, holdout=0.2)
    (held,) = src.held_out
    assert len(src.videos[0]) == 80 and len(held.frames) == 20 and held.start_s == 8.0 and held.fps == 10.0
    np.testing.assert_allclose(held.times, 8.0 + np.arange(20) / 10.0)
    assert held.frames.shape[1:] == (32, 32, 3)
    assert abs(float(held.frames[0].mean()) - (20 + 2 * 80)) < 4
    seen = np.concatenate([src.batch(step, 8).reshape(-1, 32 * 32 * 3).mean(1) for step in range(40)])
    assert seen.max() < 20 + 2 * 79 + 4  # the last training frame, never a held-out one
    assert seen.min() < 40  # and the start of the video is sampled


def test_the_check_raises_the_events_watch_would_on_the_held_out_slice(tmp_path):
    """The embedded window model on a real file: a block appearing 5.5 s into the held-out slice (past the
    detector's 5 s warm-up) is an event there, with times and frame numbers of the source video."""
    from edge_jepa.train.heldout import check_model

    path = _write(tmp_path / "scene.mp4", _scene(480, change_at=465), 30.0)  # 16 s; the block appears at 15.5 s
    frames = read_video(path, 30.0, transform=lambda f: resize_frame(f, 64, "resize")).frames
    held = HeldOut(str(path), frames[300:], 10.0, 30.0)
    check = check_model(edge_jepa.load("window"), [held])
    (scores,) = check.scores
    assert scores.shape == (180,) and np.isnan(scores[:7]).all() and np.isfinite(scores[7:]).all()
    assert check.windows == 173 and math.isfinite(check.prediction_loss)
    assert check.median <= check.p95 <= check.max == pytest.approx(np.nanmax(scores))
    assert {e["video"] for e in check.events} == {str(path)}, check.events
    # the warm-up is reviewed in hindsight (issue 19): what crossed the scene's threshold in its first 5 s is reported,
    # flagged; after it, the block is the one event
    warmup = [e for e in check.events if e["calibration"] == "warmup"]
    assert all(e["start_s"] < 10.0 + 7 / 30 + 5.0 for e in warmup), warmup
    (event,) = [e for e in check.events if e["calibration"] != "warmup"]
    assert 15.5 <= event["peak_s"] <= 15.8 and 465 <= event["peak_frame"] <= 474
    assert event["peak_score"] == pytest.approx(check.max, abs=1e-6) and event["peak_score"] > event["threshold"]


def test_fit_reports_the_held_out_check_before_and_after(tiny_model_dir, tmp_path):
    path = _write(tmp_path / "street.mp4", _scene(120), 10.0)  # 12 s at the tiny model's 10 fps
    res = runner.invoke(app, ["fit", "--source", str(path), "--out", str(tmp_path / "fitted"), "--model",
                              str(tiny_model_dir), "--steps", "4", "--batch-size", "2", "--threads", "1",
                              "--holdout", "0.25"])
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())
    assert "trained 4 steps" in out and "the step cap (--steps 4) came first" in out
    assert "held-out check: the last 3.0 s of the footage" in out and "never trained on" in out
    for row in ("prediction loss", "surprise median", "surprise p95", "surprise max", "events raised"):
        assert row in out
    assert "->" not in out  # no first/last batch loss
    assert "a minute or more is recommended" in out  # 12 s: a warning, not a refusal
    card = json.loads((tmp_path / "fitted" / "card.json").read_text())["fit"]
    assert card["stopped_by"] == "steps" and card["held_out"] == [{"video": str(path), "start_s": 9.0,
                                                                   "seconds": 3.0}]
    before, after = card["before"], card["after"]
    assert before["windows"] == after["windows"] == 30 - 3
    assert before["prediction_loss"] != after["prediction_loss"]  # a different model was checked after
    for side in (before, after):
        assert side["surprise"]["median"] <= side["surprise"]["p95"] <= side["surprise"]["max"]


def test_fit_api_returns_the_scores_and_stops_at_the_time_budget(tiny_model_dir, tmp_path):
    path = _write(tmp_path / "street.mp4", _scene(100), 10.0)
    with pytest.warns(RuntimeWarning, match="a minute or more"):
        run = edge_jepa.fit(path, tmp_path / "fitted", str(tiny_model_dir), minutes=0.0002, steps=100_000,
                            batch_size=2, threads=1)
    assert run.check.stopped_by == "time" and run.result.stopped_early and 1 <= run.result.steps_done < 100_000
    (scores,) = run.check.after.scores
    assert scores.shape == (20,) and np.isfinite(scores[3:]).all()
    np.testing.assert_allclose(run.check.after.times[0], 8.0 + np.arange(20) / 10.0)
    card = json.loads((tmp_path / "fitted" / "card.json").read_text())
    assert card["fit"]["stopped_by"] == "time" and card["fit"]["after"]["surprise"]["max"] == pytest.approx(
        float(np.nanmax(scores)), abs=1e-6)
    # the fitted model carries its surprise prior from these held-out scores: watch starts from this scene's normal
    from edge_jepa.stream.prior import prior_for

    prior = prior_for(str(tmp_path / "fitted"))
    finite = scores[np.isfinite(scores)]
    assert prior is not None and prior.baseline == pytest.approx(float(np.median(finite)), abs=1e-6)


def test_fit_refuses_footage_too_short_or_unreadable(tiny_model_dir, tmp_path):
    short = _write(tmp_path / "short.mp4", _scene(30), 10.0)  # 3 s
    res = runner.invoke(app, ["fit", "--source", str(short), "--out", str(tmp_path / "f"), "--model",
                              str(tiny_model_dir), "--steps", "2"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    line = " ".join(res.output.split())
    assert "short.mp4: 3.0 s of footage at 10 fps is too short to fit and check: needs at least 7.0 s" in line
    with pytest.raises(FootageTooShort):
        VideoSource(short, TINY.clip, holdout=0.2)
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    (tmp_path / "empty").mkdir()
    for source, message in ((tmp_path / "broken.mp4", "broken.mp4: OpenCV cannot open this file"),
                            (tmp_path / "empty", "no video files"), (tmp_path / "nope.mp4", "nope.mp4")):
        res = runner.invoke(app, ["fit", "--source", str(source), "--out", str(tmp_path / "f"), "--model",
                                  str(tiny_model_dir), "--steps", "2"])
        assert res.exit_code == 2 and message in " ".join(res.output.split()), res.output
        assert not (tmp_path / "f").exists()
    res = runner.invoke(app, ["fit", "--source", str(short), "--out", str(tmp_path / "f"), "--holdout", "0.9"])
    assert res.exit_code == 2 and "--holdout" in res.output


def test_camera_recording_for_fit_streams_to_disk(tmp_path, monkeypatch):
    """`fit --source 0` records the camera first. No camera exists here, so a stand-in VideoCapture (a mock of
    the device only) delivers 1280x720 frames; the MP4 is real, and the recording never holds its frames."""
    from edge_jepa.cli.world_commands import _record_camera
    from tests.video_files import count_frames

    class Camera:
        def __init__(self, index):
            self.n = 0

        def isOpened(self):  # noqa: N802 (OpenCV's name)
            return True

        def read(self):
            self.n += 1
            return True, np.full((720, 1280, 3), self.n % 250, np.uint8)

        def release(self):
            pass

    monkeypatch.setattr(cv2, "VideoCapture", Camera)
    tracemalloc.start()
    try:
        path = _record_camera(0, 1.0, 20.0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    monkeypatch.undo()
    count, shape = count_frames(path)
    assert 2 <= count <= 21 and shape == (720, 1280, 3)  # at most 20 fps for 1 s (fewer on a loaded machine)
    assert peak < 6 * 720 * 1280 * 3, f"peak {peak / 2**20:.1f} MB for {count} frames of 2.6 MB"
