"""`edge-jepa pretrain` and `edge-jepa fit`: self-supervised V-JEPA training with progress and resume."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from edge_jepa.cli.app import app, console, fail

if TYPE_CHECKING:
    from edge_jepa.train.pretrain import PretrainConfig


def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                    TextColumn("step {task.fields[step]}/{task.fields[steps]}"),
                    TextColumn("loss {task.fields[loss]:.4f}"), TimeElapsedColumn(), TextColumn("ETA"),
                    TimeRemainingColumn(), console=console)


def _share_done(step: int, seconds: float, cfg: PretrainConfig) -> float:
    """How much of the run is done: of its steps, or of its time budget when that ends it sooner."""
    share = step / cfg.steps
    if cfg.max_minutes:
        share = max(share, seconds / (cfg.max_minutes * 60))
    return min(1.0, share)


def build_model(model: str, *, frames: int | None, size: int | None, fps: float | None,
                context_frames: int | None, preprocess: str | None, seed: int, tubelet: int | None = None):
    """A registered config name (fresh weights) or anything edge_jepa.load takes, with clip overrides.

    `tubelet` (frames per temporal token) changes the weights' shapes, so it applies to fresh configs only.
    """
    import edge_jepa
    from edge_jepa.models.config import CONFIGS

    clip = {k: v for k, v in dict(frames=frames, size=size, fps=fps, context_frames=context_frames,
                                  preprocess=preprocess).items() if v is not None}
    try:
        if model in CONFIGS:
            encoder = {"tubelet_size": tubelet} if tubelet is not None else {}
            cfg = CONFIGS[model].replace(clip=clip, encoder=encoder)
            return edge_jepa.create(cfg, seed=seed), f"fresh {model}"
        loaded = edge_jepa.load(model)
    except (FileNotFoundError, ValueError, KeyError) as e:
        raise fail(str(e)) from None
    if tubelet is not None and tubelet != loaded.config.encoder.tubelet_size:
        raise fail(f"--tubelet {tubelet}: {model} has trained weights with tubelets of "
                   f"{loaded.config.encoder.tubelet_size} frames; a new tubelet size needs a fresh config "
                   f"(--model {', '.join(CONFIGS)})")
    if clip:
        clip.setdefault("context_frames", loaded.config.clip.context_frames)  # the same context unless given
        try:
            loaded = loaded.at_clip(**clip)
        except ValueError as e:
            raise fail(str(e)) from None
    return loaded, f"continued from {model}"


def run_training(model, source, out: Path, cfg, *, resume: bool, data_desc: str, base_card: dict) -> Path:
    """Train with a progress bar; save `out/model` (edge-jepa format with card.json); Ctrl-C keeps a checkpoint."""
    from edge_jepa.io import CheckpointWriteError
    from edge_jepa.train.pretrain import CHECKPOINT, Trainer

    trainer = Trainer(model, source, out, cfg, base_card=base_card)
    if (out / CHECKPOINT).exists() and not resume:
        raise fail(f"{out / CHECKPOINT} exists: pass --resume to continue it, or choose another --out")
    if resume and trainer.load_checkpoint():
        console.print(f"resuming {out / CHECKPOINT} at step {trainer.step}/{cfg.steps}")
    console.print(f"training {model.config.name} ({model.num_params() / 1e6:.2f} M params) on {data_desc}")
    with _progress() as progress:
        budget = f" ({cfg.max_minutes:g} min budget)" if cfg.max_minutes else ""
        task = progress.add_task("pretrain" + budget, total=1.0, loss=float("nan"), step=trainer.step,
                                 steps=cfg.steps, completed=_share_done(trainer.step, trainer.seconds, cfg))
        ema = {"loss": None}

        def on_step(step: int, loss: float) -> None:
            ema["loss"] = loss if ema["loss"] is None else 0.95 * ema["loss"] + 0.05 * loss
            progress.update(task, completed=_share_done(step, trainer.seconds, cfg), loss=ema["loss"], step=step)

        try:
            result = trainer.run(on_step)
        except KeyboardInterrupt:
            progress.stop()
            console.print(f"[yellow]interrupted at step {trainer.step}; checkpoint saved to {out / CHECKPOINT}; "
                          "rerun the same command with --resume to continue")
            raise typer.Exit(130) from None
        except (FloatingPointError, CheckpointWriteError) as e:
            raise fail(str(e)) from None
    command = "edge-jepa " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    card = trainer.card(result, command, data_desc)
    result.model.save(out / "model", card=card)
    first = sum(result.losses[:20]) / max(1, len(result.losses[:20]))
    console.print(f"done: {result.steps_done} steps in {result.seconds / 60:.1f} min, loss {first:.4f} -> "
                  f"{card['training']['final_loss']:.4f}" + (" (time budget reached)" if result.stopped_early else ""))
    console.print(f"model: {out / 'model'}   loss log: {out / 'loss.jsonl'}")
    return out / "model"


_MODEL_HELP = "a config name (vit_pico, vit_mini, ...: fresh weights) or a model to continue (dir, .pt, 'default')"


@app.command()
def pretrain(
    out: Path = typer.Option(..., "--out", help="run directory (checkpoint, loss log, final model in OUT/model)"),
    model: str = typer.Option("vit_pico", "--model", help=_MODEL_HELP),
    data: str = typer.Option("synthetic", "--data", help="'synthetic', a video file or folder, or 'synthetic+PATH'"),
    steps: int = typer.Option(3000, help="optimizer steps"),
    batch_size: int = typer.Option(32, help="clips per step"),
    lr: float = typer.Option(1e-3, help="peak learning rate (AdamW, warm-up then cosine)"),
    seed: int = typer.Option(0, help="seed for weights, data and masks"),
    minutes: float = typer.Option(None, help="stop and save when this much time is spent"),
    resume: bool = typer.Option(False, "--resume", help="continue the checkpoint in --out"),
    frames: int = typer.Option(None, help="clip frames (default: the model's)"),
    size: int = typer.Option(None, help="clip size in px (default: the model's)"),
    fps: float = typer.Option(None, help="model frame rate (default: the model's)"),
    context_frames: int = typer.Option(None, help="context frames of the surprise layout"),
    tubelet: int = typer.Option(None, help="frames per temporal token, fresh configs only (default: the config's)"),
    preprocess: str = typer.Option(None, help="'resize' (whole view) or 'center_crop' (the release)"),
    checkpoint_every: int = typer.Option(100, help="steps between checkpoints"),
    threads: int = typer.Option(None, help="torch CPU threads (default: torch's choice)"),
    future_prob: float = typer.Option(0.75, help="share of steps with a future mask (the rest: multi-block)"),
) -> None:
    """Self-supervised V-JEPA training on the synthetic world and/or your videos."""
    from edge_jepa.train.data import make_source
    from edge_jepa.train.pretrain import PretrainConfig
    from edge_jepa.video import VideoError

    net, origin = build_model(model, frames=frames, size=size, fps=fps, context_frames=context_frames,
                              preprocess=preprocess, seed=seed, tubelet=tubelet)
    try:
        source = make_source(data, net.config.clip, seed)
    except (VideoError, ValueError) as e:
        raise fail(str(e)) from None
    cfg = PretrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed, max_minutes=minutes,
                         checkpoint_every=checkpoint_every, warmup=min(200, max(1, steps // 10)), threads=threads,
                         future_prob=future_prob,
                         extra={"model": origin})
    run_training(net, source, out, cfg, resume=resume, data_desc=source.describe(), base_card={})
