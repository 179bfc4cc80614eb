"""Open an export bundle (a directory with manifest.json, written by `edge-jepa export`) as a Runner.

`open_bundle(path)` reads the manifest, checks the files against their sha256, looks the format up in the
format table (export.formats) and returns that format's runner. Every bundle runner shares `BundleRunner`:
the model config, clip layout and the input/output spec of each method come from the manifest, and the
surprise step is the same three calls on every backend:

    context   = encode_context(clip[:, :, :context_frames])   [1, Nc, D]
    window    = encode_window(clip)                            [1, N, D]
    predicted = predict(context)                               [1, Nt, D]   (context/target indices fixed)
"""

from __future__ import annotations

import hashlib
import json
import os
from abc import abstractmethod
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from edge_jepa.models.config import ModelConfig
from edge_jepa.runtime.base import Runner, StepOutput

MANIFEST = "manifest.json"
SUPPORTED_BUNDLE_VERSIONS = (1,)
METHODS = ("encode_context", "encode_window", "predict")


class BundleError(ValueError):
    """A bundle directory that cannot be opened (missing/corrupt files, unknown format or version)."""


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """The parsed manifest.json of a bundle directory, with its required fields checked."""
    path = Path(path)
    file = path / MANIFEST
    if not file.is_file():
        raise BundleError(f"{path}: not an export bundle (no {MANIFEST}); create one with `edge-jepa export`")
    try:
        manifest = json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise BundleError(f"{file}: invalid JSON ({e})") from None
    missing = [k for k in ("bundle_format_version", "format", "precision", "model", "methods", "files")
               if k not in manifest]
    if missing:
        raise BundleError(f"{file}: missing fields {missing}")
    if manifest["bundle_format_version"] not in SUPPORTED_BUNDLE_VERSIONS:
        raise BundleError(f"{file}: bundle format version {manifest['bundle_format_version']} is not supported by "
                          f"this edge-jepa (supports {SUPPORTED_BUNDLE_VERSIONS}); upgrade edge-jepa")
    absent = [m for m in METHODS if m not in manifest["methods"]]
    if absent:
        raise BundleError(f"{file}: methods {absent} missing")
    return manifest


def verify_files(path: str | os.PathLike, manifest: dict[str, Any]) -> None:
    """Raise BundleError if any file listed in the manifest is missing or differs from its sha256."""
    path = Path(path)
    for name, entry in manifest["files"].items():
        file = path / name
        if not file.is_file():
            raise BundleError(f"{path}: {name} is missing (listed in {MANIFEST})")
        h = hashlib.sha256()
        with open(file, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        if h.hexdigest() != entry["sha256"]:
            raise BundleError(f"{path}: {name} does not match its sha256 in {MANIFEST} (corrupt or modified); "
                              "re-export the bundle")


def open_bundle(path: str | os.PathLike, *, check_hashes: bool = True, **kwargs: Any) -> Runner:
    """The Runner for a bundle directory (backend chosen by the manifest's format); kwargs go to the runner."""
    from export.formats import get_format

    path = Path(path)
    manifest = read_manifest(path)
    if check_hashes:
        verify_files(path, manifest)
    try:
        fmt = get_format(manifest["format"])
    except ValueError as e:
        raise BundleError(f"{path}: {e}") from None
    reason = fmt.run_unavailable()
    if reason:
        raise RuntimeError(f"cannot run {path} here: {reason}")
    return fmt.resolve("runner")(path, manifest, **kwargs)


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
        self._load()

    @abstractmethod
    def _load(self) -> None:
        """Open the artifacts (called once by __init__)."""

    @abstractmethod
    def _call(self, method: str, x: Tensor) -> Tensor:
        """Run one method on a checked, contiguous float32 input; return its float32 output."""

    def call(self, method: str, x: Tensor) -> Tensor:
        """Run one of the bundle's methods ("encode_context", "encode_window", "predict") on one input."""
        if method not in self.methods:
            raise ValueError(f"unknown method {method!r}; this bundle has {', '.join(self.methods)}")
        spec = self.methods[method]["inputs"][0]
        expected = tuple(spec["shape"])
        if not isinstance(x, Tensor) or tuple(x.shape) != expected or x.dtype != torch.float32:
            got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{self.backend} bundle method {method} expects {spec['name']} float32 {list(expected)} "
                             f"(from {self.path / MANIFEST}), got {got}")
        return self._call(method, x.contiguous()).float()

    def _run(self, clip: Tensor) -> StepOutput:
        context = self.call("encode_context", clip[:, :, : self.context_frames])
        window = self.call("encode_window", clip)
        return StepOutput(context, window, self.call("predict", context))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path}, {self.config.name}, {self.backend}/{self.precision}, " \
               f"{self.frames}x{self.size}x{self.size})"
