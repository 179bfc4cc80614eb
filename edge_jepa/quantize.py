"""Quantization of V-JEPA 2 models: one verb for eager CPU, the PT2E path for ExecuTorch, and a fidelity report.

    qmodel = edge_jepa.quantize.quantize(model, "int8-dynamic")   # a quantized copy; encoder and predictor
    rows = edge_jepa.quantize.fidelity_report(model)              # token cosine, surprise rank corr., AUROC, size

Both model kinds: a window model (VJEPA2) and a frame-causal one (FrameCausalJEPA, whose report measures its
stream: each frame's tokens, the next-frame predictions, one stream update, and its stream-step bundles).

Eager schemes (torchao configs, CPU):
    int8-dynamic   Int8DynamicActivationInt8WeightConfig: int8 per-token activations x int8 per-channel weights
    int8-weight    Int8WeightOnlyConfig: int8 per-channel weights, fp32 activations
    int4-weight    PrototypeInt4WeightOnlyConfig: int4 weights in groups of 32 (HQQ scales), bf16 activations
    fp16           all weights and activations in float16
torchao quantizes nn.Linear weights, so the tubelet Conv2d is first rewritten as the equivalent Linear over
flattened patches (same weights, reshaped: edge_jepa.models.encoder.LinearTubeletEmbed) and is quantized with the
rest; that also sidesteps oneDNN's bf16 Conv2d with kernel == stride == 16 over 6 channels, which returns
wrong numbers on this torch (near-zero cosine vs fp32). A quantized model takes and returns float32 like the
original (forward hooks cast at the encoder/predictor boundary; a frame-causal predictor's KV step
`predictor.step` casts the same way), so everything that accepts a model accepts it; it is for running, not
for `save` (its state dict holds torchao tensors).

The PT2E path (`pt2e_quantize`) is what `edge-jepa export --format executorch --quant int8` uses:
XNNPACKQuantizer, per-channel int8 weights on every Linear. Activations are dynamic int8 per token by default;
static per-tensor int8 calibrated on real clips (`calibration_clips`: synthetic world clips preprocessed
exactly like the model's input) is the alternative (`--int8-activations static`). Dynamic is the default
because on the default model it gave a smaller .pte (no per-method int32 biases, fewer q/dq nodes), the same
latency and a higher cosine (figures: edge_jepa/export/README.md, "ExecuTorch specifics"; regenerate with
`python benchmarks/export_targets.py --int8-activations static`). In the static mode the tubelet embedding
stays dynamic: a static per-tensor scale at the start of the residual stream cost token cosine.
"""

from __future__ import annotations

import copy
import io
import types
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edge_jepa.models.config import ModelConfig
from edge_jepa.models.encoder import LinearTubeletEmbed
from edge_jepa.models.layers import Block
from edge_jepa.models.vjepa2 import VJEPA2
from edge_jepa.models.world import FrameCausalJEPA
from edge_jepa.runtime.base import EagerRunner, Runner
from edge_jepa.timing import time_calls

SCHEMES = ("int8-dynamic", "int8-weight", "int4-weight", "fp16")
# The precisions of the format table (edge_jepa.formats.PRECISIONS) in eager: the scheme each one means.
PRECISION_SCHEMES = {"fp16": "fp16", "int8": "int8-dynamic", "int4": "int4-weight"}
CALIBRATION_SEED_BASE = 1_500_000_000  # calibration scenes (disjoint from training < 1e9 and evaluation 2e9)
VERIFICATION_SEED_BASE = 1_600_000_000  # scenes used to check fidelity (disjoint from calibration)
INT4_GROUP = 32  # int4-weight: weights in groups of 32 input channels (Linears of other widths stay bf16)
INT4_OUT = 16  # int4-weight: output widths the int4 packing takes (multiples of 16; others stay bf16)


# --------------------------------------------------------------------------------------------- eager schemes


def quantize(model: VJEPA2 | FrameCausalJEPA, scheme: str) -> VJEPA2 | FrameCausalJEPA:
    """A quantized copy of `model` (encoder and predictor) for eager CPU execution; `model` is untouched.

    model: a window model (VJEPA2) or a frame-causal one (FrameCausalJEPA: its forward, `predict` and the KV
    stream step `predictor.step` all run quantized and take and return float32).
    scheme: one of SCHEMES, or a precision of the format table ("fp16", "int8", "int4": PRECISION_SCHEMES).
    The copy's `quantization` attribute records the scheme.
    """
    scheme = PRECISION_SCHEMES.get(scheme, scheme)
    if scheme not in SCHEMES:
        raise ValueError(f"unknown quantization scheme {scheme!r}; choose one of {', '.join(SCHEMES)} "
                         f"(or a precision: {', '.join(PRECISION_SCHEMES)})")
    q = copy.deepcopy(model).float().eval()
    q.encoder.patch_embed = LinearTubeletEmbed(q.encoder.patch_embed)
    q.requires_grad_(False)
    if scheme == "fp16":
        _compute_in(q, torch.float16)
    elif scheme == "int4-weight":
        from torchao.prototype.quantization.int4 import PrototypeInt4WeightOnlyConfig
        from torchao.quantization import quantize_
        from torchao.quantization.quantize_.workflows.int4.int4_choose_qparams_algorithm import (
            Int4ChooseQParamsAlgorithm,
        )

        _compute_in(q, torch.bfloat16)
        config = PrototypeInt4WeightOnlyConfig(group_size=INT4_GROUP, set_inductor_config=False,
                                               int4_choose_qparams_algorithm=Int4ChooseQParamsAlgorithm.HQQ)
        for part in (q.encoder, q.predictor):
            quantize_(part, config, filter_fn=_plain_linear_divisible_by(INT4_GROUP))
    else:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig, quantize_

        config = (Int8DynamicActivationInt8WeightConfig(set_inductor_config=False) if scheme == "int8-dynamic"
                  else Int8WeightOnlyConfig(set_inductor_config=False))
        quantize_(q.encoder, config, filter_fn=_matmul_linear)
        quantize_(q.predictor, config, filter_fn=_matmul_linear)
    q.quantization = scheme
    return q


def _matmul_linear(module: nn.Module, fqn: str) -> bool:
    """torchao filter: an nn.Linear that is a matmul. A Linear of one input (the frame-causal predictor's
    frame-interval embedding, 1 -> Dp: a scale and a shift) stays float; torchao's int8 kernels refuse it."""
    return isinstance(module, nn.Linear) and module.in_features > 1


def _plain_linear_divisible_by(group: int) -> Callable[[nn.Module, str], bool]:
    """torchao filter: a not-yet-quantized nn.Linear whose input width is a multiple of `group` and whose output
    width a multiple of INT4_OUT (the int4 packing's tiles; the frame-causal log-scale head, Dp -> 1, stays bf16)."""

    def fn(module: nn.Module, fqn: str) -> bool:
        return (type(module) is nn.Linear and type(module.weight.data) is torch.Tensor
                and module.in_features % group == 0 and module.out_features % INT4_OUT == 0)

    return fn


def _cast(x: Any, dtype: torch.dtype) -> Any:
    """`x` with every floating tensor in it (nested in tuples and lists too) cast to `dtype`."""
    if isinstance(x, Tensor):
        return x.to(dtype) if x.is_floating_point() else x
    if isinstance(x, tuple | list):
        return type(x)(_cast(v, dtype) for v in x)
    return x


def _compute_in(model: VJEPA2 | FrameCausalJEPA, dtype: torch.dtype) -> None:
    """Cast `model` to `dtype` in place and add hooks so it still takes and returns float32."""
    model.to(dtype)

    def cast_in(module: nn.Module, args: tuple) -> tuple:
        return _cast(args, dtype)

    def cast_out(module: nn.Module, args: tuple, out: Any) -> Any:
        return _cast(out, torch.float32)

    for part in (model.encoder, model.predictor):
        part.register_forward_pre_hook(cast_in)
        part.register_forward_hook(cast_out)
    for m in model.modules():
        if isinstance(m, Block):  # RoPE tables arrive in float32
            m.register_forward_pre_hook(cast_in)
    if isinstance(model, FrameCausalJEPA):  # the KV stream step is a method, not a forward: no hooks fire there
        _method_in(model.predictor, "step", dtype, float_out=True)
        for blk in model.predictor.blocks:
            _method_in(blk, "forward_cached", dtype, float_out=False)


def _method_in(module: nn.Module, name: str, dtype: torch.dtype, *, float_out: bool) -> None:
    """Make `module.name(...)` take its floating arguments in `dtype` (and return float32 if `float_out`).
    A bound method in the instance's dict: a deepcopy of the module rebinds it to the copy."""
    method = getattr(type(module), name)

    def call(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
        out = method(self, *_cast(args, dtype), **{k: _cast(v, dtype) for k, v in kwargs.items()})
        return _cast(out, torch.float32) if float_out else out

    setattr(module, name, types.MethodType(call, module))


def state_size(model: nn.Module) -> int:
    """Bytes of the serialized state dict (quantized tensors at their packed size)."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell()


# --------------------------------------------------------------------------------------------- real clips


def calibration_clips(config: ModelConfig, n: int = 8, *, seed_base: int = CALIBRATION_SEED_BASE,
                      frames: int | None = None, fps: float | None = None) -> list[Tensor]:
    """`n` real clips [1, 3, T, S, S] in the model's preprocessing: held-out synthetic world scenes
    (plausible physics, rendered at `fps`, default the model's) through `edge_jepa.preprocess`."""
    from edge_jepa.data.synthetic import WorldConfig, generate_clip
    from edge_jepa.preprocess import preprocess

    c = config.clip
    frames = frames or c.frames
    world = WorldConfig(size=max(32, c.size), num_frames=max(4, frames), fps=fps or c.fps)
    return [preprocess(generate_clip(seed_base + i, world).frames[:frames], c.size, c.preprocess) for i in range(n)]


# --------------------------------------------------------------------------------------------- PT2E (ExecuTorch)


def pt2e_quantize(module: nn.Module, example_inputs: tuple[Tensor, ...],
                  calibration: Iterable[tuple[Tensor, ...]] | None = None, *,
                  exclude: Sequence[type[nn.Module]] = (), dynamic: Sequence[str] = ()) -> torch.fx.GraphModule:
    """Int8 PT2E for ExecuTorch/XNNPACK (XNNPACKQuantizer): every nn.Linear gets per-channel symmetric int8
    weights, except inside `exclude` module types.

    Activations: without `calibration`, dynamic int8 per token (quantized at run time, outputs fp32). With
    `calibration` (real inputs), static per-tensor int8 calibrated on them, except for the Linears named in
    `dynamic` (module paths), which stay dynamic. Only Linears are annotated (not the residual adds, RoPE
    multiplies or concatenations), so attention and LayerNorm run in fp32 inside the same XNNPACK graph.
    Returns the converted GraphModule, ready for `torch.export.export` and lowering.
    """
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    dynamic_config = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True)
    quantizer = XNNPACKQuantizer()
    for name in dynamic:
        quantizer.set_module_name(name, dynamic_config)
    static = calibration is not None
    quantizer.set_operator_type(torch.ops.aten.linear.default,
                                get_symmetric_quantization_config(is_per_channel=True) if static else dynamic_config)
    for kind in exclude:
        quantizer.set_module_type(kind, None)
    prepared = prepare_pt2e(torch.export.export(module, example_inputs).module(), quantizer)
    with torch.no_grad():
        seen = 0
        for inputs in calibration if static else [example_inputs]:
            prepared(*(x.contiguous() for x in inputs))
            seen += 1
    if not seen:
        raise ValueError("PT2E static quantization needs at least one calibration input")
    return convert_pt2e(prepared)


# --------------------------------------------------------------------------------------------- fidelity


def token_cosine(a: Tensor, b: Tensor) -> tuple[float, float]:
    """(mean, min) over tokens of the cosine similarity of two token tensors [..., D]."""
    cos = F.cosine_similarity(a.float().reshape(-1, a.shape[-1]), b.float().reshape(-1, b.shape[-1]), dim=-1)
    return float(cos.mean()), float(cos.min())


# The cosine fields of each model kind (a row carries only its kind's; the others are None and left out of to_dict).
COSINES = {"window": ("context_cosine", "window_cosine", "predicted_cosine"),
           "frame_causal": ("frame_tokens_cosine", "frame_tokens_worst", "next_frame_cosine", "next_frame_worst")}


@dataclass
class Fidelity:
    """How far one quantized variant is from the fp32 model (see `fidelity_report`)."""

    scheme: str
    backend: str
    size_bytes: int | None
    min_token_cosine: float  # worst single token of all the row's cosines
    surprise_spearman: float  # rank correlation of per-frame surprise on a long video vs fp32
    surprise_auroc: float  # violation-of-expectation AUROC on held-out matched pairs
    latency_ms: float  # median surprise step (batch 1) in this process; frame-causal: one stream update
    kind: str = "window"  # the model kind: which cosines below the row has (COSINES)
    # window models: the three graphs of the surprise step, mean over tokens and clips
    context_cosine: float | None = None  # encoder tokens of the context clip
    window_cosine: float | None = None  # encoder tokens of the whole clip
    predicted_cosine: float | None = None  # predictor output, end to end (each variant runs its own encoder)
    # frame-causal models, over every frame of held-out streams (mean over tokens, frames and streams; worst token)
    frame_tokens_cosine: float | None = None  # each frame's encoder tokens
    frame_tokens_worst: float | None = None
    next_frame_cosine: float | None = None  # the prediction of the next frame's tokens, end to end
    next_frame_worst: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        other = {f for k, fields in COSINES.items() if k != self.kind for f in fields}
        return {k: v for k, v in asdict(self).items() if k not in other}


def fidelity_report(model: VJEPA2 | FrameCausalJEPA, schemes: Sequence[str] = SCHEMES, *,
                    runners: dict[str, Any] | None = None, clips: int = 4, video_seconds: float = 12.0,
                    pairs_per_type: int = 3, violations: Sequence[str] | None = None, fps: float | None = None,
                    on_step: Callable[[str], None] | None = None) -> list[Fidelity]:
    """One row per variant: fp32 itself first, each eager scheme, then any extra `runners` (e.g. opened
    export bundles, keyed by a label).

    Token cosines on `clips` held-out real clips; surprise rank correlation (Spearman) between the variant's
    and fp32's per-frame surprise on one long synthetic video with violations; surprise AUROC from
    `edge_jepa.evaluation.evaluate_surprise` on `pairs_per_type` matched pairs per violation type (the same
    pairs for every variant); size of the weights (state dict, or the bundle's files).

    A frame-causal model (FrameCausalJEPA) is measured as it streams: see `frame_causal_report` (`runners`: its
    stream-step bundles, StreamStepRunners; `fps`: the rate of the streams, default the model's).
    """
    if model.config.kind == "frame_causal":
        return frame_causal_report(model, schemes, runners=runners, clips=clips, video_seconds=video_seconds,
                                   pairs_per_type=pairs_per_type, violations=violations, fps=fps, on_step=on_step)
    if fps is not None and abs(fps - model.config.clip.fps) > 1e-6:
        raise ValueError(f"{model.config.name} is a window model for frames at {model.config.clip.fps:g} fps, "
                         f"got fps={fps:g}")
    from edge_jepa.data.synthetic import VIOLATIONS

    violations = tuple(violations or VIOLATIONS)
    base = EagerRunner(model)
    inputs = calibration_clips(model.config, clips, seed_base=VERIFICATION_SEED_BASE)
    video = _surprise_video(model.config, video_seconds)
    reference = [base.run(x) for x in inputs]
    base_scores = _scores(base, video)

    variants: list[tuple[str, Runner, int | None]] = [("fp32", base, state_size(model))]
    for scheme in schemes:
        if on_step:
            on_step(f"quantizing {scheme}")
        q = quantize(model, scheme)
        variants.append((scheme, EagerRunner(q, precision=scheme), state_size(q)))
    for label, runner in (runners or {}).items():
        variants.append((label, runner, getattr(runner, "size_bytes", None)))

    rows = []
    for label, runner, size in variants:
        if on_step:
            on_step(f"measuring {label} ({runner.backend})")
        outs = [runner.run(x) for x in inputs]
        cos = {k: [token_cosine(getattr(o, k), getattr(r, k)) for o, r in zip(outs, reference, strict=True)]
               for k in ("context_tokens", "window_tokens", "predicted")}
        scores = base_scores if runner is base else _scores(runner, video)
        auroc = _auroc(runner, pairs_per_type, violations)
        rows.append(Fidelity(
            scheme=label, backend=f"{runner.backend}/{runner.precision}", size_bytes=size,
            context_cosine=float(np.mean([c[0] for c in cos["context_tokens"]])),
            window_cosine=float(np.mean([c[0] for c in cos["window_tokens"]])),
            predicted_cosine=float(np.mean([c[0] for c in cos["predicted"]])),
            min_token_cosine=float(min(c[1] for v in cos.values() for c in v)),
            surprise_spearman=_spearman(scores, base_scores),
            surprise_auroc=auroc,
            latency_ms=time_calls(lambda r=runner: r.run(inputs[0]), warmup=1, runs=7).p50,
        ))
    return rows


def _surprise_video(config: ModelConfig, seconds: float, fps: float | None = None) -> np.ndarray:
    """A long synthetic scene at `fps` (default: the model's) with a few violations (frames uint8 [F, H, W, 3])."""
    from edge_jepa.data.synthetic import WorldConfig, render_long_video

    c = config.clip
    fps = fps or c.fps
    seconds = max(seconds, 3.0 * c.frames / fps)
    events = [(seconds * f, v) for f, v in ((0.3, "teleport"), (0.55, "vanish"), (0.8, "color_change"))]
    world = WorldConfig(size=max(32, c.size), fps=fps)
    return render_long_video(VERIFICATION_SEED_BASE, seconds, world, events).frames


def _scores(runner: Any, video: np.ndarray) -> np.ndarray:
    """Per-frame surprise of a Runner or a scorer on `video`."""
    from edge_jepa.surprise import surprise_scores

    return surprise_scores(runner, video)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from edge_jepa.evaluation import spearman

    return spearman(a, b)


def _auroc(runner: Runner, pairs_per_type: int, violations: tuple[str, ...]) -> float:
    if pairs_per_type <= 0:
        return float("nan")
    from edge_jepa.evaluation import evaluate_surprise

    return float(evaluate_surprise(runner, pairs_per_type=pairs_per_type, violations=violations)["overall"]["auroc"])


# --------------------------------------------------------------------------------------------- frame-causal fidelity


def frame_causal_report(model: FrameCausalJEPA, schemes: Sequence[str] = SCHEMES, *,
                        runners: dict[str, Any] | None = None, clips: int = 4, video_seconds: float = 12.0,
                        pairs_per_type: int = 3, violations: Sequence[str] | None = None, fps: float | None = None,
                        on_step: Callable[[str], None] | None = None) -> list[Fidelity]:
    """`fidelity_report` of a frame-causal model: what its stream does, per variant, against fp32.

    Rows: fp32 eager, each eager scheme of `quantize`, then (with `runners`: label -> StreamStepRunner, the
    stream-step bundles of `edge-jepa export`) an eager fp32 row on the KV step ("fp32 kv") and one row per
    bundle. Eager rows score as `FrameCausalScorer` does by default (the predictor re-run over the cached tokens);
    a bundle runs its KV stream step, so its surprise is ranked against fp32's on the KV step.
    - frame_tokens / next_frame cosines: every frame of `clips` held-out streams (synthetic world scenes at `fps`,
      twice the window long, so a bundle's cache fills and slides): each frame's encoder tokens and the
      prediction of the next frame's tokens, against fp32 eager on the same frames (mean, and the worst token).
    - surprise_spearman: per-frame surprise (the scorer's default scoring) on a long synthetic video with
      violations, rank-correlated with fp32's.
    - surprise_auroc: `pairs_per_type` held-out matched pairs per violation type (the same pairs for every row).
    - latency_ms: median of one stream update in steady state (the frame encoded, the next frame predicted,
      the frame scored; batch 1) in this process. size: state dict, or the bundle's files.
    """
    from edge_jepa.data.synthetic import VIOLATIONS
    from edge_jepa.surprise import FrameCausalScorer

    violations = tuple(violations or VIOLATIONS)
    fps = float(fps or model.config.clip.fps)
    from edge_jepa.runtime.stream_step import StreamStepRunner

    for label, runner in (runners or {}).items():
        if not isinstance(runner, StreamStepRunner):
            raise ValueError(f"{label}: a frame-causal model is compared with its stream-step bundles "
                             f"(StreamStepRunner.open(path)), got {type(runner).__name__}")
        if abs(runner.fps - fps) > 1e-6:
            raise ValueError(f"{label} was exported for frames at {runner.fps:g} fps; this report streams at "
                             f"{fps:g} fps (measure it with fps={runner.fps:g}, or re-export it with --fps {fps:g})")
    model = model.eval()
    streams = calibration_clips(model.config, clips, seed_base=VERIFICATION_SEED_BASE, frames=2 * model.window,
                                fps=fps)
    video = _surprise_video(model.config, video_seconds, fps)
    with torch.no_grad():
        reference = [model(x, fps)[:2] for x in streams]  # fp32 tokens, predictions [1, F, N, D]

    variants: list[tuple[str, Any, str, int | None]] = [("fp32", model, "rerun", state_size(model))]
    for scheme in schemes:
        if on_step:
            on_step(f"quantizing {scheme}")
        q = quantize(model, scheme)
        variants.append((scheme, q, "rerun", state_size(q)))
    if runners:
        variants.append(("fp32 kv", model, "kv", state_size(model)))
    for label, runner in (runners or {}).items():
        variants.append((label, runner, "kv", runner.bundle.size_bytes))

    base_scores: dict[str, np.ndarray] = {}
    rows = []
    for label, variant, cache, size in variants:
        if on_step:
            on_step(f"measuring {label}")
        scorer = FrameCausalScorer(variant, fps=fps, cache=cache)
        outs = [_stream_outputs(variant, x, fps) for x in streams]
        tokens = [token_cosine(o[0], r[0]) for o, r in zip(outs, reference, strict=True)]
        nexts = [token_cosine(o[1], r[1]) for o, r in zip(outs, reference, strict=True)]
        scores = _scores(scorer, video)
        if variant is model:
            base_scores[cache] = scores
        auroc = _frame_causal_auroc(scorer, pairs_per_type, violations)
        rows.append(Fidelity(
            scheme=label, size_bytes=size,
            backend=f"eager/{getattr(variant, 'quantization', 'fp32')} {cache}" if isinstance(variant, nn.Module)
            else f"{scorer.backend} {cache}",
            min_token_cosine=float(min(c[1] for c in tokens + nexts)),
            surprise_spearman=_spearman(scores, base_scores[cache]),
            surprise_auroc=auroc,
            latency_ms=_update_ms(scorer, streams[0]),
            kind="frame_causal",
            frame_tokens_cosine=float(np.mean([c[0] for c in tokens])),
            frame_tokens_worst=float(min(c[1] for c in tokens)),
            next_frame_cosine=float(np.mean([c[0] for c in nexts])),
            next_frame_worst=float(min(c[1] for c in nexts)),
            extra={"step": cache, "fps": fps, "scoring": scorer.scoring,
                   "spearman_reference": f"fp32 eager, {cache} step"},
        ))
    return rows


@torch.no_grad()
def _stream_outputs(variant: Any, stream: Tensor, fps: float) -> tuple[Tensor, Tensor]:
    """Tokens and next-frame predictions [1, F, N, D] of a preprocessed stream [1, 3, F, S, S]: an eager model
    over the whole stream (block-causal, sliding window), a StreamStepRunner one frame at a time."""
    if isinstance(variant, nn.Module):
        return variant(stream, fps)[:2]
    variant.reset()
    steps = [variant.step(stream[:, :, t : t + 1]) for t in range(stream.shape[2])]
    return torch.stack([s[0] for s in steps])[None], torch.stack([s[1] for s in steps])[None]


def _update_ms(scorer: Any, stream: Tensor, runs: int = 20) -> float:
    """Median ms of one steady-state stream update of `scorer` (push of a preprocessed frame, scored)."""
    frames = [stream[0, :, t].numpy() for t in range(stream.shape[2])]
    scorer.reset()
    for f in frames[: scorer.frames_per_window]:  # the window fills: every update from here on is scored
        scorer.push_input(f)
    index = iter(range(10**9))
    return time_calls(lambda: scorer.push_input(frames[next(index) % len(frames)]), warmup=3, runs=runs).p50


def _frame_causal_auroc(scorer: Any, pairs_per_type: int, violations: tuple[str, ...]) -> float:
    if pairs_per_type <= 0:
        return float("nan")
    import dataclasses

    from edge_jepa.evaluation import score_pairs, summarize, world_for

    world = dataclasses.replace(world_for(scorer), fps=scorer.fps)  # held-out scenes at the rate it streams
    pairs = score_pairs(scorer, pairs_per_type=pairs_per_type, violations=violations, world=world)
    return float(summarize(pairs, 0)["overall"]["auroc"])
