"""Orchestrate a benchmark: sources x formats x precisions -> one row per cell.

    rows = run_bench(["default"], BenchOptions(formats=("eager", "executorch", "onnx"), precisions=("fp32", "int8")))

A source is a model (anything `edge_jepa.load` takes), a registered geometry name (random weights) or an
export bundle directory. A frame-causal model (the embedded default) is timed by its stream update with a full KV
cache: eager fp32 runs `CausalPredictor.step`, the bundle formats its exported stream step. For a model, each bundle
format is exported (edge_jepa.export.bundle.export_bundle, the format
table in edge_jepa.formats) into a cache directory keyed by the weights, then every cell is measured in its own
process (edge_jepa.bench.cell). A bundle is measured as it is (its format and precision). Cells this machine
cannot run come back as "skipped" rows with the reason, failed exports/runs as "failed" rows: none is dropped.
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from edge_jepa.bench.cell import EAGER_FORMATS, CellError, CellSpec, run_cell, run_cell_isolated
from edge_jepa.bench.matmul import matmul_throughput, torch_threads
from edge_jepa.bench.parts import check_parts
from edge_jepa.bench.schema import PARTS, BenchRow
from edge_jepa.bench.sources import describe, is_bundle, is_geometry, load_any, load_model, weights_digest
from edge_jepa.formats import FORMATS, PRECISIONS
from edge_jepa.models.config import ModelConfig, get_config
from edge_jepa.models.layout import ClipLayout
from edge_jepa.models.vjepa2 import VJEPA2, FlopCount

BENCH_FORMATS = (*EAGER_FORMATS, *FORMATS)
DEFAULT_FORMATS = ("eager", "executorch", "onnx", "coreml")
DEFAULT_PRECISIONS = ("fp32", "int8")
PART_FLOPS = {"step": "total", "encode_context": "context_encoder", "encode_window": "window_encoder",
              "predict": "predictor"}


def parse_choices(text: str | Sequence[str], valid: Sequence[str], what: str) -> tuple[str, ...]:
    """"a,b" (or a list) -> validated tuple, in the given order; ValueError naming the valid choices."""
    items = [s.strip() for s in (text.split(",") if isinstance(text, str) else text) if s.strip()]
    unknown = [s for s in items if s not in valid]
    if unknown or not items:
        raise ValueError(f"unknown {what} {', '.join(unknown) or '(none given)'}; choose from {', '.join(valid)}")
    return tuple(dict.fromkeys(items))


@dataclass
class BenchOptions:
    formats: tuple[str, ...] = DEFAULT_FORMATS
    precisions: tuple[str, ...] = DEFAULT_PRECISIONS
    frames: int | None = None  # clip frames (default: each model's own clip)
    size: int | None = None
    threads: int = 1
    warmup: int = 3
    runs: int = 20
    parts: tuple[str, ...] = PARTS
    fidelity_clips: int = 2  # real clips for the cosine vs fp32 eager (0: none)
    auroc_pairs: int = 1  # matched pairs per violation type for the surprise AUROC (0: none)
    isolate: bool = True  # each cell in its own process (honest peak RSS)
    bundles_dir: Path | None = None  # keep/reuse exported bundles here (None: a temporary directory)
    matmul_size: int = 1024
    runner_options: dict[str, Any] = field(default_factory=dict)  # kwargs of bundle runners (ONNX providers,
    # CoreML compute_units): see edge_jepa.runtime.onnx_runner / coreml_runner
    cell_timeout_s: float | None = None  # isolated cells: fail one that reports no progress for this long

    def __post_init__(self) -> None:
        self.formats = parse_choices(self.formats, BENCH_FORMATS, "format(s)")
        self.precisions = parse_choices(self.precisions, PRECISIONS, "precision(s)")
        self.parts = check_parts(tuple(self.parts))
        for name in ("threads", "runs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup", "fidelity_clips", "auroc_pairs"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


@dataclass
class Reporter:
    """Progress callbacks: a cell starts (label, index, total), a message inside it, a cell ends (row)."""

    cell: Callable[[str, int, int], None] = field(default=lambda label, i, n: None)
    message: Callable[[str], None] = field(default=lambda text: None)
    done: Callable[[BenchRow], None] = field(default=lambda row: None)


@dataclass
class _Cell:
    """A planned cell: the row so far, and how to measure it (spec None: nothing to run, the row is final)."""

    row: BenchRow
    spec: CellSpec | None = None
    export: tuple[str, str] | None = None  # (format, precision) to export before running
    part_gflops: dict[str, float] = field(default_factory=dict)


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} CPUs"


def run_bench(sources: Sequence[str], options: BenchOptions | None = None,
              reporter: Reporter | None = None) -> list[BenchRow]:
    """Benchmark every source on every requested (format, precision); one BenchRow per cell."""
    options = options or BenchOptions()
    reporter = reporter or Reporter()
    if not sources:
        raise ValueError("give at least one model source or bundle directory")
    tmp = Path(tempfile.mkdtemp(prefix="edge-jepa-bench-"))
    bundles_dir = options.bundles_dir or tmp / "bundles"
    try:
        reporter.message(f"measuring fp32 matmul throughput ({options.matmul_size}^3, {options.threads} thread(s))")
        matmul = matmul_throughput(options.threads, options.matmul_size).gflops_per_s
        plans = [_plan_source(s, options, tmp / f"reference-{i}.pt", bundles_dir) for i, s in enumerate(sources)]
        total = sum(len(cells) for _, cells in plans)
        rows, index = [], 0
        for (model, cells) in plans:
            for cell in cells:
                index += 1
                row = cell.row
                reporter.cell(f"{row.model} {row.format}/{row.precision}", index, total)
                if cell.export and row.status == "ok":
                    _export(model, cell, bundles_dir, options.bundles_dir is not None, reporter)
                    if row.status == "ok" and model is not None and model.config.kind == "frame_causal":
                        from edge_jepa.runtime.bundle import read_manifest

                        _stream_fidelity(row, read_manifest(cell.spec.source))
                if cell.spec is not None and row.status == "ok":
                    _measure(cell, options, reporter)
                _add_flops(row, cell.part_gflops, matmul)
                rows.append(row)
                reporter.done(row)
        return rows
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------------- planning


def _base_row(config: ModelConfig, source: str, fmt: str, precision: str, options: BenchOptions,
              flops: FlopCount) -> BenchRow:
    c = config.clip
    row = BenchRow(format=fmt, precision=precision, model=config.name, source=source, frames=c.frames, size=c.size,
                   tokens=ClipLayout.of(config).num_tokens, threads=options.threads, runs=options.runs,
                   warmup=options.warmup, gflops=flops.total / 1e9, device=machine_description())
    if not options.isolate:
        row.notes = "measured in-process: peak RSS is the whole process's"
    return row


def _plan_source(source: str, options: BenchOptions, reference: Path,
                 bundles_dir: Path) -> tuple[VJEPA2 | None, list[_Cell]]:
    if is_bundle(source):
        return None, [_plan_bundle(source, options, reference)]
    needs_weights = options.fidelity_clips > 0 or any(f not in EAGER_FORMATS for f in options.formats)
    if is_geometry(source) and get_config(source).kind == "frame_causal":
        return _plan_frame_causal(load_any(source), source, options)
    if is_geometry(source) and not needs_weights:  # only the config and FLOPs are needed here: no weights
        model = _meta_geometry(source, options.frames, options.size)
    else:
        any_kind = load_any(source)
        if any_kind.config.kind == "frame_causal":
            return _plan_frame_causal(any_kind, source, options)
        model = load_model(source).at_clip(options.frames, options.size)
    flops = model.flops()
    ref = write_reference(model, options.fidelity_clips, reference) if options.fidelity_clips else None
    cells = []
    for fmt in options.formats:
        for precision in options.precisions:
            row = _base_row(model.config, describe(source), fmt, precision, options, flops)
            spec = CellSpec(fmt, precision, source, options.frames, options.size, options.threads, options.warmup,
                            options.runs, options.parts, ref, options.auroc_pairs,
                            {} if fmt in EAGER_FORMATS else options.runner_options)
            if fmt in EAGER_FORMATS:
                cells.append(_Cell(row, spec, None, part_gflops(flops)))
                continue
            f = FORMATS[fmt]
            if precision not in f.precisions:
                _skip(row, f"{fmt} has no {precision} (its precisions: {', '.join(f.precisions)})")
            elif reason := (f.export_unavailable() or f.run_unavailable()):
                _skip(row, f"{reason}; not exported")
            cells.append(_Cell(row, spec, (fmt, precision), part_gflops(flops)))
    return model, cells


def _plan_frame_causal(model: Any, source: str, options: BenchOptions) -> tuple[Any, list[_Cell]]:
    """A frame-causal model: one part, "step" (one stream update, KV cache of window - 1 frames). Eager fp32 times
    `CausalPredictor.step`; each bundle format exports the stream step (its cosines come from the export's
    verification against the eager KV step, as for a frame-causal bundle)."""
    if options.frames or options.size:
        raise ValueError(f"{source} is a frame-causal model ({model.config.name}): its stream step has the model's "
                         "frame size and window; omit --frames/--size for it")
    gflops = model.flops_per_update()["kv"] / 1e9
    gh, gw = model.token_grid()
    note = (f"frame-causal stream step ({model.config.clip.fps:g} fps, KV cache of {model.window - 1} frames): one "
            "update per frame" + ("" if options.isolate else "; measured in-process"))
    cells = []
    for fmt in options.formats:
        for precision in options.precisions:
            row = BenchRow(format=fmt, precision=precision, model=model.config.name, source=describe(source),
                           frames=model.window, size=model.config.clip.size, tokens=gh * gw,
                           threads=options.threads, runs=options.runs, warmup=options.warmup, gflops=gflops,
                           device=machine_description(), notes=note)
            spec = CellSpec(fmt, precision, source, None, None, options.threads, options.warmup, options.runs,
                            ("step",), None, 0, {} if fmt in EAGER_FORMATS else options.runner_options)
            if fmt in EAGER_FORMATS:
                if (fmt, precision) != ("eager", "fp32"):
                    _skip(row, f"{fmt} {precision} of a frame-causal model is not measured (eager fp32 is its "
                               "reference; its int8 stream step runs in the executorch and onnx cells)")
                else:
                    row.cosine_from = "the fp32 eager KV step is the reference"
                cells.append(_Cell(row, spec, None, {"step": gflops}))
                continue
            f = FORMATS[fmt]
            if reason := (f.stream_unavailable(precision) or f.export_unavailable() or f.run_unavailable()):
                _skip(row, f"{reason}; not exported")
            cells.append(_Cell(row, spec, (fmt, precision), {"step": gflops}))
    return model, cells


def _meta_geometry(name: str, frames: int | None, size: int | None) -> VJEPA2:
    """A weightless (meta device) model of a registered geometry at the clip: config and FLOPs only."""
    with torch.device("meta"):
        model = VJEPA2(get_config(name))
    return model.at_clip(frames, size)


def _plan_bundle(path: str, options: BenchOptions, reference: Path) -> _Cell:
    from edge_jepa.formats import get_format
    from edge_jepa.runtime.bundle import read_manifest

    manifest = read_manifest(path)
    config = ModelConfig.from_dict(manifest["model"]["config"])
    if manifest["kind"] == "frame_causal":
        return _plan_stream_bundle(path, manifest, config, options)
    c = config.clip
    if (options.frames and options.frames != c.frames) or (options.size and options.size != c.size):
        raise ValueError(f"bundle {path} is exported for {c.frames} frames x {c.size} px; "
                         f"--frames/--size {options.frames}x{options.size} do not match (omit them for bundles)")
    with torch.device("meta"):
        flops = VJEPA2(config).flops()
    row = _base_row(config, str(path), manifest["format"], manifest["precision"], options, flops)
    row.size_mb = manifest.get("total_bytes", 0) / 1e6 or None
    ref = None
    if options.fidelity_clips:
        ref, note = _bundle_reference(manifest, config, options.fidelity_clips, reference)
        if ref is None:
            _manifest_fidelity(row, manifest, note)
    spec = CellSpec(row.format, row.precision, str(path), None, None, options.threads, options.warmup, options.runs,
                    options.parts, ref, options.auroc_pairs, options.runner_options)
    reason = get_format(manifest["format"]).run_unavailable()
    if reason:
        _skip(row, reason)
    return _Cell(row, spec, None, part_gflops(flops))


def _plan_stream_bundle(path: str, manifest: dict[str, Any], config: ModelConfig, options: BenchOptions) -> _Cell:
    """A frame-causal bundle: its one part, "step", is one stream_step call with a full KV cache (steady state);
    the cosines come from the manifest (verified against the eager KV step at export)."""
    from edge_jepa.formats import get_format

    if options.frames or options.size:
        raise ValueError(f"bundle {path} is a frame-causal stream step for {config.clip.size} px frames; "
                         "omit --frames/--size for it")
    stream = manifest["stream"]
    gflops = stream["flops_per_update"] / 1e9
    row = BenchRow(format=manifest["format"], precision=manifest["precision"], model=config.name, source=str(path),
                   frames=stream["window"], size=config.clip.size, tokens=stream["tokens_per_frame"],
                   threads=options.threads, runs=options.runs, warmup=options.warmup, gflops=gflops,
                   device=machine_description())
    row.notes = (f"frame-causal stream step ({stream['fps']:g} fps, KV cache of {stream['window'] - 1} frames): one "
                 "update per frame" + ("" if options.isolate else "; measured in-process"))
    _stream_fidelity(row, manifest)
    spec = CellSpec(row.format, row.precision, str(path), None, None, options.threads, options.warmup, options.runs,
                    ("step",), None, 0, options.runner_options)
    reason = get_format(manifest["format"]).run_unavailable()
    if reason:
        _skip(row, reason)
    return _Cell(row, spec, None, {"step": gflops})


def _stream_fidelity(row: BenchRow, manifest: dict[str, Any]) -> None:
    """A stream bundle's size and cosines vs the eager KV step, as verified at export (from its manifest)."""
    row.size_mb = manifest.get("total_bytes", 0) / 1e6 or None
    fid = manifest.get("fidelity", {})
    if fid.get("verified"):
        row.cosine_parts = {"tokens": fid["tokens"]["cosine"], "predicted": fid["predicted"]["cosine"]}
        row.cosine = min(row.cosine_parts.values())
        row.cosine_from = "manifest (stream step vs the eager KV step at export)"
    else:
        row.cosine_from = "not measured: the manifest has no verified fidelity"


def part_gflops(flops: FlopCount) -> dict[str, float]:
    return {p: getattr(flops, attr) / 1e9 for p, attr in PART_FLOPS.items()}


def _bundle_reference(manifest: dict[str, Any], config: ModelConfig, clips: int,
                      reference: Path) -> tuple[str | None, str]:
    """fp32 eager reference of a bundle from the model it was exported from, when that source loads here."""
    source = manifest["model"].get("source", "")
    try:
        model = load_model(source).at_clip(config.clip.frames, config.clip.size)
    except Exception as e:  # noqa: BLE001 - any failure means: no eager reference here
        return None, f"the bundle's source {source!r} does not load here ({type(e).__name__})"
    if model.config.to_dict()["encoder"] != config.to_dict()["encoder"]:
        return None, f"the bundle's source {source!r} is not the model it was exported from"
    return write_reference(model, clips, reference), ""


def _manifest_fidelity(row: BenchRow, manifest: dict[str, Any], note: str) -> None:
    fid = manifest.get("fidelity", {})
    if fid.get("verified"):
        parts = {m: fid[m]["cosine"] for m in ("encode_context", "encode_window", "predict") if m in fid}
        row.cosine = min(parts.values())
        row.cosine_parts = parts
        row.cosine_from = f"manifest (each graph vs fp32 eager at export): {note}"
    else:
        row.cosine_from = f"not measured: {note}; the manifest has no verified fidelity"


def write_reference(model: VJEPA2, clips: int, path: Path) -> str:
    """Real clips (held-out synthetic scenes) and the fp32 eager outputs on them, for the cells' cosines."""
    from edge_jepa.quantize import VERIFICATION_SEED_BASE, calibration_clips
    from edge_jepa.runtime.base import EagerRunner

    inputs = calibration_clips(model.config, clips, seed_base=VERIFICATION_SEED_BASE)
    runner = EagerRunner(model)
    outputs = []
    for clip in inputs:
        out = runner.run(clip)
        outputs.append((out.context_tokens, out.window_tokens, out.predicted))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"clips": inputs, "outputs": outputs}, path)
    return str(path)


def _skip(row: BenchRow, reason: str) -> None:
    row.status, row.reason = "skipped", reason


def _fail(row: BenchRow, reason: str) -> None:
    row.status, row.reason = "failed", reason


# --------------------------------------------------------------------------------------------- running


def _export(model: VJEPA2 | None, cell: _Cell, bundles_dir: Path, keep: bool, reporter: Reporter) -> None:
    from edge_jepa.export.bundle import ExportError, export_bundle

    fmt, precision = cell.export
    assert model is not None and cell.spec is not None
    out = bundles_dir / f"{model.config.name}-{weights_digest(model)}" / f"{fmt}-{precision}"
    if not _reusable(out, fmt, precision):
        reporter.message(f"exporting {fmt} {precision}")
        try:
            export_bundle(model, fmt, precision, out=out, progress=reporter.message)
        except (ExportError, ValueError, RuntimeError) as e:
            _fail(cell.row, f"export failed: {e}")
            return
    cell.spec.source = str(out)
    if keep:
        cell.row.extra["bundle"] = str(out)


def _reusable(path: Path, fmt: str, precision: str) -> bool:
    from edge_jepa.runtime.bundle import BundleError, read_manifest

    if not is_bundle(path):
        return False
    try:
        manifest = read_manifest(path)
    except BundleError:
        return False
    return manifest["format"] == fmt and manifest["precision"] == precision


def _measure(cell: _Cell, options: BenchOptions, reporter: Reporter) -> None:
    assert cell.spec is not None
    try:
        if options.isolate:
            measured = run_cell_isolated(cell.spec, reporter.message, options.cell_timeout_s)
        else:
            with torch_threads(options.threads):
                measured = run_cell(cell.spec, reporter.message)
    except (CellError, RuntimeError, ValueError) as e:
        _fail(cell.row, first_line(e))
        return
    row = cell.row
    for key, value in measured.items():
        setattr(row, key, value)


def first_line(e: BaseException) -> str:
    """The first non-empty line of an error message (or the error's type)."""
    return next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)


def _add_flops(row: BenchRow, gflops: dict[str, float], matmul: float) -> None:
    """Achieved GFLOP/s at p50 of the step and of each part, and its fraction of the measured matmul."""
    row.matmul_gflops_per_s = matmul
    for name, t in row.parts.items():
        g = gflops.get(name)
        if g is not None and t.get("p50_ms"):
            t["gflops"] = g
            t["gflops_per_s"] = g / (t["p50_ms"] / 1e3)
            t["matmul_fraction"] = t["gflops_per_s"] / matmul
    if row.gflops is not None and row.p50_ms:
        row.gflops_per_s = row.gflops / (row.p50_ms / 1e3)
        row.matmul_fraction = row.gflops_per_s / matmul
