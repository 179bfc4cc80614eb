"""`edge-jepa pretrain` and `edge-jepa fit`: self-supervised V-JEPA training with progress and resume."""

from __future__ import annotations

import contextlib
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from edge_jepa.cli.app import app, console, fail
from edge_jepa.cli.errors import positive

if TYPE_CHECKING:
    from edge_jepa.train.api import TrainingRun
    from edge_jepa.train.pretrain import PretrainConfig


def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console)


def _share_done(step: int, seconds: float, cfg: PretrainConfig) -> float:
    """How much of the run is done: of its steps, or of its time budget when that ends it sooner."""
    share = step / cfg.steps
    if cfg.max_minutes:
        share = max(share, seconds / (cfg.max_minutes * 60))
    return min(1.0, share)


def command_line() -> str:
    """The command being run, for model cards."""
    return "edge-jepa " + " ".join(shlex.quote(a) for a in sys.argv[1:])


class TrainingBar:
    """The callbacks of edge_jepa.train.api for one progress display: `on_start(trainer)`, `on_step(step, loss)`,
    and `on_stage(stage, done, total)` for the work around training (decoding, checks)."""

    def __init__(self, progress: Progress, label: str):
        self.progress, self.label = progress, label
        self.trainer = None
        self.loss: float | None = None
        self.task = None
        self.stages: dict[str, object] = {}

    def on_start(self, trainer) -> None:
        self.trainer, cfg = trainer, trainer.cfg
        if trainer.step:
            console.print(f"resuming {trainer.out / _checkpoint()} at step {trainer.step}/{cfg.steps}")
        model = trainer.model
        console.print(f"training {model.config.name} ({model.num_params() / 1e6:.2f} M params) on "
                      f"{trainer.source.describe()}")
        budget = f" ({cfg.max_minutes:g} min or {cfg.steps} steps, whichever first)" if cfg.max_minutes else ""
        self.task = self.progress.add_task(self.label + budget, total=1.0, info=self._info(trainer.step),
                                           completed=_share_done(trainer.step, trainer.seconds, cfg))

    def _info(self, step: int) -> str:
        loss = "" if self.loss is None else f" loss {self.loss:.4f}"
        return f"step {step}/{self.trainer.cfg.steps}{loss}"

    def on_step(self, step: int, loss: float) -> None:
        self.loss = loss if self.loss is None else 0.95 * self.loss + 0.05 * loss
        self.progress.update(self.task, completed=_share_done(step, self.trainer.seconds, self.trainer.cfg),
                             info=self._info(step))

    def on_stage(self, stage: str, done: float, total: float | None) -> None:
        unit = "s of video" if stage == "decode" else "frames"
        if stage not in self.stages:
            self.stages[stage] = self.progress.add_task(stage, total=total, info="")
        shown = f"{done:.0f}/{total:.0f} {unit}" if total else f"{done:.0f} {unit}"
        self.progress.update(self.stages[stage], completed=done, total=max(total or 0, done) or None, info=shown)


def _checkpoint() -> str:
    from edge_jepa.train.common import CHECKPOINT

    return CHECKPOINT


@contextlib.contextmanager
def training_progress(label: str = "pretrain") -> Iterator[TrainingBar]:
    """A TrainingBar: the resume line, a progress bar with loss and ETA (and any stages), and on Ctrl-C the
    checkpoint message; library errors become one-line CLI errors."""
    from edge_jepa.io import CheckpointWriteError
    from edge_jepa.video import VideoError

    errors = (FileNotFoundError, FileExistsError, ValueError, KeyError, FloatingPointError, VideoError,
              CheckpointWriteError)
    with _progress() as progress:
        bar = TrainingBar(progress, label)
        try:
            yield bar
        except KeyboardInterrupt:
            progress.stop()
            trainer = bar.trainer
            if trainer is None:
                raise
            console.print(f"[yellow]interrupted at step {trainer.step}; checkpoint saved to "
                          f"{trainer.out / _checkpoint()}; rerun the same command with --resume to continue")
            raise typer.Exit(130) from None
        except errors as e:
            raise fail(str(e)) from None


def print_done(run: TrainingRun) -> None:
    result, card = run.result, run.card
    first = sum(result.losses[:20]) / max(1, len(result.losses[:20]))
    console.print(f"done: {result.steps_done} steps in {result.seconds / 60:.1f} min, loss {first:.4f} -> "
                  f"{card['training']['final_loss']:.4f}" + (" (time budget reached)" if result.stopped_early else ""))
    console.print(f"model: {run.model_dir}   loss log: {run.loss_log}")


_MODEL_HELP = ("a config name (vit_pico, vit_mini, ...: fresh weights) or a model to continue (dir, .pt, 'default', "
               "'window')")


@app.command()
def pretrain(
    out: Path = typer.Option(..., "--out", help="run directory (checkpoint, loss log, final model in OUT/model)"),
    model: str = typer.Option("vit_pico", "--model", help=_MODEL_HELP),
    data: str = typer.Option("synthetic", "--data", help="'synthetic', a video file or folder, or 'synthetic+PATH'"),
    steps: int = typer.Option(3000, min=1, help="optimizer steps"),
    batch_size: int = typer.Option(32, min=1, help="clips per step"),
    lr: float = typer.Option(1e-3, callback=positive, help="peak learning rate (AdamW, warm-up then cosine)"),
    seed: int = typer.Option(0, min=0, help="seed for weights, data and masks"),
    minutes: float = typer.Option(None, callback=positive, help="stop and save when this much time is spent"),
    resume: bool = typer.Option(False, "--resume", help="continue the checkpoint in --out"),
    frames: int = typer.Option(None, min=1, help="clip frames (default: the model's)"),
    size: int = typer.Option(None, min=1, help="clip size in px (default: the model's)"),
    fps: float = typer.Option(None, callback=positive, help="model frame rate (default: the model's)"),
    context_frames: int = typer.Option(None, min=1, help="context frames of the surprise layout"),
    tubelet: int = typer.Option(None, min=1,
                                help="frames per temporal token, fresh configs only (default: the config's)"),
    preprocess: str = typer.Option(None, help="'resize' (whole view) or 'center_crop' (the release)"),
    checkpoint_every: int = typer.Option(100, min=1, help="steps between checkpoints"),
    threads: int = typer.Option(None, min=1, help="torch CPU threads (default: torch's choice)"),
    future_prob: float = typer.Option(0.75, min=0.0, max=1.0,
                                      help="share of steps with a future mask (the rest: multi-block)"),
    rates: str = typer.Option("10,15,30", help="frame-causal models: frame rates to train at (comma-separated)"),
    rollout: int = typer.Option(0, min=0, help="frame-causal models: autoregressive steps scored per clip"),
    sigreg: float = typer.Option(0.0, min=0.0, help="frame-causal models: SIGReg weight (> 0 replaces the EMA)"),
    change_floor: float = typer.Option(0.1, min=0.0, help="frame-causal models: loss weight floor of static "
                                       "tokens (weights follow each token's change); --plain-loss for none"),
    plain_loss: bool = typer.Option(False, "--plain-loss", help="frame-causal models: unweighted L1"),
    clip_frames: int = typer.Option(None, min=2, help="frame-causal models: training clip length (default: the "
                                    "window; longer clips train the sliding window a stream runs)"),
    device: str = typer.Option("auto", help="'auto' (CUDA when available), 'cpu' or 'cuda'; under torchrun each "
                               "rank takes its LOCAL_RANK's GPU"),
    amp: bool = typer.Option(False, "--amp", help="mixed precision: bfloat16 autocast of the forward passes"),
) -> None:
    """Self-supervised V-JEPA training on the synthetic world and/or your videos."""
    from edge_jepa.train.api import pretrain as pretrain_model
    from edge_jepa.train.pretrain import PretrainConfig
    from edge_jepa.train.world import WorldTraining, parse_rates

    cfg = PretrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed, max_minutes=minutes,
                         checkpoint_every=checkpoint_every, warmup=min(200, max(1, steps // 10)), threads=threads,
                         future_prob=future_prob, amp=amp)
    with training_progress() as bar:
        world = WorldTraining(parse_rates(rates), clip_frames, rollout=rollout, sigreg=sigreg,
                              change_floor=None if plain_loss else change_floor)
        run = pretrain_model(model, data, out, cfg, resume=resume, tubelet=tubelet, command=command_line(),
                             on_start=bar.on_start, on_step=bar.on_step, world=world, device=device, frames=frames,
                             size=size, fps=fps,
                             context_frames=context_frames, preprocess=preprocess)
    print_done(run)
