"""Bundles of frame-causal models: one method, the KV-cache stream step (edge_jepa.export.stream_step).

    bundle/
      manifest.json   "kind": "frame_causal", the "stream" section (method, fps, window, cache shape, the
                      value of an empty cache slot), the method's inputs/outputs, fidelity measured at export
      model.pte       (executorch: XNNPACK, fp32, PT2E int8 or 8da4w int4)  or  stream_step.onnx  (onnx: fp32 or int8)

`export_bundle` sends a FrameCausalJEPA here. The bundle is verified like the window bundles: a real stream
longer than the window (synthetic world scenes at the bundle's fps) runs through the bundle's runtime and the
eager KV step (`CausalPredictor.step`, what `FrameCausalScorer(cache="kv")` runs); the mean token cosine of the
frame tokens and of the predictions must reach the precision's MIN_COSINE at every step.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edge_jepa.export.artifacts import Artifacts, ExportError, preprocessing, step, tool_versions, write_manifest
from edge_jepa.formats import (
    BUNDLE_FORMAT_VERSION,
    CACHE_MASKED,
    MIN_COSINE,
    STREAM_INPUTS,
    STREAM_METHOD,
    STREAM_OUTPUTS,
    Format,
)
from edge_jepa.io import atomic_dir
from edge_jepa.models.world import TIME_UNIT, FrameCausalJEPA

VERIFY_SEED_BASE = 1_600_000_000  # scenes of the verification streams (as edge_jepa.quantize's verification)


@dataclass
class StreamExportRequest:
    """What a stream-step exporter gets: the fp32 model, the fps its tables are built for, where to write."""

    model: FrameCausalJEPA
    fps: float
    precision: str
    out_dir: Path
    format: Format
    progress: Callable[[str], None] = field(default=lambda message: None)


def export_stream_bundle(model: FrameCausalJEPA, fmt: Format, precision: str, out: Path, *, fps: float | None,
                         source: str, verify_streams: int = 2,
                         progress: Callable[[str], None] | None = None, force: bool = False) -> Path:
    """Export, verify and atomically write the stream-step bundle of a frame-causal model (see module docstring)."""
    reason = fmt.stream_unavailable(precision)
    if reason:
        raise ExportError(reason)
    fps = float(fps or model.config.clip.fps)
    if not fps > 0:
        raise ExportError(f"fps must be > 0, got {fps}")
    if verify_streams < 1:
        raise ValueError(f"verify_streams must be >= 1, got {verify_streams}")
    say = progress or (lambda message: None)
    model = copy.deepcopy(model).float().eval().requires_grad_(False)  # the caller's model is not touched
    with atomic_dir(out, what="bundle", force=force) as tmp:
        request = StreamExportRequest(model, fps, precision, tmp, fmt, say)
        artifacts = fmt.resolve("stream_exporter")(request)
        manifest = stream_manifest(model, fps, fmt, precision, artifacts, source=source)
        if isinstance(getattr(model, "surprise_prior", None), dict):  # the model's own calibration, for runners
            manifest["surprise_prior"] = model.surprise_prior
        write_manifest(tmp, manifest)
        say("verifying on the runtime")
        manifest["fidelity"] = verify_stream_bundle(tmp, model, fmt, precision, fps, verify_streams)
        write_manifest(tmp, manifest)
    return out


def cache_shape(model: FrameCausalJEPA) -> list[int]:
    """[L, heads, (W-1)*N, head_dim] of the predictor's key (and value) cache."""
    p = model.config.predictor
    gh, gw = model.token_grid()
    return [p.depth, p.heads, (model.window - 1) * gh * gw, p.head_dim]


def stream_manifest(model: FrameCausalJEPA, fps: float, fmt: Format, precision: str, artifacts: Artifacts, *,
                    source: str) -> dict[str, Any]:
    import edge_jepa

    cfg = model.config
    gh, gw = model.token_grid()
    n, d = gh * gw, cfg.encoder.width
    cache = cache_shape(model)
    shapes_in = {"frame": [1, 3, 1, cfg.clip.size, cfg.clip.size], "k_cache": cache, "v_cache": cache,
                 "cache_mask": [cache[2]]}
    shapes_out = {"tokens": [1, n, d], "predicted": [1, n, d], "log_scale": [1, n], "k_cache_out": cache,
                  "v_cache_out": cache, "cache_mask_out": [cache[2]]}
    art = artifacts.methods[STREAM_METHOD]
    pre = preprocessing(cfg)
    pre["input"] = "uint8 RGB frames [H, W, 3], one per stream step, at the bundle's fps"
    pre["layout"] = f"float32 [1, 3, 1, {cfg.clip.size}, {cfg.clip.size}] (batch, channel, time, height, width)"
    return {
        "bundle_format_version": BUNDLE_FORMAT_VERSION,
        "kind": "frame_causal",
        "format": fmt.name,
        "precision": precision,
        "precision_note": fmt.precision_notes[precision],
        "model": {"name": cfg.name, "source": source, "params": model.num_params(), "config": cfg.to_dict()},
        "clip": {"frames": cfg.clip.frames, "size": cfg.clip.size, "fps": fps},
        "stream": {
            "method": STREAM_METHOD,
            "fps": fps,
            "time_step": 1.0 / (fps * TIME_UNIT),
            "window": model.window,
            "grid": [gh, gw],
            "tokens_per_frame": n,
            "cache_shape": cache,
            "cache_masked": CACHE_MASKED,
            "flops_per_update": model.flops_per_update()["kv"],
            "step": "start: k_cache = v_cache = 0, cache_mask = cache_masked everywhere; each frame: "
                    "outputs = stream_step(frame, k_cache, v_cache, cache_mask); feed k_cache_out, v_cache_out, "
                    "cache_mask_out back; surprise of a frame = L1 between the previous step's predicted and "
                    "LayerNorm(tokens) (no affine), per token",
        },
        "preprocessing": pre,
        "methods": {STREAM_METHOD: {
            "file": art["file"], "entry": art.get("entry", ""),
            "inputs": [{"name": k, "shape": shapes_in[k], "dtype": "float32"} for k in STREAM_INPUTS],
            "outputs": [{"name": k, "shape": shapes_out[k], "dtype": "float32"} for k in STREAM_OUTPUTS],
        }},
        "export": artifacts.details,
        "versions": {"edge_jepa": edge_jepa.__version__, **tool_versions()},
    }


def verification_frames(model: FrameCausalJEPA, fps: float, streams: int,
                        frames: int | None = None) -> list[np.ndarray]:
    """`streams` real streams of preprocessed frames [F, 3, S, S] (held-out synthetic scenes at `fps`), each longer
    than the window so the cache wraps around."""
    from edge_jepa.data.synthetic import WorldConfig, generate_clip
    from edge_jepa.surprise import frame_to_input

    c = model.config.clip
    frames = frames or 2 * model.window + 2
    world = WorldConfig(size=max(32, c.size), num_frames=frames, fps=fps)
    clips = [generate_clip(VERIFY_SEED_BASE + i, world).frames for i in range(streams)]
    return [np.stack([frame_to_input(f, c.size, c.preprocess) for f in clip]) for clip in clips]


def verify_stream_bundle(root: Path, model: FrameCausalJEPA, fmt: Format, precision: str, fps: float,
                         streams: int) -> dict[str, Any]:
    """Run the bundle's stream step on its real runtime beside the eager KV step over real streams."""
    threshold = MIN_COSINE[precision]
    reason = fmt.run_unavailable()
    if reason:
        return {"verified": False, "reason": reason, "threshold": threshold}
    from edge_jepa.models.world import token_errors
    from edge_jepa.quantize import token_cosine
    from edge_jepa.runtime.manifest import open_bundle
    from edge_jepa.runtime.stream_step import StreamStepRunner

    with step(fmt.name, "loading the bundle in its runtime", "check the tool versions in the manifest"):
        runner = StreamStepRunner(open_bundle(root, check_hashes=False))
    dt = 1.0 / (fps * TIME_UNIT)
    tok_cos, pred_cos, log_err, score_err = [], [], [], []
    steps = 0
    with step(fmt.name, "running the bundle", "re-export with --quant fp32 to isolate quantization"), torch.no_grad():
        for stream in verification_frames(model, fps, streams):
            runner.reset()
            kv, prev_ref, prev_got = None, None, None
            for frame in stream:
                x = torch.from_numpy(frame)[None, :, None]
                z = model.encode_frames(x)[0, 0]
                pred, log_b, kv = model.predictor.step(z[None], dt, model.token_grid(), kv)
                got_z, got_pred, got_log_b = runner.step(x)
                tok_cos.append(token_cosine(got_z, z)[0])
                pred_cos.append(token_cosine(got_pred, pred[0])[0])
                log_err.append(float((got_log_b - log_b[0]).abs().max()))
                if prev_ref is not None:
                    a, b = float(token_errors(prev_got, got_z).mean()), float(token_errors(prev_ref, z).mean())
                    score_err.append(abs(a - b) / max(abs(b), 1e-12))
                prev_ref, prev_got = pred[0], got_pred
                steps += 1
    result: dict[str, Any] = {
        "verified": True, "runtime": runner.backend, "streams": streams, "steps": steps, "threshold": threshold,
        "metric": "cosine vs the eager KV stream step: mean over tokens, worst of the steps",
        "tokens": {"cosine": min(tok_cos)}, "predicted": {"cosine": min(pred_cos)},
        "log_scale_max_abs_error": max(log_err), "surprise_score_rel_error": max(score_err),
    }
    failed = [k for k in ("tokens", "predicted") if not result[k]["cosine"] >= threshold]  # NaN fails too
    if failed:
        detail = ", ".join(f"{k} {result[k]['cosine']:.4f}" for k in failed)
        raise ExportError(f"{fmt.name} {precision} stream-step export failed verification on {fmt.name}'s runtime: "
                          f"cosine vs eager {detail} < {threshold} over {steps} steps of {streams} real streams. "
                          "Try --quant fp32")
    result["passed"] = True
    return result
