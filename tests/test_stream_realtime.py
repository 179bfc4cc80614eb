"""What keeps `watch` real time at 720p: frames shrunk once at capture, the annotated video encoded in a thread
of its own (complete and decodable, nothing lost when the run is stopped), one torch thread by default.
Speed itself is measured in benchmarks/watch_720p.py, not here."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import edge_jepa
from edge_jepa.stream import EventDetector, FileSource, watch
from edge_jepa.surprise import SurpriseScorer, surprise_scores
from edge_jepa.viz import VideoWriter, fit_width
from tests.conftest import shared_video
from tests.video_files import count_frames


@pytest.fixture(scope="module")
def video_720p(tmp_path_factory) -> Path:
    """2 s of the shared webcam clip upscaled to 1280x720 at 30 fps (a 720p camera's frames)."""
    clip = shared_video("trflorian_ball2.mp4")
    path = tmp_path_factory.mktemp("v720") / "ball_720p.mp4"
    cap = cv2.VideoCapture(str(clip))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (1280, 720))
    for _ in range(60):
        ok, frame = cap.read()
        assert ok
        writer.write(cv2.resize(frame, (1280, 720)))
    writer.release()
    cap.release()
    return path


def frames_of(path: Path) -> list[np.ndarray]:
    cap, out = cv2.VideoCapture(str(path)), []
    while (got := cap.read())[0]:
        out.append(got[1])
    cap.release()
    return out


def test_the_background_writer_writes_what_the_direct_one_writes(tmp_path):
    rng = np.random.default_rng(0)
    frames = [cv2.GaussianBlur(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), (9, 9), 3) for _ in range(40)]
    paths = []
    for background in (False, True):
        writer = VideoWriter(tmp_path / f"bg_{background}.mp4", 10.0, background=background, queue_size=4)
        for f in frames:
            writer.write(f)
        paths.append(writer.close())
        assert writer.queue_peak <= 4  # bounded: the caller waits rather than queueing without limit
    direct, threaded = (frames_of(p) for p in paths)
    assert len(threaded) == len(direct) == 40
    assert all(np.array_equal(a, b) for a, b in zip(direct, threaded, strict=True))  # same frames, same order
    assert not list(tmp_path.glob(".*partial*"))


def test_an_aborted_background_writer_leaves_nothing(tmp_path):
    writer = VideoWriter(tmp_path / "gone.mp4", 10.0, background=True, queue_size=2)
    for _ in range(20):
        writer.write(np.full((64, 64, 3), 128, np.uint8))
    writer.abort()
    assert list(tmp_path.iterdir()) == []
    assert writer._thread is None  # the encoding thread has ended


def test_fit_width_shrinks_once_keeping_the_aspect():
    frame = np.zeros((1080, 1920, 3), np.uint8)
    frame[:, 960:] = 255  # right half white: must stay so after shrinking
    small = fit_width(frame, max_width=640)
    assert small.shape == (360, 640, 3)
    assert small[:, :310].max() == 0 and small[:, 330:].min() == 255
    assert fit_width(small, max_width=640) is small  # already small enough: no copy
    assert fit_width(np.zeros((100, 160, 3), np.uint8), min_width=320).shape == (200, 320, 3)


def test_watch_720p_draws_the_small_view_and_writes_a_complete_video(tmp_path, video_720p):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    seen: list[tuple[int, tuple[int, ...], tuple[int, ...] | None]] = []

    def on_update(update, image):
        view = update.frame.view
        if not update.repeat:  # a repeat (the last frame again, carrying the final events) is not written again
            seen.append((torch.get_num_threads(), update.frame.image.shape, None if view is None else view.shape))
        assert image is None or image.shape[1] == 640

    try:
        summary = watch(video_720p, model="default", headless=True, out=tmp_path / "out", on_update=on_update,
                        clips=False, detector=EventDetector(warmup_s=1.0))
        assert torch.get_num_threads() == 2  # restored after the run
    finally:
        torch.set_num_threads(before)
    assert {threads for threads, _, _ in seen} == {1}  # the default: one inference thread
    assert {(image, view) for _, image, view in seen} == {((720, 1280, 3), (360, 640, 3))}  # full frame kept
    count, shape = count_frames(tmp_path / "out" / "annotated.mp4")
    assert count == summary.stats.frames_rendered == len(seen) > 50  # every drawn frame is in the file
    assert shape == (360 + 60, 640, 3)  # the 640 px view and the score strip below it


def test_a_stopped_watch_keeps_every_frame_it_drew(tmp_path, video_720p):
    drawn = []

    def stop_after_20(update, image):
        if image is not None and not update.repeat:
            drawn.append(update.t)
        if len(drawn) == 20:
            raise KeyboardInterrupt  # what Ctrl-C does in the caller's thread

    source = FileSource(video_720p, realtime=False)
    summary = watch(source, model="world", headless=True, out=tmp_path / "out", on_update=stop_after_20,
                    clips=False, width=320, threads=None)
    assert summary.stopped_by == "interrupt"
    count, shape = count_frames(tmp_path / "out" / "annotated.mp4")
    assert count == summary.stats.frames_rendered >= 20  # drawn before the stop, and drained after it
    assert shape[1] == 320
    assert not list((tmp_path / "out").glob(".*partial*"))


class _ThreadsSeen(SurpriseScorer):
    """The real window model's scorer, noting the torch threads each batch of windows runs with."""

    def score_clips(self, clips, end_indices):
        self.threads = getattr(self, "threads", set()) | {torch.get_num_threads()}
        return super().score_clips(clips, end_indices)


def test_surprise_scores_runs_on_one_thread_by_default_and_restores_it(video_720p):
    frames = np.stack([cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in frames_of(video_720p)[:12]])
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        scorer = _ThreadsSeen("window")
        scores = surprise_scores(scorer, frames)
        assert scorer.threads == {1} and torch.get_num_threads() == 2
        again = _ThreadsSeen("window")
        assert np.allclose(surprise_scores(again, frames, threads=2), scores, equal_nan=True)
        assert again.threads == {2}
    finally:
        torch.set_num_threads(before)


def test_the_finer_grid_model_locates_on_8x8_tokens(video_720p):
    """world_pico_p8 (8 px patches at 64 px) builds, and scores a real 720p clip with an 8x8 heatmap, twice the
    4x4 resolution of world_pico (fresh weights: only the shapes and the path are checked here; its cost is in
    benchmarks/finer_grid_cost.py)."""
    from edge_jepa.surprise import surprise_trace

    model = edge_jepa.create("world_pico_p8", seed=0).eval()
    assert model.token_grid() == (8, 8)
    assert model.flops_per_update()["kv"] > 4 * edge_jepa.create("world_pico", seed=0).flops_per_update()["kv"]
    frames = np.stack([cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in frames_of(video_720p)[:12]])
    results = surprise_trace(model, frames)
    assert [r.frame_index for r in results] == list(range(7, 12))
    assert all(r.heatmap.shape == (8, 8) and np.isfinite(r.score) for r in results)
