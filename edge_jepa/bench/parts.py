"""The calls a benchmark times on any Runner: the full surprise step and each of its parts.

    step            runner.run(clip): context encoder + window encoder + predictor
    encode_context  the encoder on the first context_frames of the clip
    encode_window   the encoder on the whole window (the target representation)
    predict         the predictor from the context tokens to the target tokens

Eager runners call the model's modules; bundle runners call the bundle's methods (`BundleRunner.call`), so
each part is exactly what that backend runs inside the step. A frame-causal model has one part, "step": one
stream update with a full KV cache (a bundle's stream_step, or eager: the new frame through the encoder and
`CausalPredictor.step`, what FrameCausalScorer(cache="kv") runs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from edge_jepa.bench.schema import PARTS
from edge_jepa.runtime.base import EagerRunner, Runner
from edge_jepa.runtime.bundle import BundleRunner


def check_parts(parts: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        raise ValueError(f"unknown part(s) {unknown or '(none given)'}; choose from {', '.join(PARTS)}")
    return tuple(p for p in PARTS if p in parts)


@torch.inference_mode()
def part_calls(runner: Runner, clip: Tensor) -> dict[str, Callable[[], Any]]:
    """name -> zero-argument call, for every part in PARTS, on `clip` [1, 3, T, S, S]."""
    if isinstance(runner, BundleRunner) and runner.kind == "frame_causal":
        return stream_calls(runner, clip)
    if isinstance(runner, EagerStreamStep):
        return eager_stream_calls(runner, clip)
    runner.check_clip(clip)
    ctx_clip = clip[:, :, : runner.context_frames].contiguous()
    if isinstance(runner, BundleRunner):
        context = runner.call("encode_context", ctx_clip)
        return {
            "step": lambda: runner.run(clip),
            "encode_context": lambda: runner.call("encode_context", ctx_clip),
            "encode_window": lambda: runner.call("encode_window", clip),
            "predict": lambda: runner.call("predict", context),
        }
    if isinstance(runner, EagerRunner):
        model = runner.model
        ctx_idx, tgt_idx = runner.context_idx[None], runner.target_idx[None]
        context = model.encoder(ctx_clip)
        return {
            "step": lambda: runner.run(clip),
            "encode_context": lambda: model.encoder(ctx_clip),
            "encode_window": lambda: model.encoder(clip),
            "predict": lambda: model.predictor(context, ctx_idx, tgt_idx),
        }
    raise TypeError(f"cannot time the parts of a {type(runner).__name__}; use an EagerRunner or a bundle runner")


class EagerStreamStep:
    """An fp32 eager frame-causal model, timed by its KV stream update (the bench's eager cell of such a model)."""

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.config = model.config


@torch.inference_mode()
def eager_stream_calls(runner: EagerStreamStep, clip: Tensor) -> dict[str, Callable[[], Any]]:
    """"step": one eager KV update on the clip's last frame against a cache of window - 1 frames (steady state)."""
    from edge_jepa.models.world import TIME_UNIT

    model = runner.model
    step, grid = 1.0 / (model.config.clip.fps * TIME_UNIT), model.token_grid()
    frames = [clip[:, :, i : i + 1].contiguous() for i in range(clip.shape[2])]
    kv = None
    for i in range(model.window - 1):
        _, _, kv = model.predictor.step(model.encode_frames(frames[i % len(frames)])[:, 0], step, grid, kv)

    @torch.inference_mode()
    def update() -> Any:  # kv stays the full cache: every call costs one steady-state update
        return model.predictor.step(model.encode_frames(frames[-1])[:, 0], step, grid, kv)

    return {"step": update}


def stream_calls(runner: BundleRunner, clip: Tensor) -> dict[str, Callable[[], Any]]:
    """A frame-causal bundle: "step" is one stream_step call on the clip's last frame, the cache kept full."""
    from edge_jepa.runtime.stream_step import StreamStepRunner

    stepper = StreamStepRunner(runner)
    frames = [clip[:, :, i : i + 1].contiguous() for i in range(clip.shape[2])]
    for i in range(stepper.window - 1):  # fill the cache: every timed call is a steady-state update
        stepper.step(frames[i % len(frames)])
    return {"step": lambda: stepper.step(frames[-1])}
