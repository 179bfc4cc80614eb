"""`edge-jepa demo`, `edge-jepa eval-surprise`, `edge-jepa fit`: the world model at work."""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from edge_jepa.cli.app import app, console, fail
from edge_jepa.cli.errors import positive


def _open_scorer(model: str, fps: float | None = None):
    """The scorer of a model or bundle (a window model's Runner, or a frame-causal model's cached-token scorer)."""
    from edge_jepa.surprise import SurpriseScorer

    try:
        return SurpriseScorer(model, fps=fps) if fps else SurpriseScorer(model)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        raise fail(str(e)) from None


def _bar() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=console)


@app.command()
def demo(
    model: str = typer.Option("default", "--model", help="model or bundle (default: the embedded frame-causal "
                              "model, alias 'world'; 'window' is the embedded window model)"),
    out: Path = typer.Option(Path("edge-jepa-demo"), "--out", help="output directory"),
    seconds: float = typer.Option(30.0, callback=positive, help="length of the synthetic scene"),
    seed: int = typer.Option(7, min=0, help="scene seed"),
    fps: float = typer.Option(None, callback=positive, help="the scene's frame rate (default: the model's; "
                              "frame-causal models score any rate, window models only their own)"),
) -> None:
    """Render a synthetic scene with physics violations, score it, write an annotated MP4, a plot and JSON."""
    from edge_jepa.demo import run_demo
    from edge_jepa.outputs import check_writable

    check_writable(out, folder=True)
    scorer = _open_scorer(model, fps)
    with _bar() as progress:
        task = progress.add_task("scoring + rendering", total=None)

        def on_progress(stage: str, done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        outputs = run_demo(scorer, out, seconds=seconds, seed=seed, on_progress=on_progress)
    r = outputs.report
    table = Table(title=f"surprise of {r['model']} ({r['backend']}) on a {seconds:g} s synthetic scene")
    for col in ("time (s)", "violation", "peak surprise after", "detected"):
        table.add_column(col)
    for v in r["violations"]:
        table.add_row(f"{v['time_s']:.1f}", v["violation"], f"{v['peak_score_after']:.3f}",
                      "[green]yes" if v["detected"] else "[red]no")
    console.print(table)
    console.print(f"baseline median {r['baseline_median']:.3f}, threshold {r['threshold']:.3f}; "
                  f"detected {r['detected']}, false events {r['false_events']}")
    console.print(f"annotated video: {outputs.video}\nplot: {outputs.plot}\nsummary: {outputs.summary}")


@app.command("eval-surprise")
def eval_surprise(
    model: str = typer.Argument("default", help="model or bundle to evaluate"),
    pairs_per_type: int = typer.Option(20, min=1, help="held-out matched pairs per violation type"),
    tolerance: int = typer.Option(None, min=0,
                                  help="peak within [0, N] frames after the violation (default: target span)"),
    json_out: Path = typer.Option(None, "--json", help="write the full report here"),
) -> None:
    """AUROC, pairwise accuracy and peak timing on held-out synthetic violation-of-expectation pairs."""
    from edge_jepa.evaluation import evaluate_surprise
    from edge_jepa.io import atomic_file, strict_json
    from edge_jepa.outputs import check_writable

    if json_out:
        check_writable(json_out)  # before minutes of scoring, not after
    scorer = _open_scorer(model)
    with _bar() as progress:
        task = progress.add_task("scoring pairs", total=None)
        report = evaluate_surprise(scorer, pairs_per_type=pairs_per_type, tolerance=tolerance,
                                   on_pair=lambda d, t: progress.update(task, completed=d, total=t))
    console.print(results_table(report))
    if json_out:
        with atomic_file(json_out) as tmp:
            tmp.write_text(strict_json(report))
        console.print(f"report: {json_out}")


def results_table(report: dict) -> Table:
    table = Table(title=f"violation of expectation: {report['model']} ({report['backend']}), "
                        f"peak tolerance 0..{report['tolerance_frames']} frames")
    for col in ("violation", "pairs", "AUROC", "pairwise", "ties", "peak in tol.", "median peak offset"):
        table.add_column(col, justify="right" if col != "violation" else "left")

    def cells(s: dict) -> list[str]:
        return [str(s["pairs"]), f"{s['auroc']:.3f}", f"{s['pairwise']:.3f}", f"{s['pairwise_ties']:.2f}",
                f"{s['peak_within_tolerance']:.2f}", f"{s['median_peak_offset']:+.1f}"]

    for name, s in [*report["per_type"].items(), ("overall", report["overall"])]:
        style = "bold" if name == "overall" else ("red" if s["auroc"] < 0.9 else "")
        table.add_row(name, *cells(s), style=style)
    for name, b in report.get("baselines", {}).items():  # the same pairs scored without a model
        table.add_row(f"(no model) {name}", *cells(b["overall"]), style="dim")
    return table


@app.command()
def fit(
    source: str = typer.Option(..., "--source", help="a video file, a folder of videos, or a camera index"),
    out: Path = typer.Option(..., "--out", help="model directory to write (training state in OUT.run/)"),
    model: str = typer.Option("default", "--model", help="model to start from (window or frame-causal; default: "
                              "the embedded frame-causal model, 'window' the embedded window model)"),
    minutes: float = typer.Option(10.0, callback=positive, help="training time budget (decoding and the held-out "
                                  "checks come on top); training stops at --minutes or --steps, whichever is first"),
    steps: int = typer.Option(100_000, min=1, help="step cap; training stops at --minutes or --steps, whichever "
                              "is first"),
    batch_size: int = typer.Option(16, min=1, help="clips per step"),
    lr: float = typer.Option(2e-4, callback=positive, help="learning rate (constant after warm-up)"),
    synthetic_share: float = typer.Option(0.25, min=0.0, max=1.0,
                                          help="share of synthetic clips per batch (keeps the physics prior)"),
    holdout: float = typer.Option(0.2, min=0.05, max=0.5, help="share of each video (its end) never trained on: "
                                  "the model is checked there before and after"),
    record_seconds: float = typer.Option(60.0, callback=positive,
                                         help="camera source: seconds to record before training"),
    threads: int = typer.Option(None, min=1, help="torch CPU threads (default: torch's choice)"),
    seed: int = typer.Option(0, min=0),
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted fit"),
) -> None:
    """Continue self-supervised training on your own footage so the model learns the scene's normal; checked on a
    held-out slice before and after."""
    from edge_jepa.cli.train_commands import command_line, training_progress
    from edge_jepa.train.api import fit as fit_model
    from edge_jepa.video import VideoError

    path = Path(source)
    if source.isdigit() and not path.exists():
        try:
            from edge_jepa.train.api import prepare_model

            path = _record_camera(int(source), record_seconds, prepare_model(model, seed=seed)[0].config.clip.fps)
        except (VideoError, FileNotFoundError, ValueError) as e:
            raise fail(str(e)) from None
    with training_progress("fit") as bar:
        run = fit_model(path, out, model, minutes=minutes, steps=steps, batch_size=batch_size, lr=lr,
                        synthetic_share=synthetic_share, holdout=holdout, seed=seed, resume=resume, threads=threads,
                        command=command_line(), on_start=bar.on_start, on_step=bar.on_step, on_progress=bar.on_stage)
    print_fit(run, minutes, steps)


def print_fit(run, minutes: float, steps: int) -> None:
    """How training ended (steps or time, said), the held-out before/after table and the fitted model's events."""
    result, check = run.result, run.check
    ended = (f"the {minutes:g} min budget ran out first (--steps {steps} not reached)" if check.stopped_by == "time"
             else f"the step cap (--steps {steps}) came first, after {result.seconds / 60:.1f} of {minutes:g} min")
    held = sum(h["seconds"] for h in check.held_out)
    console.print(f"footage: {check.footage_seconds:.1f} s decoded at the model's size in {check.decode_seconds:.1f} s;"
                  f" {check.footage_seconds - held:.1f} s to train on, the last {held:.1f} s held out")
    console.print(f"trained {result.steps_done} steps in {result.seconds / 60:.1f} min: {ended}")
    table = Table(title=f"held-out check: the last {held:.1f} s of the footage ({check.after.windows} frames "
                        "scored), never trained on")
    for col in ("on held-out footage", "before", "after", "change"):
        table.add_column(col, justify="left" if col == "on held-out footage" else "right")
    b, a = check.before, check.after
    for name, x, y in (("prediction loss (L1)", b.prediction_loss, a.prediction_loss),
                       ("surprise median", b.median, a.median), ("surprise p95", b.p95, a.p95),
                       ("surprise max", b.max, a.max)):
        change = f"{(y - x) / x:+.0%}" if x else ""
        style = "bold" if name.startswith("prediction") else ""
        table.add_row(name, f"{x:.4f}", f"{y:.4f}", change, style=style)
    table.add_row("events raised", str(len(b.events)), str(len(a.events)), "")
    console.print(table)
    if a.events:
        console.print("events the fitted model raises on the held-out footage:")
        for e in a.events[:10]:
            console.print(f"  {Path(e['video']).name} {e['start_s']:.1f}-{e['end_s']:.1f} s, peak {e['peak_score']:.3f}"
                          f" at {e['peak_s']:.1f} s (threshold {e['threshold']:.3f})", highlight=False)
        if len(a.events) > 10:
            console.print(f"  ... {len(a.events) - 10} more in the model card")
    else:
        console.print("the fitted model raises no event on the held-out footage")
    console.print(f"fitted model: {run.model_dir} (card.json: the figures above)   loss log: {run.loss_log}")


def _record_camera(index: int, seconds: float, fps: float) -> Path:
    """Record `seconds` from a camera to a temporary MP4 (frames at the model's fps), written as they come: a
    recording never sits in memory at the camera's resolution."""
    import time

    import cv2

    from edge_jepa.video import VideoError

    cap = cv2.VideoCapture(index)
    if not cap.isOpened():
        raise VideoError(f"camera {index}: cannot open (is it connected and free?)")
    path = Path(tempfile.mkdtemp(prefix="edge-jepa-camera-")) / f"camera{index}.mp4"
    writer, written, t0, next_t = None, 0, time.monotonic(), 0.0
    try:
        with _bar() as progress:
            task = progress.add_task(f"recording camera {index}", total=int(seconds * fps))
            while time.monotonic() - t0 < seconds:
                ok, frame = cap.read()
                if not ok:
                    raise VideoError(f"camera {index}: stopped delivering frames")
                if time.monotonic() - t0 >= next_t:
                    if frame.ndim == 2:
                        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
                    if writer is None:
                        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                                 (frame.shape[1], frame.shape[0]))
                        if not writer.isOpened():
                            raise VideoError(f"{path}: OpenCV cannot write an MP4 (mp4v) here")
                    writer.write(frame)
                    written += 1
                    next_t += 1.0 / fps
                    progress.update(task, completed=written)
    finally:
        cap.release()
        if writer is not None:
            writer.release()
    if not written:
        raise VideoError(f"camera {index}: no frame recorded in {seconds:g} s")
    return path
