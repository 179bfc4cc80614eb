"""Write an export bundle: artifacts + manifest.json, verified on the real runtime, atomically.

    bundle/
      manifest.json        format, precision, model config, clip layout, preprocessing, inputs/outputs,
                           fidelity measured at export, sha256 of every file, tool versions
      model.pte            (executorch)   or  encode_context.onnx, encode_window.onnx, predict.onnx  (onnx)
                                          or  model.mlpackage/                                      (coreml)

A frame-causal model's bundle (its KV-cache stream step) is written by edge_jepa.export.stream_bundle.
The bundle directory appears only after the artifacts are written and verified (`edge_jepa.io.atomic_dir`):
an export that fails leaves nothing behind and raises `ExportError` naming the format, the step, the op
when one is to blame, and what to try.
"""

from __future__ import annotations

import copy
import datetime as dt
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from edge_jepa.export.artifacts import (
    TOOLS,
    Artifacts,
    ExportError,
    failing_op,
    file_hashes,
    preprocessing,
    sha256,
    step,
    tool_versions,
    write_manifest,
)
from edge_jepa.formats import BUNDLE_FORMAT_VERSION, IO_NAMES, METHODS, MIN_COSINE, Format, get_format
from edge_jepa.io import atomic_dir
from edge_jepa.models.layout import ClipLayout
from edge_jepa.models.vjepa2 import VJEPA2
from edge_jepa.outputs import check_replaceable

__all__ = ["TOOLS", "Artifacts", "ExportError", "ExportRequest", "Exporter", "build_manifest", "clip_model",
           "export_bundle", "failing_op", "file_hashes", "preprocessing", "sha256", "step", "tool_versions",
           "verify_bundle", "write_manifest"]

INT8_ACTIVATIONS = ("dynamic", "static")


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




Exporter = Callable[[ExportRequest], Artifacts]




# --------------------------------------------------------------------------------------------- entry point


def export_bundle(model_or_source: VJEPA2 | str | os.PathLike, format: str, quant: str = "fp32", *,
                  frames: int | None = None, size: int | None = None, out: str | os.PathLike,
                  context_frames: int | None = None, calibration_clips: int = 8, verify_clips: int = 3,
                  int8_activations: str = "dynamic", progress: Callable[[str], None] | None = None,
                  fps: float | None = None, force: bool = False) -> Path:
    """Export `model_or_source` (a VJEPA2 or anything `edge_jepa.load` takes) to a verified bundle at `out`.

    frames/size: the clip shape (default: the model's); the context share follows the model's unless
    `context_frames` is given. int8_activations: for ExecuTorch int8, "dynamic" (per token, default) or
    "static" (per tensor, calibrated on `calibration_clips` real clips). Returns the bundle path. Raises
    ExportError (nothing written) on failure. An existing `out` is replaced only if it is a bundle or model
    (or empty), else OutputError before any work; `force` replaces it anyway.

    A frame-causal model (config.kind "frame_causal") exports its KV-cache stream step instead
    (edge_jepa.export.stream_bundle), for frames arriving at `fps` (default: the model's); its shape is the model's,
    and `verify_clips` real streams (each longer than the window) check it.
    """
    check_replaceable(out, what="bundle", force=force)
    fmt = get_format(format)
    model = _load(model_or_source)
    if model.config.kind == "frame_causal":
        fixed = {"frames": frames, "size": size, "context_frames": context_frames}
        given = [k for k, v in fixed.items() if v is not None]
        if given:
            raise ValueError(f"{model.config.name} is a frame-causal model: its stream step has the model's frame "
                             f"size and window; drop {', '.join(given)} (choose the frame rate with fps=/--fps)")
        if int8_activations != "dynamic":
            raise ValueError("a frame-causal model's int8 stream step uses dynamic activations only")
        missing = fmt.export_unavailable()
        if missing:
            raise ExportError(missing)
        fmt.check_precision(quant, "frame_causal")
        from edge_jepa.export.stream_bundle import export_stream_bundle

        return export_stream_bundle(model, fmt, quant, Path(out), fps=fps, source=_describe_source(model_or_source),
                                    verify_streams=verify_clips, progress=progress, force=force)
    if fps is not None and abs(fps - model.config.clip.fps) > 1e-6:
        raise ValueError(f"{model.config.name} is a window model for frames at {model.config.clip.fps:g} fps; "
                         "fps applies to frame-causal models only")
    fmt.check_precision(quant)
    if int8_activations not in INT8_ACTIVATIONS:
        raise ValueError(f"int8_activations must be one of {INT8_ACTIVATIONS}, got {int8_activations!r}")
    if int8_activations != "dynamic" and (fmt.name, quant) != ("executorch", "int8"):
        raise ValueError("static int8 activations apply to --format executorch --quant int8 only")
    missing = fmt.export_unavailable()
    if missing:
        raise ExportError(missing)
    say = progress or (lambda message: None)
    prior, own_clip = getattr(model, "surprise_prior", None), model.config.clip  # the model's own calibration
    model = clip_model(model, frames, size, context_frames)
    prior = prior if model.config.clip == own_clip else None  # measured on the model's own clip only
    layout = ClipLayout.of(model)
    out = Path(out)
    with atomic_dir(out, what="bundle", force=force) as tmp:
        request = ExportRequest(model, layout, quant, tmp, fmt, calibration_clips, int8_activations, say)
        artifacts = fmt.resolve("exporter")(request)
        manifest = build_manifest(model, layout, fmt, quant, artifacts, source=_describe_source(model_or_source))
        if isinstance(prior, dict):
            manifest["surprise_prior"] = prior
        write_manifest(tmp, manifest)
        say("verifying on the runtime")
        manifest["fidelity"] = verify_bundle(tmp, model, fmt, quant, verify_clips)
        write_manifest(tmp, manifest)
    return out


def _load(model_or_source: VJEPA2 | str | os.PathLike) -> VJEPA2:
    if isinstance(model_or_source, torch.nn.Module) and getattr(model_or_source.config, "kind", "") == "frame_causal":
        return model_or_source
    if isinstance(model_or_source, VJEPA2):
        scheme = getattr(model_or_source, "quantization", None)
        if scheme:
            raise ExportError(f"export takes the fp32 model, not an eager-quantized copy ({scheme}); pass the "
                              "original model and choose the bundle's precision with quant=/--quant")
        return model_or_source
    from edge_jepa.checkpoints import load

    return load(model_or_source)


def _describe_source(model_or_source: VJEPA2 | str | os.PathLike) -> str:
    return f"in-memory model {model_or_source.config.name}" if isinstance(model_or_source, torch.nn.Module) \
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
