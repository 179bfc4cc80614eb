"""Clip sources for self-supervised training: the synthetic world, a folder of videos, or both.

A source maps (step, batch size) to a batch of uint8 clips [B, T, S, S, 3] deterministically from its seed,
so a resumed run sees exactly the data it would have seen.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from edge_jepa.data.synthetic import WorldConfig, generate_clip
from edge_jepa.models.config import ClipConfig
from edge_jepa.preprocess import resize_frame
from edge_jepa.video import VideoError, list_videos, read_video


@dataclass
class SyntheticSource:
    clip: ClipConfig
    seed: int = 0

    def __post_init__(self) -> None:
        self.world = WorldConfig(size=self.clip.size, num_frames=self.clip.frames, fps=self.clip.fps)

    def batch(self, step: int, batch_size: int) -> np.ndarray:
        base = (self.seed * 1_000_003 + step * batch_size) % (2**31)
        return np.stack([generate_clip(base + i, self.world).frames for i in range(batch_size)])

    def describe(self) -> str:
        return f"synthetic world (seed {self.seed}, {self.world.size}px, {self.world.fps:g} fps)"


@dataclass
class HeldOut:
    """The tail of one video kept out of training (frames at the model's size and rate)."""

    name: str  # the video's path
    frames: np.ndarray  # uint8 [F, S, S, 3] at `fps`
    start_s: float  # where the slice starts, seconds from the video's first frame
    fps: float

    @property
    def seconds(self) -> float:
        return len(self.frames) / self.fps

    @property
    def times(self) -> np.ndarray:
        """[F] seconds from the video's first frame."""
        return self.start_s + np.arange(len(self.frames)) / self.fps


class FootageTooShort(VideoError):
    """Too little footage to train on and check the result on a held-out slice."""


MIN_HELD_OUT_SECONDS = 1.0  # of surprise scores the held-out slice must give, beyond its first window


class VideoSource:
    """Random windows of `clip.frames` frames, resampled to `clip.fps`, from every video under a path.

    Videos are decoded once into memory at the model's size while reading (each frame is shrunk as it is
    decoded and only the frames at `clip.fps` are kept: 10 minutes at 30 fps and 64 px are ~220 MB, whatever
    the source's resolution). `holdout` > 0 keeps the last share of each video (by time) out of training, in
    `held_out`, to check a fit on footage it never saw; a video too short to split trains whole.
    on_progress(video index, seconds decoded, announced duration or None) while decoding.
    """

    def __init__(self, path: str | os.PathLike | list[Path], clip: ClipConfig, seed: int = 0,
                 max_seconds: float | None = None, holdout: float = 0.0,
                 on_progress: Callable[[int, float, float | None], None] | None = None):
        if not 0.0 <= holdout < 1.0:
            raise ValueError(f"holdout must be in [0, 1), got {holdout}")
        self.clip, self.seed, self.holdout = clip, seed, holdout
        paths = path if isinstance(path, list) else ([Path(path)] if Path(path).is_file() else list_videos(path))
        self.videos: list[np.ndarray] = []
        self.names: list[str] = []
        self.held_out: list[HeldOut] = []
        self.decoded_seconds = 0.0  # all the footage read, at clip.fps (held out or not)
        longest = 0.0
        shrink = partial(resize_frame, size=clip.size, mode=clip.preprocess)
        need_held = clip.frames + math.ceil(MIN_HELD_OUT_SECONDS * clip.fps)
        for i, p in enumerate(paths):
            report = partial(on_progress, i) if on_progress else None
            frames = read_video(p, fps=clip.fps, max_seconds=max_seconds, transform=shrink,
                                on_progress=report).frames  # [F, S, S, 3] uint8
            self.decoded_seconds += len(frames) / clip.fps
            longest = max(longest, len(frames) / clip.fps)
            cut = len(frames) - int(round(len(frames) * holdout))
            if holdout and cut >= clip.frames and len(frames) - cut >= need_held:
                self.held_out.append(HeldOut(str(p), frames[cut:], cut / clip.fps, clip.fps))  # views, no copy
                frames = frames[:cut]
            if len(frames) >= clip.frames:
                self.videos.append(frames)
                self.names.append(str(p))
        if holdout and not self.held_out:
            need = max(clip.frames, need_held / holdout) / clip.fps
            have = f"{longest:.1f} s" + (" in the longest video" if len(paths) > 1 else "")
            raise FootageTooShort(
                f"{path}: {have} of footage at {clip.fps:g} fps is too short to fit and check: needs at least "
                f"{need:.1f} s in one video (the last {holdout:.0%} is held out to compare the model before and "
                f"after; a minute or more to learn a scene); record longer footage")
        if not self.videos:
            raise FootageTooShort(
                f"{path}: no video yields a clip of {clip.frames} frames at {clip.fps:g} fps "
                f"(needs at least {clip.frames / clip.fps:.1f} s of video)"
            )
        self.starts = np.array([len(v) - self.clip.frames + 1 for v in self.videos])

    @property
    def num_frames(self) -> int:
        """Frames trained on (the held-out slices excluded)."""
        return int(sum(len(v) for v in self.videos))

    @property
    def held_out_seconds(self) -> float:
        return float(sum(h.seconds for h in self.held_out))

    def batch(self, step: int, batch_size: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, step])
        which = rng.choice(len(self.videos), size=batch_size, p=self.starts / self.starts.sum())
        out = []
        for w in which:
            s = rng.integers(self.starts[w])
            clip = self.videos[w][s : s + self.clip.frames]
            out.append(clip[:, :, ::-1] if rng.random() < 0.5 else clip)  # horizontal flip
        return np.ascontiguousarray(np.stack(out))

    def describe(self) -> str:
        secs = self.num_frames / self.clip.fps
        held = f" (+ {self.held_out_seconds:.0f} s held out)" if self.held_out else ""
        return f"{len(self.videos)} video(s), {secs:.0f} s at {self.clip.fps:g} fps{held}"


class MixedSource:
    """Each batch: a `synthetic_share` of synthetic clips, the rest from videos."""

    def __init__(self, synthetic: SyntheticSource, videos: VideoSource, synthetic_share: float = 0.5):
        self.synthetic, self.videos, self.share = synthetic, videos, synthetic_share

    def batch(self, step: int, batch_size: int) -> np.ndarray:
        n_syn = int(round(batch_size * self.share))
        parts = [self.synthetic.batch(step, n_syn)] if n_syn else []
        if batch_size - n_syn:
            parts.append(self.videos.batch(step, batch_size - n_syn))
        return np.concatenate(parts)

    def describe(self) -> str:
        return f"{self.synthetic.describe()} + {self.videos.describe()}"


def make_source(data: str, clip: ClipConfig, seed: int = 0) -> SyntheticSource | VideoSource | MixedSource:
    """'synthetic', a video file or folder, or 'synthetic+PATH'."""
    path = data.split("+", 1)[1] if data.startswith("synthetic+") else data
    if not path.strip():  # Path("") is the current directory: never what was meant
        raise ValueError(f"data {data!r}: an empty path; give 'synthetic', a video file or folder, or "
                         "'synthetic+PATH'")
    if data == "synthetic":
        return SyntheticSource(clip, seed)
    if data.startswith("synthetic+"):
        return MixedSource(SyntheticSource(clip, seed), VideoSource(data.split("+", 1)[1], clip, seed))
    return VideoSource(data, clip, seed)
