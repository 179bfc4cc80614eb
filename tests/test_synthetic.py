"""Tests for the synthetic physical world (edge_jepa.data.synthetic)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_jepa.data import (
    VIOLATIONS,
    SyntheticClip,
    WorldConfig,
    eval_set,
    generate_clip,
    iter_clips,
    matched_pair,
    render_long_video,
    write_mp4,
)
from tests.video_files import count_frames

PAIR_SEEDS = (0, 1, 2, 3)


def _changed_pixels(a: np.ndarray, b: np.ndarray, center: list[float], radius: float) -> int:
    """Pixels inside the box of half-width ``radius`` around ``center`` whose colour changed clearly."""
    h, w = a.shape[:2]
    x, y = center
    x0, x1 = max(0, int(x - radius)), min(w, int(x + radius) + 1)
    y0, y1 = max(0, int(y - radius)), min(h, int(y + radius) + 1)
    if x0 >= x1 or y0 >= y1:
        return 0
    diff = np.abs(a[y0:y1, x0:x1].astype(np.int16) - b[y0:y1, x0:x1].astype(np.int16)).max(axis=-1)
    return int((diff > 40).sum())


def _color_pixels(frame: np.ndarray, color: list[float], tol: float = 20.0) -> int:
    """Pixels whose colour is within ``tol`` (max over channels) of ``color``."""
    return int((np.abs(frame.astype(np.float32) - np.asarray(color, np.float32)).max(axis=-1) <= tol).sum())


# ------------------------------------------------------------------------------------------------
# Basic properties
# ------------------------------------------------------------------------------------------------


def test_violation_names() -> None:
    assert VIOLATIONS == (
        "teleport",
        "vanish",
        "appear",
        "pass_through",
        "reverse",
        "shape_change",
        "color_change",
    )


def test_same_seed_is_deterministic_and_seeds_differ() -> None:
    a, b, c = generate_clip(7), generate_clip(7), generate_clip(8)
    assert np.array_equal(a.frames, b.frames)
    assert a.meta == b.meta
    assert not np.array_equal(a.frames, c.frames)
    v1, v2 = generate_clip(7, violation="teleport"), generate_clip(7, violation="teleport")
    assert np.array_equal(v1.frames, v2.frames) and v1.violation_frame == v2.violation_frame


def test_shapes_dtypes_and_meta() -> None:
    clip = generate_clip(0)
    assert isinstance(clip, SyntheticClip)
    assert clip.frames.shape == (16, 128, 128, 3) and clip.frames.dtype == np.uint8
    assert clip.violation is None and clip.violation_frame is None
    assert clip.seed == 0 and clip.fps == 10.0 and clip.num_frames == 16
    json.dumps(clip.meta)  # must be JSON-serialisable
    assert 1 <= len(clip.meta["objects"]) <= 3
    assert all(len(track) == 16 for track in clip.meta["tracks_px"])

    small = generate_clip(5, WorldConfig(size=64, num_frames=8, fps=5.0, max_objects=4))
    assert small.frames.shape == (8, 64, 64, 3) and small.fps == 5.0


def test_scenes_are_varied() -> None:
    clips = [generate_clip(s) for s in range(40)]
    assert len({c.meta["background"]["kind"] for c in clips}) >= 4
    assert {c.meta["top_down"] for c in clips} == {True, False}
    assert {c.meta["occluder"] is None for c in clips} == {True, False}
    assert {o["shape"] for c in clips for o in c.meta["objects"]} == {"circle", "square", "triangle"}
    gains = {c.meta["lighting"]["gain"] for c in clips}
    assert len(gains) == len(clips)


def test_objects_contrast_with_background() -> None:
    for seed in range(10):
        clip = generate_clip(seed, WorldConfig(noise_std=0.0))
        background = clip.frames[0].reshape(-1, 3).astype(np.float32)
        for obj in clip.meta["objects"]:
            # colours never get close to the (median) background colour
            distance = np.linalg.norm(np.median(background, axis=0) - np.asarray(obj["color"]))
            assert distance >= 50.0, (seed, obj)


def test_occluder_is_drawn_over_objects() -> None:
    """Find an object fully behind the occluder: its centre pixel shows the occluder colour."""
    cfg = WorldConfig(occluder_prob=1.0, noise_std=0.0)
    for seed in range(60):
        clip = generate_clip(seed, cfg)
        x0, y0, x1, y1 = clip.meta["occluder"]["box_px"]
        for obj, track in zip(clip.meta["objects"], clip.meta["tracks_px"], strict=False):
            r = obj["radius_px"]
            for frame, point in enumerate(track):
                if point is None:
                    continue
                x, y = point
                if x0 + r + 1 < x < x1 - r - 2 and y0 + r + 1 < y < y1 - r - 2:
                    pixel = clip.frames[frame, int(round(y)), int(round(x))].astype(np.float32)
                    assert np.abs(pixel - np.asarray(clip.meta["occluder"]["color"])).max() <= 2.0
                    return
    pytest.fail("no object passed fully behind an occluder in 60 seeds")


# ------------------------------------------------------------------------------------------------
# Violations and matched pairs
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("violation", VIOLATIONS)
def test_matched_pair_identical_before_and_different_after(violation: str) -> None:
    for seed in PAIR_SEEDS:
        plausible, violating = matched_pair(seed, violation)
        f = violating.violation_frame
        assert violating.violation == violation and plausible.violation is None
        assert plausible.meta["pair"]["violation_frame"] == f
        assert 4 <= f <= 11  # default window keeps several normal frames on both sides
        assert np.array_equal(plausible.frames[:f], violating.frames[:f])
        assert not np.array_equal(plausible.frames[f], violating.frames[f]), (violation, seed)

        # a measurable change in the affected object's region at or after the violation frame
        obj = violating.meta["affected_object"]
        tracks = (violating if violation == "appear" else plausible).meta["tracks_px"][obj]
        radius = violating.meta["objects"][obj]["radius_px"]
        changed = max(
            _changed_pixels(plausible.frames[g], violating.frames[g], tracks[g], radius)
            for g in range(f, 16)
            if tracks[g] is not None
        )
        assert changed >= 10, (violation, seed, changed)
        json.dumps(violating.meta)


@pytest.mark.parametrize("violation", VIOLATIONS)
def test_explicit_violation_frame(violation: str) -> None:
    plausible, violating = matched_pair(11, violation, violation_frame=6)
    f = violating.violation_frame
    if violation == "pass_through":  # breaks the first suitable bounce/collision at or after frame 6
        assert violating.meta["details"]["requested_frame"] == 6
    else:
        assert f == 6
    assert np.array_equal(plausible.frames[:f], violating.frames[:f])
    assert not np.array_equal(plausible.frames[f:], violating.frames[f:])
    # generate_clip gives the same violating clip as matched_pair
    assert np.array_equal(generate_clip(11, violation=violation, violation_frame=6).frames, violating.frames)


def test_matched_pair_shares_scene_background_and_noise() -> None:
    plausible, violating = matched_pair(4, "color_change")
    assert np.array_equal(plausible.frames[0], violating.frames[0])
    for key in ("background", "lighting", "occluder", "gravity", "noise_std"):
        assert plausible.meta[key] == violating.meta[key]
    assert np.array_equal(generate_clip(4).frames, plausible.frames)
    # same noise stream: pixels away from every object are identical even after the violation
    diff = np.abs(plausible.frames.astype(np.int16) - violating.frames.astype(np.int16)).max(axis=-1)
    assert (diff == 0).mean() > 0.9


def test_vanish_removes_object_in_plain_view() -> None:
    for seed in PAIR_SEEDS:
        plausible, violating = matched_pair(seed, "vanish")
        f, obj = violating.violation_frame, violating.meta["affected_object"]
        assert violating.meta["details"]["choice"] == "tier0"  # in plain view just before and at f
        color = violating.meta["objects"][obj]["color"]
        before = _color_pixels(violating.frames[f - 1], color)
        assert before >= 40
        assert all(track is None for track in violating.meta["tracks_px"][obj][f:])
        for g in range(f, 16):
            assert _color_pixels(violating.frames[g], color) <= 0.1 * before
        assert _color_pixels(plausible.frames[f], color) >= 0.5 * before


def test_appear_adds_an_object_mid_clip() -> None:
    plausible, violating = matched_pair(2, "appear")
    f, obj = violating.violation_frame, violating.meta["affected_object"]
    assert obj == len(plausible.meta["objects"])
    track = violating.meta["tracks_px"][obj]
    assert all(p is None for p in track[:f]) and all(p is not None for p in track[f : f + 2])
    color = violating.meta["objects"][obj]["color"]
    assert _color_pixels(violating.frames[f], color) >= 40
    assert _color_pixels(violating.frames[f - 1], color) <= 5


def test_shape_and_color_change_details() -> None:
    _, shaped = matched_pair(3, "shape_change")
    assert shaped.meta["details"]["from"] != shaped.meta["details"]["to"]
    _, colored = matched_pair(3, "color_change")
    assert colored.meta["details"]["hue_shift"] >= 0.2  # ~>= 72 degrees on the hue circle
    old, new = np.asarray(colored.meta["details"]["from"]), np.asarray(colored.meta["details"]["to"])
    assert np.linalg.norm(old - new) >= 70.0


def test_pass_through_leaves_or_overlaps() -> None:
    for seed in PAIR_SEEDS:
        plausible, violating = matched_pair(seed, "pass_through")
        obj, through = violating.meta["affected_object"], violating.meta["details"]["through"]
        assert through.startswith(("wall:", "object:"))
        if through.startswith("wall:"):  # the object ends up crossing the wall instead of bouncing back
            r = violating.meta["objects"][obj]["radius_px"]
            end = violating.meta["tracks_px"][obj][-1]
            assert end is None or min(end[0] + 0.5, end[1] + 0.5, 127.5 - end[0], 127.5 - end[1]) < r
        else:  # the two objects overlap where they would have collided
            other = violating.meta["details"]["other_object"]
            f = violating.violation_frame
            a, b = violating.meta["tracks_px"][obj][f], violating.meta["tracks_px"][other][f]
            reach = (
                violating.meta["objects"][obj]["radius_px"] + violating.meta["objects"][other]["radius_px"]
            )
            assert np.hypot(a[0] - b[0], a[1] - b[1]) < reach


def test_iter_clips_and_eval_set() -> None:
    clean = list(iter_clips(range(5)))
    assert [c.seed for c in clean] == list(range(5))
    assert all(c.violation is None for c in clean)
    assert np.array_equal(clean[3].frames, generate_clip(3).frames)
    mixed = list(iter_clips(range(5), violation_rate=1.0))
    assert all(c.violation in VIOLATIONS for c in mixed)
    assert [c.violation for c in mixed] == [c.violation for c in iter_clips(range(5), violation_rate=1.0)]

    pairs = eval_set(range(9))
    assert [v.violation for _, v in pairs] == [VIOLATIONS[i % 7] for i in range(9)]
    assert all(p.violation is None and p.seed == v.seed for p, v in pairs)
    pairs = eval_set([3, 4], violations=["vanish"])
    assert [v.violation for _, v in pairs] == ["vanish", "vanish"]


def test_short_clips_work_for_every_violation() -> None:
    cfg = WorldConfig(size=32, num_frames=4)
    for violation in VIOLATIONS:
        plausible, violating = matched_pair(1, violation, cfg)
        f = violating.violation_frame
        assert 1 <= f <= 3 and plausible.frames.shape == (4, 32, 32, 3)
        assert np.array_equal(plausible.frames[:f], violating.frames[:f])
        assert not np.array_equal(plausible.frames[f:], violating.frames[f:])


# ------------------------------------------------------------------------------------------------
# Long videos and MP4 output
# ------------------------------------------------------------------------------------------------


def test_render_long_video_lists_violation_frames() -> None:
    events = [(3.0, "vanish"), (6.0, "appear"), (9.0, "color_change"), (11.0, "reverse")]
    clip = render_long_video(5, 14.0, violations=events)
    assert clip.frames.shape == (140, 128, 128, 3)
    assert [(v["violation"], v["frame"]) for v in clip.meta["violations"]] == [
        ("vanish", 30),
        ("appear", 60),
        ("color_change", 90),
        ("reverse", 110),
    ]
    assert clip.violation == "vanish" and clip.violation_frame == 30
    json.dumps(clip.meta)
    gone = clip.meta["violations"][0]["affected_object"]
    assert all(p is None for p in clip.meta["tracks_px"][gone][30:])  # no re-spawn
    # the remaining objects keep moving until the end (elastic bounces)
    moving = [
        t for t in clip.meta["tracks_px"] if t[-1] is not None and t[-10] is not None and t[-1] != t[-10]
    ]
    assert len(moving) >= 1
    plain = render_long_video(5, 14.0)
    assert plain.violation is None and plain.meta["violations"] == []


def test_write_mp4_roundtrip(tmp_path: Path) -> None:
    clip = generate_clip(2, WorldConfig(num_frames=12, size=64))
    out = write_mp4(clip.frames, tmp_path / "clip.mp4", clip.fps)
    assert out == tmp_path / "clip.mp4" and out.stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]  # no temp file left behind
    count, shape = count_frames(out)
    assert count == 12 and shape == (64, 64, 3)


def test_write_mp4_reports_unopenable_writer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class ClosedWriter:
        def __init__(self, *args: object) -> None:
            pass

        def isOpened(self) -> bool:  # noqa: N802 - mirrors the OpenCV API
            return False

        @staticmethod
        def fourcc(*chars: str) -> int:
            return 0

    monkeypatch.setattr(cv2, "VideoWriter", ClosedWriter)
    frames = np.zeros((3, 32, 32, 3), np.uint8)
    with pytest.raises(RuntimeError, match="VideoWriter"):
        write_mp4(frames, tmp_path / "x.mp4", 10.0)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="frames"):
        write_mp4(np.zeros((3, 32, 32), np.uint8), tmp_path / "y.mp4", 10.0)


def test_meta_lists_the_contacts_and_ensure_contact_puts_one_mid_clip() -> None:
    """Every clip of the default world has a visible bounce/collision in the default violation window (frames 3-4
    of an 8-frame clip), listed in meta["contacts"] with the object and the wall or other object."""
    world = WorldConfig(size=64, num_frames=8, fps=30.0)
    for seed in range(12):
        clip = generate_clip(seed, world)
        contacts = clip.meta["contacts"]
        assert any(c["frame"] in (3, 4) for c in contacts), contacts
        for c in contacts:
            assert set(c) in ({"frame", "object", "speed", "wall"}, {"frame", "object", "speed", "other_object"})
            assert 1 <= c["frame"] < 8 and clip.meta["tracks_px"][c["object"]][c["frame"]] is not None
        json.dumps(clip.meta)


# ------------------------------------------------------------------------------------------------
# Argument validation
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: generate_clip(0, violation="explode"), "explode.*teleport"),
        (lambda: generate_clip(0, violation="vanish", violation_frame=0), r"violation_frame.*\[1, 15\].*0"),
        (lambda: generate_clip(0, violation="vanish", violation_frame=16), r"\[1, 15\].*16"),
        (lambda: matched_pair(0, "nope"), "nope"),
        (lambda: matched_pair(0, "vanish", violation_frame=99), "99"),
        (lambda: WorldConfig(size=16), r"size.*32.*16"),
        (lambda: WorldConfig(num_frames=3), r"num_frames.*4.*3"),
        (lambda: WorldConfig(min_objects=3, max_objects=2), "max_objects"),
        (lambda: WorldConfig(occluder_prob=1.5), "occluder_prob"),
        (lambda: generate_clip(-1), "seed"),
        (lambda: eval_set([0], violations=["teleport", "bogus"]), "bogus"),
        (lambda: eval_set([0], violations=[]), "non-empty"),
        (lambda: iter_clips([0], violation_rate=2.0), "violation_rate"),
        (lambda: render_long_video(0, 5.0, violations=[(7.0, "vanish")]), r"7\.0"),
        (lambda: render_long_video(0, 5.0, violations=[(1.0, "melt")]), "melt"),
        (lambda: render_long_video(0, 0.1), "at least 4 frames"),
    ],
)
def test_invalid_arguments_raise_value_error(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()
