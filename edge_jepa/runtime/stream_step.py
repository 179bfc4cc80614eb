"""The stream step of a frame-causal bundle, with its KV cache kept between frames.

A frame-causal bundle (manifest "kind": "frame_causal", written by `edge-jepa export` from a FrameCausalJEPA)
holds one method, `stream_step` (edge_jepa.export.stream_step): the new frame [1, 3, 1, S, S] and the
predictor's caches in; the frame's tokens, the prediction of the next frame, its log-scales and the updated
caches out. `StreamStepRunner` feeds the caches back, so each frame costs one call:

    runner = StreamStepRunner(open_bundle(path))   # or StreamStepRunner.open(path)
    tokens, predicted, log_scale = runner.step(frame)   # [N, D], [N, D], [N]

`edge_jepa.surprise.FrameCausalScorer` scores a stream with it (surprise_scores, SurpriseScorer, watch).
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor

from edge_jepa.formats import STREAM_METHOD
from edge_jepa.runtime.manifest import is_bundle, open_bundle, read_manifest


class StreamStepRunner:
    """A frame-causal bundle's stream step with its cache state (reset() starts a new stream)."""

    def __init__(self, bundle: Any):
        if getattr(bundle, "kind", "window") != "frame_causal":
            raise ValueError(f"{bundle} is not a frame-causal bundle (its manifest's kind is "
                             f"{getattr(bundle, 'kind', '?')!r}); a window bundle runs through Runner.open")
        self.bundle = bundle
        self.config = bundle.config
        stream = bundle.manifest["stream"]
        self.fps = float(stream["fps"])
        self.window = int(stream["window"])
        self.grid = tuple(stream["grid"])
        self.cache_shape = tuple(stream["cache_shape"])
        self.cache_masked = float(stream["cache_masked"])
        self.reset()

    @staticmethod
    def open(path: str | os.PathLike, **kwargs: Any) -> StreamStepRunner:
        return StreamStepRunner(open_bundle(path, **kwargs))

    @staticmethod
    def is_stream_bundle(source: Any) -> bool:
        """Whether `source` is the path of a frame-causal bundle."""
        if not isinstance(source, str | os.PathLike) or not is_bundle(source):
            return False
        try:
            return read_manifest(source).get("kind") == "frame_causal"
        except ValueError:
            return False

    @property
    def backend(self) -> str:
        return self.bundle.backend

    @property
    def precision(self) -> str:
        return self.bundle.precision

    @property
    def path(self):
        return self.bundle.path

    def reset(self) -> None:
        """Empty the caches: the next frame starts a stream (its prediction sees that frame only)."""
        self.k_cache = torch.zeros(self.cache_shape)
        self.v_cache = torch.zeros(self.cache_shape)
        self.cache_mask = torch.full(self.cache_shape[2:3], self.cache_masked)

    def step(self, frame: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """frame [1, 3, 1, S, S] (normalized) -> (its tokens [N, D], prediction of the next frame's LayerNorm-ed
        tokens [N, D], their log-scales [N]); the cache moves on by one frame."""
        z, pred, log_b, self.k_cache, self.v_cache, self.cache_mask = self.bundle.call_all(
            STREAM_METHOD, [frame.float(), self.k_cache, self.v_cache, self.cache_mask])
        return z[0], pred[0], log_b[0]

    def __repr__(self) -> str:
        return f"StreamStepRunner({self.path}, {self.config.name}, {self.backend}/{self.precision}, {self.fps:g} fps)"
