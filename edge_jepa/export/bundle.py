"""Write an export bundle: artifacts + manifest.json, verified on the real runtime, atomically.

    bundle/
      manifest.json        format, precision, model config, clip layout, preprocessing, inputs/outputs,
                           fidelity measured at export, sha256 of every file, tool versions
      model.pte            (executorch)   or  encode_context.onnx, encode_window.onnx, predict.onnx  (onnx)
                                          or  model.mlpackage/                                      (coreml)

The bundle directory appears only after the artifacts are written and verified (`edge_jepa.io.atomic_dir`):
an export that fails leaves nothing behind and raises `ExportError` naming the format, the step, the op
when one is to blame, and what to try.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import platform
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from edge_jepa.formats import BUNDLE_FORMAT_VERSION, IO_NAMES, MANIFEST, METHODS, MIN_COSINE, Format, get_format
from edge_jepa.io import atomic_dir
from edge_jepa.models.config import ModelConfig
from edge_jepa.models.layout import ClipLayout
from edge_jepa.models.vjepa2 import VJEPA2
from edge_jepa.outputs import check_replaceable
from edge_jepa.preprocess import IMAGENET_MEAN, IMAGENET_STD

INT8_ACTIVATIONS = ("dynamic", "static")
TOOLS = ("torch", "executorch", "torchao", "coremltools", "onnx", "onnxscript", "onnxruntime", "numpy")


class ExportError(RuntimeError):
    """An export that could not be completed (nothing was written)."""


@dataclass
class ExportRequest:
    """What an exporter gets: the fp32 model (clip config = the bundle's), the layout, where to write."""

    model: VJEPA2
    layout: ClipLayout
    precision: str
    out_dir: Path
    format: Format
    calibration_count: int = 8
    int8_activations: str = "dynamic"  # ExecuTorch int8: "dynamic" (per token) or "static" (calibrated)
    progress: Callable[[str], None] = field(default=lambda message: None)

    @cached_property
    def calibration(self) -> dict[str, list[tuple[Tensor]]]:
        """Real inputs for every method: held-out synthetic clips, and the fp32 context tokens of them."""
        from edge_jepa.quantize import calibration_clips

        clips = calibration_clips(self.model.config, self.calibration_count)
        tc = self.layout.context_frames
        context = [x[:, :, :tc].contiguous() for x in clips]
        with torch.no_grad():
            tokens = [self.model.encoder(x) for x in context]
        return {"encode_context": [(x,) for x in context], "encode_window": [(x,) for x in clips],
                "predict": [(t,) for t in tokens]}


@dataclass
class Artifacts:
    """What an exporter returns: for each method its file and entry point, plus format-specific details."""

    methods: dict[str, dict[str, str]]  # method -> {"file": relative path, "entry": method/function or ""}
    details: dict[str, Any] = field(default_factory=dict)


Exporter = Callable[[ExportRequest], Artifacts]


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


# --------------------------------------------------------------------------------------------- entry point


def export_bundle(model_or_source: VJEPA2 | str | os.PathLike, format: str, quant: str = "fp32", *,
                  frames: int | None = None, size: int | None = None, out: str | os.PathLike,
                  context_frames: int | None = None, calibration_clips: int = 8, verify_clips: int = 3,
                  int8_activations: str = "dynamic", progress: Callable[[str], None] | None = None,
                  force: bool = False) -> Path:
    """Export `model_or_source` (a VJEPA2 or anything `edge_jepa.load` takes) to a verified bundle at `out`.

    frames/size: the clip shape (default: the model's); the context share follows the model's unless
    `context_frames` is given. int8_activations: for ExecuTorch int8, "dynamic" (per token, default) or
    "static" (per tensor, calibrated on `calibration_clips` real clips). Returns the bundle path. Raises
    ExportError (nothing written) on failure. An existing `out` is replaced only if it is a bundle or model
    (or empty), else OutputError before any work; `force` replaces it anyway.
    """
    check_replaceable(out, what="bundle", force=force)
    fmt = get_format(format)
    fmt.check_precision(quant)
    if int8_activations not in INT8_ACTIVATIONS:
        raise ValueError(f"int8_activations must be one of {INT8_ACTIVATIONS}, got {int8_activations!r}")
    if int8_activations != "dynamic" and (fmt.name, quant) != ("executorch", "int8"):
        raise ValueError("static int8 activations apply to --format executorch --quant int8 only")
    missing = fmt.export_unavailable()
    if missing:
        raise ExportError(missing)
    say = progress or (lambda message: None)
    model = clip_model(_load(model_or_source), frames, size, context_frames)
    layout = ClipLayout.of(model)
    out = Path(out)
    with atomic_dir(out, what="bundle", force=force) as tmp:
        request = ExportRequest(model, layout, quant, tmp, fmt, calibration_clips, int8_activations, say)
        artifacts = fmt.resolve("exporter")(request)
        manifest = build_manifest(model, layout, fmt, quant, artifacts, source=_describe_source(model_or_source))
        write_manifest(tmp, manifest)
        say("verifying on the runtime")
        manifest["fidelity"] = verify_bundle(tmp, model, fmt, quant, verify_clips)
        write_manifest(tmp, manifest)
    return out


def _load(model_or_source: VJEPA2 | str | os.PathLike) -> VJEPA2:
    if isinstance(model_or_source, VJEPA2):
        scheme = getattr(model_or_source, "quantization", None)
        if scheme:
            raise ExportError(f"export takes the fp32 model, not an eager-quantized copy ({scheme}); pass the "
                              "original model and choose the bundle's precision with quant=/--quant")
        return model_or_source
    from edge_jepa.checkpoints import load

    return load(model_or_source)


def _describe_source(model_or_source: VJEPA2 | str | os.PathLike) -> str:
    return f"in-memory model {model_or_source.config.name}" if isinstance(model_or_source, VJEPA2) \
        else str(model_or_source)


def clip_model(model: VJEPA2, frames: int | None, size: int | None, context_frames: int | None) -> VJEPA2:
    """An fp32 eval copy of `model` whose config.clip is the bundle's clip (same weights; `model` untouched)."""
    try:
        clipped = model.at_clip(frames, size, context_frames)
    except ValueError as e:
        raise ExportError(str(e)) from None
    if clipped is model:
        clipped = copy.deepcopy(model)
    return clipped.float().eval().requires_grad_(False)


# --------------------------------------------------------------------------------------------- manifest


def build_manifest(model: VJEPA2, layout: ClipLayout, fmt: Format, precision: str, artifacts: Artifacts,
                   *, source: str) -> dict[str, Any]:
    """Everything a runner needs (and a human wants) about a bundle, without the file hashes/fidelity yet."""
    import edge_jepa

    cfg = model.config
    clip = cfg.clip
    inputs, outputs = layout.input_shapes(), layout.output_shapes()
    methods = {}
    for name in METHODS:
        art = artifacts.methods[name]
        in_name, out_name = IO_NAMES[name]
        methods[name] = {
            "file": art["file"],
            "entry": art.get("entry", ""),
            "inputs": [{"name": in_name, "shape": list(inputs[name]), "dtype": "float32"}],
            "outputs": [{"name": out_name, "shape": list(outputs[name]), "dtype": "float32"}],
        }
    gt, gh, gw = layout.grid
    return {
        "bundle_format_version": BUNDLE_FORMAT_VERSION,
        "format": fmt.name,
        "precision": precision,
        "precision_note": fmt.precision_notes[precision],
        "model": {"name": cfg.name, "source": source, "params": model.num_params(), "config": cfg.to_dict()},
        "clip": {"frames": clip.frames, "size": clip.size, "fps": clip.fps, "context_frames": clip.context_frames,
                 "target_frames": clip.target_frames},
        "surprise": {
            "grid": [gt, gh, gw],
            "tokens": layout.num_tokens,
            "context_idx": {"start": 0, "stop": layout.num_context},
            "target_idx": {"start": layout.num_context, "stop": layout.num_tokens},
            "mask_index": 1,
            "step": "context = encode_context(clip[:, :, :context_frames]); window = encode_window(clip); "
                    "predicted = predict(context)",
        },
        "preprocessing": preprocessing(cfg),
        "methods": methods,
        "export": artifacts.details,
        "versions": {"edge_jepa": edge_jepa.__version__, **tool_versions(), "python": platform.python_version()},
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


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


# --------------------------------------------------------------------------------------------- verification


def verify_bundle(root: Path, model: VJEPA2, fmt: Format, precision: str, clips: int) -> dict[str, Any]:
    """Run the bundle on its real runtime against eager fp32 on held-out real clips.

    Each graph gets identical inputs (the predictor gets eager context tokens); the end-to-end step is
    compared too (predicted from the bundle's own context, and the surprise score of each clip). Raises
    ExportError when a graph's mean token cosine is below the precision's threshold.
    """
    threshold = MIN_COSINE[precision]
    reason = fmt.run_unavailable()
    if reason:
        return {"verified": False, "reason": reason, "threshold": threshold}
    from edge_jepa.quantize import VERIFICATION_SEED_BASE, calibration_clips, token_cosine
    from edge_jepa.runtime.base import EagerRunner
    from edge_jepa.runtime.bundle import open_bundle
    from edge_jepa.surprise import step_errors

    with step(fmt.name, "loading the bundle in its runtime", "check the tool versions in the manifest"):
        runner = open_bundle(root, check_hashes=False)
    eager = EagerRunner(model)
    inputs = calibration_clips(model.config, clips, seed_base=VERIFICATION_SEED_BASE)
    per_method: dict[str, list[tuple[float, float]]] = {m: [] for m in METHODS}
    step_cos, score_err = [], []
    with step(fmt.name, "running the bundle", "re-export with --quant fp32 to isolate quantization"):
        for clip in inputs:
            ref = eager.run(clip)
            got_ctx = runner.call("encode_context", clip[:, :, : model.config.clip.context_frames])
            per_method["encode_context"].append(token_cosine(got_ctx, ref.context_tokens))
            per_method["encode_window"].append(token_cosine(runner.call("encode_window", clip), ref.window_tokens))
            per_method["predict"].append(token_cosine(runner.call("predict", ref.context_tokens), ref.predicted))
            out = runner.run(clip)
            step_cos.append(token_cosine(out.predicted, ref.predicted)[0])
            tgt = runner.target_idx
            a, b = float(step_errors(out, tgt).mean()), float(step_errors(ref, tgt).mean())
            score_err.append(abs(a - b) / max(abs(b), 1e-12))
    result: dict[str, Any] = {"verified": True, "runtime": runner.backend, "clips": clips, "threshold": threshold,
                              "metric": "cosine vs eager fp32: mean over tokens, worst of the clips"}
    for m, values in per_method.items():
        result[m] = {"cosine": min(v[0] for v in values), "min_token_cosine": min(v[1] for v in values)}
    result["step_predicted_cosine"] = min(step_cos)
    result["surprise_score_rel_error"] = max(score_err)
    failed = [m for m in METHODS if not result[m]["cosine"] >= threshold]  # NaN fails too
    if failed:
        detail = ", ".join(f"{m} {result[m]['cosine']:.4f}" for m in failed)
        hint = {"int4": "--quant int8", "int8": "--quant fp32 (or fp16 where the format has it)"}.get(
            precision, "check the model weights for NaN/inf and report the failing op set")
        raise ExportError(f"{fmt.name} {precision} export failed verification on {fmt.name}'s runtime: token "
                          f"cosine vs eager {detail} < {threshold} on {clips} real clips. Try {hint}")
    result["passed"] = True
    return result
