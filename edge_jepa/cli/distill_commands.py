"""`edge-jepa distill` (also `torchrun -m edge_jepa.distill`, the same function): teacher -> small student."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from edge_jepa.cli.app import app, console, fail
from edge_jepa.cli.errors import non_negative, positive


def _progress(enabled: bool) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("{task.fields[rate]:.1f} clips/s"),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console,
                    disable=not enabled)


@app.command()
def distill(
    out: Path = typer.Option(..., "--out", help="run directory: checkpoint, loss log, reports, OUT/student"),
    teacher: str = typer.Option("default", "--teacher", help="teacher: 'default' (= 'world', frame-causal), 'window', "
                                "an official .pt, a Hugging Face or edge-jepa directory"),
    student: str = typer.Option(None, "--student", help="student: a registered config name (vit_nano, vit_tiny, "
                                "...; world_nano for a frame-causal teacher) or a .json ModelConfig file (default: "
                                "world_nano for a frame-causal teacher, vit_nano for a window one)"),
    data: str = typer.Option("synthetic", "--data", help="'synthetic', a video file or folder, or 'synthetic+PATH'"),
    steps: int = typer.Option(2000, min=1, help="optimizer steps"),
    resume: bool = typer.Option(False, "--resume", help="continue the checkpoint in --out"),
    batch_size: int = typer.Option(32, min=1, help="clips per step over all processes"),
    lr: float = typer.Option(1e-3, callback=positive, help="peak learning rate (AdamW, warm-up then cosine)"),
    warmup: int = typer.Option(None, min=0, help="warm-up steps (default: min(100, steps/10))"),
    seed: int = typer.Option(0, min=0, help="seed for the student's weights, data and masks"),
    minutes: float = typer.Option(None, callback=positive,
                                  help="time budget: stop cleanly (checkpoint, report, student) when spent"),
    checkpoint_every: int = typer.Option(200, min=1, help="steps between checkpoints (each with a fidelity report)"),
    threads: int = typer.Option(None, min=1, help="torch CPU threads per process (default: torch's choice)"),
    cache_teacher: bool = typer.Option(False, "--cache-teacher", help="run the teacher once over --cache-batches "
                                       "batches, store its outputs as safetensors shards, train on them"),
    cache_batches: int = typer.Option(200, min=1,
                                      help="global batches in the teacher cache (training cycles over them)"),
    cache_dir: Path = typer.Option(None, help="teacher cache directory (default OUT/teacher_cache)"),
    frames: int = typer.Option(None, min=1, help="student clip frames (default: the student config's)"),
    size: int = typer.Option(None, min=1, help="student clip size in px (default: the student config's)"),
    fps: float = typer.Option(None, callback=positive, help="student frame rate (default: the student config's)"),
    context_frames: int = typer.Option(None, min=1, help="student context frames of the surprise layout"),
    teacher_size: int = typer.Option(None, min=1,
                                     help="teacher frame size (default: max of its clip size and the student's)"),
    frame_stride: int = typer.Option(1, min=1, help="teacher frames per student frame (teacher sees stride x the fps)"),
    align: str = typer.Option("pool", help="teacher tokens onto the student grid: 'pool' or 'interpolate'"),
    w_feature_l1: float = typer.Option(1.0, callback=non_negative,
                                       help="weight: L1 of projected student tokens vs teacher tokens"),
    w_feature_cos: float = typer.Option(1.0, callback=non_negative,
                                        help="weight: 1 - cosine of projected student vs teacher tokens"),
    w_predictor: float = typer.Option(1.0, callback=non_negative,
                                      help="weight: L1 of projected student vs teacher predictor outputs"),
    w_surprise: float = typer.Option(1.0, callback=non_negative,
                                     help="weight: L1 of student vs teacher per-token surprise"),
    w_jepa: float = typer.Option(0.0, callback=non_negative, help="weight: the student's own V-JEPA loss"),
    future_prob: float = typer.Option(0.75, min=0.0, max=1.0,
                                      help="share of batches with a future mask (the rest: multi-block)"),
    report_pairs: int = typer.Option(20, min=0,
                                     help="held-out violation pairs per type in the fidelity report (0: none)"),
    report_clips: int = typer.Option(16, min=1, help="held-out clips for the token cosine"),
    json_out: Path = typer.Option(None, "--json", help="also write the final fidelity report here"),
    rates: str = typer.Option("10,15,30", help="frame-causal models, synthetic data: frame rates drawn per batch"),
    prior_scenes: int = typer.Option(12, min=0, help="frame-causal student: plausible synthetic scenes per rate for "
                                     "its surprise prior (0: none)"),
) -> None:
    """Distil a teacher's encoder and predictor into a small student (data-parallel under torchrun)."""
    from edge_jepa.train import dist

    ctx = dist.setup()
    try:
        _run(ctx, opts=dict(
            out=out, teacher=teacher, student=student, data=data, steps=steps, resume=resume, batch_size=batch_size,
            lr=lr, warmup=warmup, seed=seed, minutes=minutes, checkpoint_every=checkpoint_every, threads=threads,
            cache_teacher=cache_teacher, cache_batches=cache_batches, cache_dir=cache_dir, frames=frames, size=size,
            fps=fps, context_frames=context_frames, teacher_size=teacher_size, frame_stride=frame_stride,
            align=align, weights=dict(feature_l1=w_feature_l1, feature_cos=w_feature_cos, predictor=w_predictor,
                                      surprise=w_surprise, jepa=w_jepa),
            future_prob=future_prob, report_pairs=report_pairs, report_clips=report_clips, json_out=json_out,
            rates=rates, prior_scenes=prior_scenes))
    finally:
        dist.teardown(ctx)


def _run(ctx, opts: dict) -> None:
    """The command body (rank 0 prints; every rank trains). `opts`: the command's options by name."""
    from edge_jepa.checkpoints import CheckpointError
    from edge_jepa.distill import CheckpointWriteError, DistillConfig, DistillError, LossWeights, student_config
    from edge_jepa.distill.api import distill as distill_model
    from edge_jepa.distill.report import table
    from edge_jepa.distill.trainer import CHECKPOINT, LOSS_LOG, REPORT, STUDENT_DIR
    from edge_jepa.io import strict_json
    from edge_jepa.outputs import check_writable
    from edge_jepa.video import VideoError

    a = opts
    out: Path = a["out"]
    check_writable(out, folder=True)
    if a["json_out"]:
        check_writable(a["json_out"])
    say = console.print if ctx.is_main else (lambda *args, **kw: None)
    errors = (DistillError, VideoError, CheckpointError, FileNotFoundError, ValueError, KeyError, FloatingPointError,
              CheckpointWriteError)
    try:
        from edge_jepa.train.world import parse_rates

        cfg = _config(a, DistillConfig, LossWeights)
        cfg.rates, cfg.prior_scenes = parse_rates(a["rates"]), a["prior_scenes"]
        teacher = a["teacher"]
        if a["student"] is None:  # the small student of the teacher's kind (the teacher is loaded once, here)
            import edge_jepa

            teacher = edge_jepa.load(teacher)
            a["student"] = "world_nano" if teacher.config.kind == "frame_causal" else "vit_nano"
        scfg = student_config(a["student"], frames=a["frames"], size=a["size"], fps=a["fps"],
                              context_frames=a["context_frames"])
    except errors as e:
        raise fail(str(e)) from None
    args = sys.argv[1:]  # `edge-jepa distill ...` has the subcommand here, `torchrun -m edge_jepa.distill` not
    command = "edge-jepa distill " + " ".join(shlex.quote(x) for x in (args[1:] if args[:1] == ["distill"] else args))
    with _progress(ctx.is_main) as progress:
        callbacks = _callbacks(progress, say, cfg)
        try:
            result = distill_model(teacher, scfg, a["data"], out, cfg, resume=a["resume"], ctx=ctx,
                                   base_card={"distillation": {"command": command, "teacher_source": a["teacher"]}},
                                   **callbacks)
        except KeyboardInterrupt:
            progress.stop()
            run = callbacks["on_start"].run
            if run is None:
                raise
            say(f"[yellow]interrupted at step {run.step}; checkpoint saved to {out / CHECKPOINT}; rerun the same "
                "command with --resume to continue")
            raise typer.Exit(130) from None
        except errors as e:
            raise fail(str(e)) from None
    if not ctx.is_main:
        return
    if result.report:
        console.print(table(result.report))
        if a["json_out"]:
            a["json_out"].parent.mkdir(parents=True, exist_ok=True)
            a["json_out"].write_text(strict_json(result.report))
    console.print(f"done: {result.steps_done} steps in {result.seconds / 60:.1f} min"
                  + (" (time budget reached)" if result.stopped_early else ""))
    console.print(f"student: {out / STUDENT_DIR}   loss log: {out / LOSS_LOG}   report: {out / REPORT}")


def _config(a: dict, DistillConfig, LossWeights):  # noqa: N803 - the classes, imported lazily by the caller
    return DistillConfig(
        steps=a["steps"], batch_size=a["batch_size"], lr=a["lr"], seed=a["seed"], max_minutes=a["minutes"],
        warmup=a["warmup"] if a["warmup"] is not None else min(100, max(1, a["steps"] // 10)),
        checkpoint_every=a["checkpoint_every"], threads=a["threads"], cache_teacher=a["cache_teacher"],
        cache_batches=a["cache_batches"], cache_dir=str(a["cache_dir"]) if a["cache_dir"] else None,
        teacher_size=a["teacher_size"], frame_stride=a["frame_stride"], align=a["align"],
        weights=LossWeights(**a["weights"]), future_prob=a["future_prob"], report_pairs=a["report_pairs"],
        report_clips=a["report_clips"])


def _callbacks(progress: Progress, say, cfg) -> dict:
    """on_start / on_step / on_cache / on_report for edge_jepa.distill: the set-up lines and the progress bars."""
    from edge_jepa.distill.trainer import CHECKPOINT

    tasks: dict = {}
    ema: dict[str, float | None] = {"loss": None, "rate": None}

    def on_start(run) -> None:
        on_start.run = run
        if run.step:
            say(f"resuming {run.out / CHECKPOINT} at step {run.step}/{cfg.steps}")
        al, teacher, student = run.alignment, run.teacher, run.heads.student
        scfg = student.config
        say(f"teacher {teacher.config.name} ({teacher.num_params() / 1e6:.2f} M params, sees "
            f"{al.teacher_clip.frames}x{al.teacher_clip.size}px, grid {al.teacher_grid}) -> student "
            f"{scfg.name} ({student.num_params() / 1e6:.3f} M, {scfg.clip.frames}x{scfg.clip.size}px, grid "
            f"{al.student_grid}, {'same grid' if al.identity else 'tokens by ' + al.mode}) on {run.source.describe()}"
            + (f"; {run.ctx.world} processes ({run.ctx.backend})" if run.ctx.distributed else ""))
        tasks["distill"] = progress.add_task("distill", total=cfg.steps, completed=run.step, loss=float("nan"),
                                             rate=0.0)

    on_start.run = None

    def on_cache(done: int, total: int) -> None:
        if "cache" not in tasks:
            tasks["cache"] = progress.add_task("teacher cache", total=total, loss=float("nan"), rate=0.0)
        progress.update(tasks["cache"], completed=done)

    def on_step(step: int, loss: float, rate: float) -> None:
        ema["loss"] = loss if ema["loss"] is None else 0.95 * ema["loss"] + 0.05 * loss
        ema["rate"] = rate if ema["rate"] is None else 0.9 * ema["rate"] + 0.1 * rate
        progress.update(tasks["distill"], completed=step, loss=ema["loss"], rate=ema["rate"])

    def on_report(rep: dict) -> None:
        progress.console.print(
            f"step {rep['step']}: token cosine {rep['token_cosine']:.3f}, surprise Spearman "
            f"{rep['surprise_spearman_windows']:.3f}, AUROC student {rep['student_auroc']:.3f} / teacher "
            f"{rep['teacher_auroc']:.3f}")

    return {"on_start": on_start, "on_step": on_step, "on_cache": on_cache, "on_report": on_report}
