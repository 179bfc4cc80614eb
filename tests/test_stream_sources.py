"""Stream sources on real files written with OpenCV: timestamps, pacing, folders, clear errors, reopening."""

import threading
import time

import cv2
import numpy as np
import pytest

from edge_jepa.data.synthetic import WorldConfig, render_long_video, write_mp4
from edge_jepa.stream import (
    FileSource,
    ImageFolderSource,
    ReopeningSource,
    SourceError,
    SourceLost,
    open_source,
)
from edge_jepa.video import iter_frames


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """A 2 s, 30 fps synthetic scene as an MP4 file."""
    clip = render_long_video(3, 2.0, WorldConfig(size=64, fps=30.0))
    return write_mp4(clip.frames, tmp_path_factory.mktemp("src") / "scene.mp4", 30.0)


def read_all(source):
    out = []
    while (f := source.read()) is not None:
        out.append(f)
    return out


def test_file_source_matches_iter_frames(video):
    with open_source(video, realtime=False) as src:
        frames = read_all(src)
    ref = list(iter_frames(video))
    assert len(frames) == len(ref) == 60
    assert np.allclose([f.t for f in frames], [t for t, _ in ref])
    assert all(np.array_equal(f.image, im) for f, (_, im) in zip(frames, ref, strict=True))
    assert frames[0].image.dtype == np.uint8 and frames[0].image.shape == (64, 64, 3)


def test_realtime_file_is_paced_and_skips_late_frames(video):
    src = FileSource(video, realtime=True).open()
    start = time.monotonic()
    first = src.read()
    time.sleep(0.5)  # a consumer that falls 0.5 s behind: the source skips what is already late
    rest = read_all(src)
    elapsed = time.monotonic() - start
    src.close()
    assert first.t == pytest.approx(0.0, abs=1e-6)
    assert elapsed == pytest.approx(2.0 - 1 / 30, abs=0.25)  # the file's own duration on the wall clock
    assert src.skipped >= 10 and len(rest) + src.skipped == 59
    assert rest[0].t >= 0.45


def test_image_folder_order_fps_unreadable_and_resolution_change(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(6):
        size = (48, 64) if i < 3 else (96, 80)  # the resolution changes half-way
        cv2.imwrite(str(tmp_path / f"img_{i:03d}.png"), rng.integers(0, 255, (*size, 3), dtype=np.uint8))
    (tmp_path / "img_002.png").write_bytes(b"not a png")  # unreadable: skipped and counted
    (tmp_path / "notes.txt").write_text("ignored")
    with open_source(tmp_path, fps=5.0) as src:
        frames = read_all(src)
        assert src.skipped == 1
    assert [f.t for f in frames] == pytest.approx([0.0, 0.2, 0.6, 0.8, 1.0])
    assert [f.image.shape for f in frames] == [(48, 64, 3)] * 2 + [(96, 80, 3)] * 3


@pytest.mark.parametrize("spec, message", [
    ("{tmp}/missing.mp4", "no such file or folder"),
    ("{tmp}/empty", "no images"),
    ("{tmp}/text.mp4", "cannot open this as a video"),
    ("57", "camera 57: cannot open"),
    ("ftp://example.org/cam", "unsupported URL scheme"),
    ("rtsp://127.0.0.1:9/stream", "cannot open the stream"),
])
def test_clear_one_line_errors(tmp_path, spec, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "text.mp4").write_text("this is not a video")
    with pytest.raises(SourceError, match=message) as info:
        open_source(spec.format(tmp=tmp_path))
    assert "\n" not in str(info.value)


def test_live_source_cannot_be_non_realtime():
    with pytest.raises(SourceError, match="always real time"):
        open_source("rtsp://127.0.0.1:9/stream", realtime=False)


class FlakyFile(FileSource):
    """A real video file whose reading fails after `fail_after` frames (as a camera that drops)."""

    def __init__(self, path, fail_after: int, failures: int = 1, reopen_failures: int = 0, **kw):
        super().__init__(path, **kw)
        self.fail_after, self.failures, self.reopen_failures = fail_after, failures, reopen_failures
        self.opens, self.reads = 0, 0

    def _open(self):
        self.opens += 1
        if self.opens > 1 and self.reopen_failures > 0:
            self.reopen_failures -= 1
            raise SourceError(f"{self.name}: device busy")
        super()._open()

    def _read(self):
        self.reads += 1
        if self.failures > 0 and self.reads > self.fail_after:
            self.failures -= 1
            self.reads = 0
            raise SourceLost(f"{self.name}: stopped delivering frames")
        return super()._read()


def test_a_dropped_source_is_reopened_with_backoff_and_resumes(video):
    ref = list(iter_frames(video))
    flaky = FlakyFile(video, fail_after=20, failures=2, reopen_failures=2)
    src = ReopeningSource(flaky, backoff=(0.05, 0.1)).open()
    start = time.monotonic()
    frames = read_all(src)
    elapsed = time.monotonic() - start
    assert src.losses == 2 and src.reopens == 2 and flaky.opens == 5  # 1 + (2 failed + 1) + 1
    assert elapsed >= 0.05 + 0.1 + 0.1 + 0.05 - 0.01  # the backoff waits: 0.05, 0.1, 0.1 (repeats), 0.05
    assert len(frames) == len(ref)  # a file resumes exactly where it stopped: no frame lost or repeated
    assert np.allclose([f.t for f in frames], [t for t, _ in ref])
    assert src.segment == 0  # continuous: windows may span the reopen


def test_reopening_gives_up_with_a_clear_error(video):
    flaky = FlakyFile(video, fail_after=5, reopen_failures=100)
    src = ReopeningSource(flaky, backoff=(0.01,), max_attempts=3).open()
    with pytest.raises(SourceError, match="3 reopen attempts failed.*device busy"):
        read_all(src)


def test_interrupt_wakes_a_backoff_wait(video):
    flaky = FlakyFile(video, fail_after=2, reopen_failures=100)
    src = ReopeningSource(flaky, backoff=(30.0,), max_attempts=None).open()
    threading.Timer(0.2, src.interrupt).start()
    start = time.monotonic()
    assert read_all(src) and time.monotonic() - start < 5.0  # returned (None) soon after the interrupt


def test_folder_of_undecodable_images(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"broken")
    src = ImageFolderSource(tmp_path, fps=10.0).open()
    with pytest.raises(SourceError, match="none of the 1 images could be decoded"):
        src.read()
