"""Photometric robustness and regions of interest, on real footage written as real video files, with the embedded
models: an exposure / white-balance change raises no event while an object entering does; a mask hiding the object
removes its event; bad masks end in one `error:` line (exit 2)."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

import edge_jepa
from edge_jepa.cli import app
from edge_jepa.data import write_mp4
from edge_jepa.photometric import PhotometricNormalizer
from edge_jepa.preprocess import resize_frame
from edge_jepa.roi import MaskError, RoiMask
from edge_jepa.stream import EventDetector, watch
from edge_jepa.video import read_video
from edge_jepa.viz import model_view_region
from tests.conftest import shared_video

FPS = 30.0
SIZE = (160, 120)  # (w, h) of the written clips
OBJECT_AT = 5.0  # the object starts entering (from the left edge, 0.3 s, then stays)
OBJECT_BOX = (30, 90, 0, 70)  # rows, columns it covers once in: the left 44% of the frame
CHANGE_ZONE = (2.3, 4.9)  # the photometric change and its settling (before the object)
runner = CliRunner()


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_inference_thread):
    """Torch on one thread for the whole module (see conftest.one_inference_thread)."""


@pytest.fixture(scope="module")
def footage():
    """(background, object): 1 s of a real webcam on a quiet wall played back and forth, and a real street patch."""
    wall = read_video(shared_video("trflorian_ball2.mp4"), max_seconds=1.0, resize=SIZE).frames[:24]
    street = read_video(shared_video("ckuhn_traffic.mp4"), max_seconds=0.5, resize=SIZE).frames[0]
    return np.concatenate([wall, wall[::-1][1:-1]]), street[30:90, 40:110]


def scene(footage, gain_at) -> np.ndarray:
    """6 s at 30 fps: the wall under the per-channel gain gain_at(t) -> [3], and the street patch sliding in at
    OBJECT_AT from the left."""
    loop, patch = footage
    frames = []
    for i in range(int(6 * FPS)):
        t = i / FPS
        f = loop[i % len(loop)].astype(np.float32) * np.asarray(gain_at(t), np.float32)
        if t >= OBJECT_AT:
            x = int(min((t - OBJECT_AT) / 0.3, 1.0) * patch.shape[1])
            if x:
                f[OBJECT_BOX[0] : OBJECT_BOX[1], :x] = patch[:, patch.shape[1] - x :]
        frames.append(np.clip(f + 0.5, 0, 255).astype(np.uint8))
    return np.stack(frames)


def auto_exposure(t: float) -> list[float]:
    """Exposure halves at 2.5 s (mean brightness ~136 -> ~68) and the camera recovers over 1 s from 3 s."""
    g = 1.0 if t < 2.5 else 0.5 if t < 3.0 else min(0.5 + 0.5 * (t - 3.0), 1.0)
    return [g, g, g]


def ramp_and_white_balance(t: float) -> list[float]:
    """From 2.5 s to 4 s: exposure ramps to 0.7 while the colour temperature warms (R x1.2, B x0.85)."""
    a = float(np.clip((t - 2.5) / 1.5, 0.0, 1.0))
    g = 1.0 - 0.3 * a
    return [g * (1 + 0.2 * a), g, g * (1 - 0.15 * a)]


def write_avi(frames: np.ndarray, path: Path) -> Path:
    """Motion-JPEG AVI (OpenCV): every frame coded alone, so a global ramp leaves no inter-frame coding noise."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, SIZE)
    for f in frames:
        writer.write(np.ascontiguousarray(f[:, :, ::-1]))
    writer.release()
    return path


def starts(summary) -> list[float]:
    return [round(e.start_s, 2) for e in summary.events]


def run_watch(path, model, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the detector's short warm-up
        return watch(path, model=model, headless=True, out=None, detector=EventDetector(warmup_s=2.0), **kwargs)


def in_zone(times, zone) -> list[float]:
    return [t for t in times if zone[0] <= t <= zone[1]]


def test_window_model_exposure_drop_and_recovery_are_no_event_but_the_object_is(footage, tmp_path):
    """The window model on an MP4: the exposure drop and recovery are events without normalization and none with
    it; the object entering is an event."""
    model = edge_jepa.load("window")
    video = write_mp4(scene(footage, auto_exposure), tmp_path / "exposure.mp4", FPS)
    normalized = starts(run_watch(video, model, photometric="gain"))
    raw = starts(run_watch(video, model, photometric="off"))
    assert in_zone(raw, CHANGE_ZONE), f"the change is not a challenge without normalization: {raw}"
    assert not in_zone(normalized, CHANGE_ZONE), f"the exposure change raised events: {normalized}"
    assert in_zone(normalized, (OBJECT_AT - 0.1, OBJECT_AT + 0.6)), f"the object raised no event: {normalized}"


def test_frame_causal_model_ramp_and_white_balance_are_no_event_and_a_mask_hides_the_object(footage, tmp_path):
    """The frame-causal model on an MJPG file: an exposure ramp with a white-balance shift is an event without
    normalization and none with it; the object is an event, and none through `watch --mask` with a picture that
    blacks out the left half (where it enters)."""
    model = edge_jepa.load("world")
    video = write_avi(scene(footage, ramp_and_white_balance), tmp_path / "ramp.avi")
    normalized = starts(run_watch(video, model, photometric="gain"))
    raw = starts(run_watch(video, model, photometric="off"))
    assert in_zone(raw, CHANGE_ZONE), f"the change is not a challenge without normalization: {raw}"
    assert not in_zone(normalized, CHANGE_ZONE), f"the ramp raised events: {normalized}"
    assert in_zone(normalized, (OBJECT_AT - 0.1, OBJECT_AT + 0.6)), f"the object raised no event: {normalized}"
    out, mask = tmp_path / "out", np.full((48, 64), 255, np.uint8)  # any size: stretched to the frame
    mask[:, :32] = 0
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    result = runner.invoke(app, ["watch", str(video), "--model", "world", "--headless", "--out", str(out),
                                 "--warmup", "2", "--no-clips", "--threads", "1", "--photometric", "gain",
                                 "--mask", str(tmp_path / "mask.png")])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["events"] == [], summary["events"]


def test_normalizer_cancels_a_global_gain_and_ignores_a_local_object(footage):
    """On real frames at the model's size: a per-channel gain step is undone to about a grey level; a dark object
    entering a fifth of the frame moves the rest of it by a quarter of what whole-frame statistics ("match") do
    (the real webcam's own frame-to-frame drift against the reference is ~6 grey levels)."""
    loop, patch = footage
    frames = [resize_frame(f, 64, "resize").astype(np.float32) for f in loop[:20]]

    def after(mode: str, last: np.ndarray) -> np.ndarray:
        norm = PhotometricNormalizer(mode=mode)
        for f in frames[:-1]:
            norm(f)
        return norm(last)

    plain = after("gain", frames[-1])
    stepped = after("gain", np.clip(frames[-1] * np.array([1.6, 1.4, 1.2], np.float32), 0, 255))
    assert np.abs(stepped - plain).mean() < 1.5
    with_object = frames[-1].copy()
    with_object[16:48, :24] = resize_frame(patch, 32, "resize")[:, :24] * 0.3
    shift = {mode: np.abs(after(mode, with_object) - after(mode, frames[-1]))[:, 32:].mean()
             for mode in ("gain", "match")}
    assert shift["gain"] < 3.5 and shift["gain"] < 0.35 * shift["match"], shift


def test_mask_tokens_follow_the_model_view_of_a_center_cropping_model():
    """A mask ignoring the left half of a 640x360 source, for a center-cropping 64 px model with 16 px patches:
    the kept tokens are those whose centres lie right of the middle in source pixels (viz.model_view_region)."""
    mask = np.full((360, 640), 255, np.uint8)
    mask[:, :320] = 0
    keep = RoiMask(mask).tokens(360, 640, 64, "center_crop", 16)
    x0, _, x1, _ = model_view_region(360, 640, 64, "center_crop")
    centres = x0 + (np.arange(4) + 0.5) / 4 * (x1 - x0)
    assert keep.shape == (4, 4) and (keep == (centres > 0.5)[None, :]).all(), keep
    poly = RoiMask(ignore=[[(0, 0), (320, 0), (320, 360), (0, 360)]])
    assert (poly.tokens(360, 640, 64, "center_crop", 16) == keep).all()
    with pytest.raises(MaskError, match="covers no token"):
        RoiMask(watch=[[(300, 170), (310, 170), (310, 180)]]).tokens(360, 640, 64, "center_crop", 16)


def bad_args(case: str, tmp: Path) -> list:
    """The watch options of one bad-mask case (its files written into tmp)."""
    if case == "unreadable":
        (tmp / "mask.png").write_text("not a picture")
        return ["--mask", tmp / "mask.png"]
    if case == "black":
        cv2.imwrite(str(tmp / "black.png"), np.zeros((20, 30), np.uint8))
        return ["--mask", tmp / "black.png"]
    if case == "dot":  # one white pixel in 41 x 41: no token is half watched
        cv2.imwrite(str(tmp / "dot.png"), np.pad(np.full((1, 1), 255, np.uint8), 20))
        return ["--mask", tmp / "dot.png"]
    if case == "json":
        (tmp / "mask.json").write_text("{watch")
        return ["--mask", tmp / "mask.json"]
    return {"missing": ["--mask", tmp / "nope.png"], "poly": ["--mask-poly", "1,2 3,4"],
            "photometric": ["--photometric", "auto"]}[case]


@pytest.mark.parametrize("case, pattern", [
    ("unreadable", r"mask\.png: not a picture OpenCV can read"),
    ("missing", r"nope\.png: no such mask file"),
    ("black", r"black\.png: the mask is all black"),
    ("dot", r"dot\.png: the watched region covers no token of the model's 4x4 grid"),
    ("json", r"mask\.json: not valid JSON"),
    ("poly", r"polygon '1,2 3,4': 2 point\(s\)"),
    ("photometric", r"unknown photometric mode 'auto'"),
])
def test_bad_masks_end_in_one_error_line(tmp_path, case, pattern):
    args = bad_args(case, tmp_path)
    result = runner.invoke(app, ["watch", str(tmp_path / "never-opened.mp4"), "--headless", *map(str, args)])
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and len(lines) == 1 and "Traceback" not in result.output, result.output
    assert re.search(pattern, lines[0]), lines[0]
