"""The runner of an export bundle (a directory with manifest.json, written by `edge-jepa export`).

`open_bundle(path)` (edge_jepa.runtime.manifest) reads and verifies the manifest and returns the format's
runner. Every bundle runner shares `BundleRunner`:
the model config, clip layout and the input/output spec of each method come from the manifest, and the
surprise step is the same three calls on every backend:

    context   = encode_context(clip[:, :, :context_frames])   [1, Nc, D]
    window    = encode_window(clip)                            [1, N, D]
    predicted = predict(context)                               [1, Nt, D]   (context/target indices fixed)
"""

from __future__ import annotations

import os
from abc import abstractmethod
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from edge_jepa.formats import MANIFEST, METHODS, SUPPORTED_BUNDLE_VERSIONS
from edge_jepa.models.config import ModelConfig
from edge_jepa.runtime.base import Runner, StepOutput
from edge_jepa.runtime.manifest import BundleError, is_bundle, open_bundle, read_manifest, verify_files

__all__ = ["MANIFEST", "METHODS", "SUPPORTED_BUNDLE_VERSIONS", "BundleError", "BundleRunner", "is_bundle",
           "open_bundle", "read_manifest", "verify_files"]

class BundleRunner(Runner):
    """Shared part of the ExecuTorch / ONNX Runtime / CoreML runners: manifest, IO checks, the step."""

    max_batch = 1

    def __init__(self, path: str | os.PathLike, manifest: dict[str, Any]):
        self.path = Path(path)
        self.manifest = manifest
        self.backend = manifest["format"]
        self.precision = manifest["precision"]
        self.config = ModelConfig.from_dict(manifest["model"]["config"])
        self.methods: dict[str, dict[str, Any]] = manifest["methods"]
        self.size_bytes = int(sum(f["bytes"] for f in manifest["files"].values()))
        self._loading: str | None = None  # the artifact _load is opening (named if it fails)
        try:
            self._load()
        except BundleError:
            raise
        except Exception as e:  # noqa: BLE001 - runtimes raise anything on a damaged artifact
            what = self.path / self._loading if self._loading else self.path
            detail = " ".join(str(e).split())[:200] or type(e).__name__
            raise BundleError(f"{what}: {self.backend} cannot load this artifact ({detail}); the file "
                              f"matches its sha256 in {MANIFEST}, so it was written damaged (or the manifest "
                              "re-hashed): re-export the bundle") from None

    @abstractmethod
    def _load(self) -> None:
        """Open the artifacts (called once by __init__)."""

    @abstractmethod
    def _execute(self, method: str, inputs: list[Tensor]) -> list[Tensor]:
        """Run one method on checked, contiguous float32 inputs (the manifest's order); return its outputs."""

    @property
    def kind(self) -> str:
        """The model kind of the bundle: "window" (three surprise-step methods) or "frame_causal" (stream_step)."""
        return self.manifest.get("kind", "window")

    def call(self, method: str, x: Tensor) -> Tensor:
        """Run one of the bundle's methods ("encode_context", "encode_window", "predict") on one input."""
        return self.call_all(method, [x])[0]

    def call_all(self, method: str, inputs: list[Tensor]) -> list[Tensor]:
        """Run one of the bundle's methods on all its inputs (manifest order); its float32 outputs."""
        if method not in self.methods:
            raise ValueError(f"unknown method {method!r}; this bundle has {', '.join(self.methods)}")
        specs = self.methods[method]["inputs"]
        if len(inputs) != len(specs):
            raise ValueError(f"{self.backend} bundle method {method} takes {len(specs)} inputs "
                             f"({', '.join(s['name'] for s in specs)}), got {len(inputs)}")
        for spec, x in zip(specs, inputs, strict=True):
            expected = tuple(spec["shape"])
            if not isinstance(x, Tensor) or tuple(x.shape) != expected or x.dtype != torch.float32:
                got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
                raise ValueError(f"{self.backend} bundle method {method} expects {spec['name']} float32 "
                                 f"{list(expected)} (from {self.path / MANIFEST}), got {got}")
        return [y.float() for y in self._execute(method, [x.contiguous() for x in inputs])]

    def run(self, clip: Tensor) -> StepOutput:
        if self.kind != "window":
            raise ValueError(f"{self.path} holds a {self.kind} model's stream step, not the window surprise step: "
                             "score it with edge_jepa.surprise_scores / SurpriseScorer (or StreamStepRunner)")
        return super().run(clip)

    def _run(self, clip: Tensor) -> StepOutput:
        context = self.call("encode_context", clip[:, :, : self.context_frames])
        window = self.call("encode_window", clip)
        return StepOutput(context, window, self.call("predict", context))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path}, {self.config.name}, {self.backend}/{self.precision}, " \
               f"{self.frames}x{self.size}x{self.size})"
