"""One benchmark cell: open one (format, precision) runner, time it, measure its memory and fidelity.

A cell runs in a process of its own (`run_cell_isolated`, multiprocessing spawn) so that its peak RSS is its
own: ru_maxrss never goes down within a process. The parent sends a `CellSpec` and receives progress messages
and finally the row (a dict in the bench schema) or the error.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_mod
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

EAGER_FORMATS = ("eager", "compile")  # the PyTorch model itself, and the same through torch.compile
TIMING_CLIP_SEED = 99  # the timed clip: held-out verification scene VERIFICATION_SEED_BASE + 99


@dataclass
class CellSpec:
    """Everything a cell needs, picklable (the child rebuilds models from the source string)."""

    format: str
    precision: str
    source: str  # model source / registered geometry (eager, compile) or a bundle directory
    frames: int | None = None
    size: int | None = None
    threads: int = 1
    warmup: int = 3
    runs: int = 20
    parts: tuple[str, ...] = ("step", "encode_context", "encode_window", "predict")
    reference: str | None = None  # torch file with real clips and fp32 eager outputs (see run.write_reference)
    auroc_pairs: int = 0  # matched pairs per violation type (0: no AUROC)
    runner_options: dict[str, Any] = field(default_factory=dict)  # extra kwargs of bundle runners (providers, ...)


def set_threads(threads: int, fmt: str) -> None:
    import torch

    torch.set_num_threads(threads)
    if fmt.startswith("executorch"):
        from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool

        _unsafe_reset_threadpool(threads)


def open_runner(spec: CellSpec) -> tuple[Any, float | None]:
    """The runner of a cell and its artifact size in MB."""
    from edge_jepa.runtime.base import EagerRunner, Runner

    if spec.format in EAGER_FORMATS:
        import torch

        from edge_jepa.bench.sources import load_any
        from edge_jepa.quantize import quantize, state_size

        model = load_any(spec.source)
        if model.config.kind == "frame_causal":  # timed by its KV stream update (planned fp32 eager only)
            from edge_jepa.bench.parts import EagerStreamStep

            return EagerStreamStep(model), state_size(model) / 1e6
        model = model.at_clip(spec.frames, spec.size)
        if spec.precision != "fp32":
            model = quantize(model, spec.precision)  # the precision's eager scheme (quantize.PRECISION_SCHEMES)
        size_mb = state_size(model) / 1e6
        if spec.format == "compile":
            model.encoder = torch.compile(model.encoder, dynamic=False)
            model.predictor = torch.compile(model.predictor, dynamic=False)
        return EagerRunner(model, precision=spec.precision), size_mb
    kwargs = dict(spec.runner_options)
    if spec.format == "onnx":
        kwargs.setdefault("threads", spec.threads)
    runner = Runner.open(spec.source, **kwargs)
    return runner, runner.size_bytes / 1e6


def run_cell(spec: CellSpec, progress: Callable[[str], None] = lambda message: None) -> dict[str, Any]:
    """Measure one cell in this process; returns the measured fields of its row."""
    import torch

    from edge_jepa.bench.memory import current_rss_mb, peak_rss_mb
    from edge_jepa.bench.parts import part_calls
    from edge_jepa.quantize import VERIFICATION_SEED_BASE, calibration_clips
    from edge_jepa.timing import time_calls

    set_threads(spec.threads, spec.format)
    rss_before = current_rss_mb()
    progress("loading")
    runner, size_mb = open_runner(spec)
    clip = calibration_clips(runner.config, 1, seed_base=VERIFICATION_SEED_BASE + TIMING_CLIP_SEED)[0]
    calls = part_calls(runner, clip)
    parts: dict[str, dict[str, float | None]] = {}
    with torch.inference_mode():
        for part in spec.parts:
            progress(f"{part}: warm-up")
            timing = time_calls(calls[part], warmup=spec.warmup, runs=spec.runs,
                                on_run=lambda i, n, p=part: progress(f"{p}: run {i}/{n}"))
            parts[part] = timing.summary()
    row: dict[str, Any] = {"parts": parts, "size_mb": size_mb, "rss_before_load_mb": rss_before,
                           "peak_rss_mb": peak_rss_mb(), "threads": torch.get_num_threads()}
    if "step" in parts:
        step = parts["step"]
        row.update(p50_ms=step["p50_ms"], p90_ms=step["p90_ms"], p99_ms=step["p99_ms"], fps=1e3 / step["p50_ms"])
    if spec.reference:
        progress("fidelity vs fp32 eager")
        row.update(fidelity(runner, spec.reference))
    if spec.auroc_pairs > 0:
        from edge_jepa.evaluation import evaluate_surprise

        progress(f"surprise AUROC on {spec.auroc_pairs} pair(s) per violation")
        report = evaluate_surprise(runner, pairs_per_type=spec.auroc_pairs, baselines=False)
        row.update(auroc=float(report["overall"]["auroc"]), auroc_pairs=spec.auroc_pairs)
    return row


def fidelity(runner: Any, reference: str) -> dict[str, Any]:
    """Mean token cosine of the runner's context / window / predicted tokens vs fp32 eager on the reference
    clips (each through the runner's own step); `cosine` is the worst of the three."""
    import torch

    from edge_jepa.quantize import token_cosine

    ref = torch.load(reference, weights_only=True)
    sums = {"context": 0.0, "window": 0.0, "predicted": 0.0}
    for clip, (ctx, win, pred) in zip(ref["clips"], ref["outputs"], strict=True):
        out = runner.run(clip)
        sums["context"] += token_cosine(out.context_tokens, ctx)[0]
        sums["window"] += token_cosine(out.window_tokens, win)[0]
        sums["predicted"] += token_cosine(out.predicted, pred)[0]
    n = len(ref["clips"])
    parts = {k: v / n for k, v in sums.items()}
    return {"cosine": min(parts.values()), "cosine_parts": parts,
            "cosine_from": f"measured vs fp32 eager on {n} real clip(s)"}


# --------------------------------------------------------------------------------------------- isolation


def _child(spec: CellSpec, messages: Any) -> None:
    os.environ.setdefault("TQDM_DISABLE", "1")
    from edge_jepa.toolkits import quiet_toolkits

    try:
        with quiet_toolkits():
            row = run_cell(spec, lambda message: messages.put(("progress", message)))
        messages.put(("result", row))
    except BaseException as e:  # noqa: BLE001 - every failure goes back to the parent as a failed row
        detail = traceback.format_exc(limit=3)
        messages.put(("error", f"{type(e).__name__}: {e}".strip() + f"\n{detail}"))


def run_cell_isolated(spec: CellSpec, progress: Callable[[str], None] = lambda message: None,
                      timeout_s: float | None = None) -> dict[str, Any]:
    """Run `run_cell(spec)` in a fresh spawned process; raise CellError with the child's error on failure."""
    ctx = mp.get_context("spawn")
    messages = ctx.Queue()
    proc = ctx.Process(target=_child, args=(spec, messages), daemon=True)
    proc.start()
    try:
        waited = 0.0
        while True:
            try:
                kind, payload = messages.get(timeout=1.0)
            except queue_mod.Empty:
                waited += 1.0
                if not proc.is_alive():
                    raise CellError(f"the benchmark process died (exit code {proc.exitcode}) without a result; "
                                    "out of memory?") from None
                if timeout_s is not None and waited > timeout_s:
                    raise CellError(f"no progress for {timeout_s:.0f} s (--cell-timeout); stopped") from None
                continue
            waited = 0.0
            if kind == "progress":
                progress(payload)
            elif kind == "result":
                proc.join(timeout=10)  # the child exits right after sending its result
                return payload
            else:
                raise CellError(payload or "unknown error")
    finally:
        if proc.is_alive():  # failed, timed out or interrupted: nothing more to wait for
            proc.kill()
            proc.join()
        messages.close()


class CellError(RuntimeError):
    """A cell that failed in its own process."""
