"""The pieces every exporter shares: the error type, what an exporter returns, failures turned into one-line
errors naming the step and op, the manifest's preprocessing/tool-version sections and its writer (file hashes).

edge_jepa.export.bundle (window models' bundles) and edge_jepa.export.stream_bundle (frame-causal models' stream
step) build on these; the format exporters (executorch, onnx, coreml) too.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_jepa.formats import MANIFEST
from edge_jepa.models.config import ModelConfig
from edge_jepa.preprocess import IMAGENET_MEAN, IMAGENET_STD

TOOLS = ("torch", "executorch", "torchao", "coremltools", "onnx", "onnxscript", "onnxruntime", "numpy")


class ExportError(RuntimeError):
    """An export that could not be completed (nothing was written)."""


@dataclass
class Artifacts:
    """What an exporter returns: for each method its file and entry point, plus format-specific details."""

    methods: dict[str, dict[str, str]]  # method -> {"file": relative path, "entry": method/function or ""}
    details: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def step(fmt: str, name: str, hint: str) -> Iterator[None]:
    """Turn any failure inside an export step into one ExportError naming format, step, op and a fix."""
    try:
        yield
    except ExportError:
        raise
    except Exception as e:  # noqa: BLE001 - every toolkit raises its own types; we re-raise with context
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))  # drop terminal colours some toolkits put in errors
        op = failing_op(text)
        first = " ".join(text.strip().splitlines()[:1])[:300] or type(e).__name__
        where = f" on op {op}" if op else ""
        raise ExportError(f"{fmt} export failed at {name}{where}: {type(e).__name__}: {first}. Try: {hint}") from e


_OP_PATTERNS = (
    r"(aten[.:]+[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)?)",  # aten.foo.default / aten::foo
    r"(torch\.ops\.[A-Za-z0-9_]+\.[A-Za-z0-9_]+)",
    r"[Uu]nsupported (?:fx node|op|operator)[^A-Za-z0-9_]*([A-Za-z0-9_.:]+)",
    r"op(?:erator)? (?:type )?['\"]?([A-Za-z][A-Za-z0-9_.:]+)['\"]? (?:is )?not (?:supported|implemented)",
)


def failing_op(message: str) -> str | None:
    """The op an exporter error message blames, if it names one."""
    for pattern in _OP_PATTERNS:
        match = re.search(pattern, message)
        if match:
            return match.group(1)
    return None

def preprocessing(config: ModelConfig) -> dict[str, Any]:
    """What `edge_jepa.preprocess` does to camera frames for this clip (so a non-Python app can match it)."""
    c = config.clip
    resize = ({"mode": "center_crop", "short_side": int(c.size * 256 / 224), "crop": [c.size, c.size],
               "interpolation": "area when shrinking, else bilinear"} if c.preprocess == "center_crop"
              else {"mode": "resize", "to": [c.size, c.size], "interpolation": "area when shrinking, else bilinear"})
    return {
        "input": "uint8 RGB frames [T, H, W, 3] sampled at the model fps",
        "resize": resize,
        "scale": 1 / 255,
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
        "layout": f"float32 [1, 3, T, {c.size}, {c.size}] (batch, channel, time, height, width)",
        "clip_config": {"frames": c.frames, "size": c.size, "fps": c.fps, "context_frames": c.context_frames,
                        "preprocess": c.preprocess},
    }


def tool_versions() -> dict[str, str]:
    versions = {}
    for name in TOOLS:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[name] = importlib.metadata.version(name)
    return versions


def file_hashes(root: Path) -> dict[str, dict[str, Any]]:
    """sha256 and size of every file under `root` except the manifest (relative POSIX paths)."""
    out = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST):
        out[path.relative_to(root).as_posix()] = {"sha256": sha256(path), "bytes": path.stat().st_size}
    return out


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    """Write manifest.json, hashing the bundle's files the first time (they do not change afterwards)."""
    if "files" not in manifest:
        manifest["files"] = file_hashes(root)
    manifest["total_bytes"] = sum(f["bytes"] for f in manifest["files"].values())
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    if hasattr(value, "item"):
        return value.item()
    return str(value)
