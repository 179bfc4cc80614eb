"""`edge-jepa info` and `edge-jepa convert`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from edge_jepa.cli.app import app, console, fail


def load_or_exit(source: str):
    """edge_jepa.load with errors turned into a clean CLI message."""
    import edge_jepa

    try:
        return edge_jepa.load(source)
    except (FileNotFoundError, ValueError) as e:
        raise fail(str(e)) from None


@app.command()
def info(
    source: str = typer.Argument("default", help="'default' (= 'world', frame-causal), 'window', an official .pt, a "
                                 "Hugging Face dir or an edge-jepa dir"),
    frames: int = typer.Option(None, "--frames", "-T", min=1, help="clip frames (default: the model's clip)"),
    size: int = typer.Option(None, "--size", "-S", min=1, help="clip height = width in pixels (default: the model's)"),
) -> None:
    """Size, parameter counts, token count and GFLOPs of a model on a clip."""
    model = load_or_exit(source)
    cfg = model.config
    if cfg.kind == "frame_causal":
        if frames or size:
            raise fail(f"{source} is a frame-causal model: its frames are {cfg.clip.size} px and its window "
                       f"{cfg.clip.frames} frames; drop --frames/--size")
        console.print(_frame_causal_table(source, model))
        return
    frames, size = frames or cfg.clip.frames, size or cfg.clip.size
    try:
        grid = model.token_grid(frames, size)
        flops = model.flops(frames, size)
    except ValueError as e:
        raise fail(str(e)) from None
    e, p = cfg.encoder, cfg.predictor
    table = Table(title=f"{source}: {cfg.name}", show_header=False)
    table.add_row("encoder", f"{model.num_params('encoder') / 1e6:.2f} M params  ({e.width} wide, {e.depth} blocks, "
                  f"{e.heads} heads, patch {e.tubelet_size}x{e.patch_size}x{e.patch_size})")
    table.add_row("predictor", f"{model.num_params('predictor') / 1e6:.2f} M params  ({p.width} wide, {p.depth} "
                  f"blocks, {p.heads} heads, {p.num_mask_tokens} mask tokens)")
    table.add_row("clip", f"{frames} frames x {size}x{size} px  (model clip: {cfg.clip.frames} frames at "
                  f"{cfg.clip.fps:g} fps, {cfg.clip.context_frames} context)")
    table.add_row("tokens", f"{grid[0] * grid[1] * grid[2]}  (grid {grid[0]} x {grid[1]} x {grid[2]})")
    table.add_row("GFLOPs", f"encoder {flops.window_encoder / 1e9:.3f} on the clip; surprise step "
                  f"{flops.total / 1e9:.3f} (context encoder {flops.context_encoder / 1e9:.3f} + window "
                  f"encoder {flops.window_encoder / 1e9:.3f} + predictor {flops.predictor / 1e9:.3f})")
    console.print(table)


def _frame_causal_table(source: str, model) -> Table:
    cfg, e, p = model.config, model.config.encoder, model.config.predictor
    gh, gw = model.token_grid()
    flops = model.flops_per_update()
    table = Table(title=f"{source}: {cfg.name} (frame-causal)", show_header=False)
    table.add_row("encoder", f"{model.num_params('encoder') / 1e6:.2f} M params  ({e.width} wide, {e.depth} blocks, "
                  f"{e.heads} heads, one frame at a time, patch {e.patch_size}x{e.patch_size})")
    table.add_row("predictor", f"{model.num_params('predictor') / 1e6:.2f} M params  ({p.width} wide, {p.depth} "
                  f"blocks, {p.heads} heads, block-causal over {cfg.clip.frames} frames"
                  f"{', residual' if p.residual else ''})")
    table.add_row("frames", f"{cfg.clip.size}x{cfg.clip.size} px, any rate (trained at {cfg.clip.fps:g} fps nominal); "
                  f"each frame predicted from the {cfg.clip.frames - 1} before it")
    table.add_row("tokens", f"{gh * gw} per frame  (grid {gh} x {gw})")
    table.add_row("GFLOPs", f"per stream update: {flops['kv'] / 1e9:.3f} with the KV step (encoder "
                  f"{flops['encoder'] / 1e9:.3f} + predictor {flops['predictor_kv'] / 1e9:.3f}), "
                  f"{flops['rerun'] / 1e9:.3f} with the rerun step")
    return table


@app.command()
def convert(
    source: str = typer.Argument(..., help="an official .pt, a Hugging Face dir, an edge-jepa dir or an embedded "
                                 "model ('default' = 'world', 'window')"),
    out_dir: Path = typer.Argument(..., help="directory to write (model.safetensors + edge_jepa.json); an existing "
                                   "one is replaced only if it is an edge-jepa model or bundle"),
    force: bool = typer.Option(False, "--force", help="replace OUT_DIR even if it is not an edge-jepa model/bundle"),
) -> None:
    """Convert any supported checkpoint to the edge-jepa format."""
    from edge_jepa.outputs import check_replaceable

    check_replaceable(out_dir, what="model directory", force=force)
    model = load_or_exit(source)
    model.save(out_dir, force=force)
    console.print(f"wrote {out_dir} ({model.config.name}, {model.num_params() / 1e6:.2f} M params)")
