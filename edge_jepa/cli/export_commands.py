"""`edge-jepa export` (verified ExecuTorch / CoreML / ONNX bundles) and `edge-jepa quantize-report`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer
from rich.table import Table

from edge_jepa.cli.app import app, console, fail
from edge_jepa.cli.errors import positive
from edge_jepa.toolkits import quiet_toolkits


def _formats_help() -> str:
    from edge_jepa.formats import FORMATS

    return "; ".join(f"{f.name} ({', '.join(f.precisions)})" for f in FORMATS.values())


@app.command("export")
def export_command(
    source: str = typer.Argument(..., help="'default' (= 'world', frame-causal), 'window', an official .pt, a Hugging "
                                 "Face dir or an edge-jepa dir"),
    format: str = typer.Option(..., "--format", "-f", help="executorch | executorch-coreml | onnx | coreml"),
    quant: str = typer.Option("fp32", "--quant", "-q", help="fp32 | fp16 | int8 | int4 (what the format supports)"),
    out: Path = typer.Option(..., "--out", "-o", help="bundle directory to write (replaced atomically if it is a "
                             "bundle or model; anything else is refused unless --force)"),
    frames: int = typer.Option(None, "--frames", "-T", min=1, help="clip frames (default: the model's)"),
    size: int = typer.Option(None, "--size", "-S", min=1, help="clip height = width in pixels (default: the model's)"),
    context_frames: int = typer.Option(None, "--context-frames", min=1, help="context frames (default: model's share)"),
    int8_activations: str = typer.Option("dynamic", help="ExecuTorch int8: dynamic (per token) or static "
                                         "(per tensor, calibrated on real clips)"),
    calibration_clips: int = typer.Option(8, min=1, help="real clips for static int8 calibration"),
    verify_clips: int = typer.Option(3, min=1, help="real clips for the verification against eager"),
    force: bool = typer.Option(False, "--force", help="replace --out even if it is not an edge-jepa bundle/model"),
    fps: float = typer.Option(None, "--fps", callback=positive,
                              help="frame-causal models: the frame rate the stream step is built for "
                                   "(default: the model's)"),
) -> None:
    """Export a verified bundle: artifacts + manifest.json (formats: see --format). A frame-causal model exports
    its KV-cache stream step (method stream_step)."""
    from edge_jepa.export import ExportError, export_bundle
    from edge_jepa.formats import get_format

    try:
        fmt = get_format(format)
    except ValueError as e:
        raise fail(f"{e} (formats: {_formats_help()})") from None
    with console.status(f"[bold]exporting {source} to {fmt.name} {quant}") as status, quiet_toolkits():
        try:
            path = export_bundle(source, fmt.name, quant, frames=frames, size=size, out=out,
                                 context_frames=context_frames, calibration_clips=calibration_clips,
                                 verify_clips=verify_clips, int8_activations=int8_activations, fps=fps,
                                 progress=lambda message: status.update(f"[bold]{fmt.name} {quant}:[/] {message}"),
                                 force=force)
        except (ExportError, FileNotFoundError, ValueError) as e:
            raise fail(str(e)) from None
    from edge_jepa.formats import MANIFEST

    manifest = json.loads((path / MANIFEST).read_text())
    console.print(bundle_table(path, manifest))


def bundle_table(path: Path, manifest: dict) -> Table:
    """Files, clip, fidelity and delegation of a bundle, for the terminal."""
    clip = manifest["clip"]
    table = Table(title=f"{path}: {manifest['model']['name']} -> {manifest['format']} {manifest['precision']}",
                  show_header=False)
    for name, entry in manifest["files"].items():
        if "/" not in name or name.endswith(("weight.bin", "model.mlmodel")):
            table.add_row(name, f"{entry['bytes'] / 1e6:.2f} MB  sha256 {entry['sha256'][:12]}")
    table.add_row("total", f"{manifest['total_bytes'] / 1e6:.2f} MB")
    fid = manifest["fidelity"]
    if manifest.get("kind") == "frame_causal":
        stream = manifest["stream"]
        table.add_row("stream step", f"{stream['method']}: one {clip['size']} px frame at {stream['fps']:g} fps, "
                                     f"KV cache of {stream['window'] - 1} frames "
                                     f"({stream['flops_per_update'] / 1e9:.3f} GFLOPs)")
    else:
        table.add_row("clip", f"{clip['frames']} frames x {clip['size']} px at {clip['fps']:g} fps, "
                              f"{clip['context_frames']} context")
    if fid.get("verified") and manifest.get("kind") == "frame_causal":
        table.add_row("fidelity", f"[green]verified[/] on {fid['runtime']} over {fid['steps']} stream steps: cosine "
                                  f"vs eager tokens {fid['tokens']['cosine']:.5f}, predicted "
                                  f"{fid['predicted']['cosine']:.5f} (>= {fid['threshold']}); surprise rel. error "
                                  f"{fid['surprise_score_rel_error']:.2e}")
    elif fid.get("verified"):
        cos = ", ".join(f"{m} {fid[m]['cosine']:.5f}" for m in ("encode_context", "encode_window", "predict"))
        table.add_row("fidelity", f"[green]verified[/] on {fid['runtime']}: cosine vs eager {cos} "
                                  f"(>= {fid['threshold']}); surprise rel. error {fid['surprise_score_rel_error']:.2e}")
    else:
        table.add_row("fidelity", f"[yellow]not verified here[/]: {fid['reason']}")
    delegation = manifest.get("export", {}).get("delegation")
    if delegation:
        left = {m: d["non_delegated_ops"] for m, d in delegation.items() if d["non_delegated_ops"]}
        table.add_row("delegation", "[green]every op delegated" if not left else f"[yellow]on portable kernels: {left}")
    return table


@app.command("quantize-report")
def quantize_report(
    source: str = typer.Argument("default", help="model to quantize (anything edge_jepa.load takes: 'default' (= "
                                 "'world', frame-causal), 'window', a model directory)"),
    schemes: str = typer.Option("int8-dynamic,int8-weight,int4-weight,fp16", help="comma-separated eager schemes"),
    bundle: list[Path] = typer.Option(None, "--bundle", help="also measure these export bundles (repeatable; a "
                                      "frame-causal model: its stream-step bundles)"),
    clips: int = typer.Option(4, min=1, help="real clips for the token cosines"),
    pairs_per_type: int = typer.Option(3, min=0, help="matched pairs per violation type for the AUROC (0: skip)"),
    video_seconds: float = typer.Option(12.0, callback=positive,
                                        help="length of the synthetic video for the surprise rank correlation"),
    json_out: Path = typer.Option(None, "--json", help="write the rows here"),
) -> None:
    """Fidelity of each quantization scheme vs fp32: token cosine, surprise rank correlation, AUROC, size. A
    frame-causal model is measured as it streams: frame tokens, next-frame predictions, one stream update."""
    from edge_jepa.checkpoints import load
    from edge_jepa.io import atomic_file, strict_json
    from edge_jepa.outputs import check_writable
    from edge_jepa.quantize import SCHEMES, fidelity_report
    from edge_jepa.runtime import Runner
    from edge_jepa.runtime.stream_step import StreamStepRunner

    if json_out:
        check_writable(json_out)
    chosen = [s.strip() for s in schemes.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SCHEMES]
    if unknown:
        raise fail(f"unknown schemes {unknown}; choose from {', '.join(SCHEMES)}")
    try:
        model = load(source)
        frame_causal = model.config.kind == "frame_causal"
        runners = {str(p): StreamStepRunner.open(p) if frame_causal else Runner.open(p) for p in bundle or []}
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        raise fail(str(e)) from None
    for label, runner in runners.items():
        if frame_causal and runner.config != model.config:
            raise fail(f"bundle {label} holds {runner.config.name}, not {source}'s {model.config.name}; compare the "
                       f"stream-step bundles of {source}")
        if not frame_causal and getattr(runner, "kind", "window") != "window":
            raise fail(f"bundle {label} is the stream step of a frame-causal model; {source} is a window model "
                       f"({model.config.name}): compare bundles of {source}")
        if not frame_causal and runner.config.clip != model.config.clip:
            raise fail(f"bundle {label} was exported for clip {runner.config.clip}, the model uses "
                       f"{model.config.clip}; compare bundles of the model's clip")
    rates = sorted({runner.fps for runner in runners.values()}) if frame_causal else []
    if len(rates) > 1:
        raise fail(f"the bundles were exported for different frame rates ({', '.join(f'{r:g}' for r in rates)} fps); "
                   "compare bundles of one rate (edge-jepa export --fps)")
    with console.status("[bold]measuring") as status, quiet_toolkits():
        rows = fidelity_report(model, chosen, runners=runners, clips=clips, pairs_per_type=pairs_per_type,
                               video_seconds=video_seconds, fps=rates[0] if rates else None,
                               on_step=lambda message: status.update(f"[bold]{message}"))
    if frame_causal:
        fps, scoring = rows[0].extra["fps"], rows[0].extra["scoring"]
        console.print(f"frame tokens / next frame: cosine vs fp32 eager of each frame's tokens and of the prediction "
                      f"of the next frame's tokens on held-out streams at {fps:g} fps (mean, worst token); rho: "
                      "Spearman rank correlation of per-frame surprise with fp32 on the same step (re-run or KV) "
                      f"on a long synthetic video; AUROC: violation-of-expectation on held-out matched pairs "
                      f"({scoring} over tokens); ms: one stream update (a frame encoded and scored, the next one "
                      "predicted), batch 1")
        console.print(_frame_causal_table(model.config.name, rows))
    else:
        console.print("rho: Spearman rank correlation of per-frame surprise with fp32 on a long synthetic video; "
                      "AUROC: violation-of-expectation on held-out matched pairs; ms: surprise step, batch 1")
        console.print(_window_table(model.config.name, rows))
    if json_out:
        with atomic_file(json_out) as tmp:
            tmp.write_text(strict_json([r.to_dict() for r in rows]))


def _window_table(name: str, rows: list) -> Table:
    table = Table(title=f"quantization fidelity of {name} vs fp32 (cosines: context / window / "
                        "predicted tokens, worst token)")
    for col in ("variant", "MB", "cosines", "worst", "rho", "AUROC", "ms"):
        table.add_column(col, justify="left" if col in ("variant", "cosines") else "right", overflow="fold")
    for r in rows:
        table.add_row(r.scheme, "-" if r.size_bytes is None else f"{r.size_bytes / 1e6:.2f}",
                      f"{r.context_cosine:.5f} / {r.window_cosine:.5f} / {r.predicted_cosine:.5f}",
                      f"{r.min_token_cosine:.4f}", f"{r.surprise_spearman:.4f}",
                      "-" if math.isnan(r.surprise_auroc) else f"{r.surprise_auroc:.3f}", f"{r.latency_ms:.1f}")
    return table


def _frame_causal_table(name: str, rows: list) -> Table:
    table = Table(title=f"quantization fidelity of {name} (frame-causal) vs fp32")
    for col in ("variant", "backend, step", "MB", "frame tokens", "next frame", "rho", "AUROC", "ms"):
        table.add_column(col, justify="left" if col in ("variant", "backend, step") else "right", overflow="fold")
    for r in rows:
        table.add_row(r.scheme, r.backend, "-" if r.size_bytes is None else f"{r.size_bytes / 1e6:.2f}",
                      f"{r.frame_tokens_cosine:.5f} ({r.frame_tokens_worst:.4f})",
                      f"{r.next_frame_cosine:.5f} ({r.next_frame_worst:.4f})", f"{r.surprise_spearman:.4f}",
                      "-" if math.isnan(r.surprise_auroc) else f"{r.surprise_auroc:.3f}", f"{r.latency_ms:.2f}")
    return table
