"""Clip sources for self-supervised training: the synthetic world, a folder of videos, or both.

A source maps (step, batch size) to a batch of uint8 clips [B, T, S, S, 3] deterministically from its seed,
so a resumed run sees exactly the data it would have seen.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
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


class VideoSource:
    """Random windows of `clip.frames` frames, resampled to `clip.fps`, from every video under a path.

    Videos are decoded once into memory at the model's resolution (a minute at 8 fps and 128 px is ~24 MB).
    """

    def __init__(self, path: str | os.PathLike | list[Path], clip: ClipConfig, seed: int = 0,
                 max_seconds: float | None = None):
        self.clip, self.seed = clip, seed
        paths = path if isinstance(path, list) else ([Path(path)] if Path(path).is_file() else list_videos(path))
        self.videos: list[np.ndarray] = []
        self.names: list[str] = []
        for p in paths:
            v = read_video(p, fps=clip.fps, max_seconds=max_seconds)
            frames = np.stack([resize_frame(f, clip.size, clip.preprocess) for f in v.frames])
            if len(frames) >= clip.frames:
                self.videos.append(frames)
                self.names.append(str(p))
        if not self.videos:
            raise VideoError(
                f"{path}: no video yields a clip of {clip.frames} frames at {clip.fps:g} fps "
                f"(needs at least {clip.frames / clip.fps:.1f} s of video)"
            )
        self.starts = np.array([len(v) - self.clip.frames + 1 for v in self.videos])

    @property
    def num_frames(self) -> int:
        return int(sum(len(v) for v in self.videos))

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
        return f"{len(self.videos)} video(s), {secs:.0f} s at {self.clip.fps:g} fps"


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
