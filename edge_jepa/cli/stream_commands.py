"""`edge-jepa watch`: live surprise detection on a webcam, a video file, a URL or a folder of images."""

from __future__ import annotations

import signal
import warnings
from pathlib import Path

import typer
from rich.table import Table

from edge_jepa.cli.app import app, console, fail
from edge_jepa.cli.errors import non_negative, positive
from edge_jepa.photometric import check_photometric

DEFAULT_HEADLESS_OUT = Path("edge-jepa-watch")


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@app.command("watch")
def watch_command(
    source: str = typer.Argument(..., help="webcam index (0), video file, URL (rtsp://, http://) or image folder"),
    model: str = typer.Option("default", "--model", help="model dir, export bundle (manifest.json) or an embedded "
                              "model: 'default' (= 'world', frame-causal) or 'window'"),
    headless: bool = typer.Option(False, "--headless",
                                  help="no window: write annotated.mp4, timeline.png and summary.json to --out"),
    out: Path = typer.Option(None, "--out", help="output folder: events.jsonl, clips/ (headless default: "
                                                  f"./{DEFAULT_HEADLESS_OUT})"),
    realtime: bool = typer.Option(None, "--realtime/--no-realtime",
                                  help="files and folders: emulate a live camera (paced, stale windows dropped) or "
                                       "score every window at the model's fps (deterministic). Default: every "
                                       "window when --headless, real time with a window. Live sources: always "
                                       "real time."),
    fps: float = typer.Option(None, "--fps",
                              callback=positive, help="frame rate of an image folder (default: the model's)"),
    seconds: float = typer.Option(None, "--seconds",
                                  callback=positive, help="stop after this many seconds of source time"),
    warmup: float = typer.Option(None, "--warmup", callback=non_negative,
                                 help="calibration seconds [detector default: 5]"),
    k: float = typer.Option(None, "--k",
                            callback=positive, help="event threshold: median + k * robust spread [8]"),
    k_low: float = typer.Option(None, "--k-low",
                                callback=positive, help="an event ends below median + k_low * spread [3]"),
    min_duration: float = typer.Option(None, "--min-duration", callback=non_negative,
                                       help="minimum event duration, seconds [0]"),
    clips: bool = typer.Option(True, "--clips/--no-clips", help="write clips/event_0001.mp4, ... around each event"),
    prior: bool = typer.Option(True, "--prior/--no-prior",
                               help="judge the first seconds against the model's surprise prior (when it has one)"),
    threads: int = typer.Option(1, "--threads", min=1,
                                help="torch CPU threads for inference (it runs beside capture, drawing and encoding; "
                                     "more than 1 only pays on an idle machine with cores to spare)"),
    width: int = typer.Option(None, "--width", min=64,
                              help="width of the drawn frames (annotated video, clips, window); each frame is "
                                   "shrunk to it once, right after capture [640 headless, 960 with a window]"),
    notify: str = typer.Option(None, "--notify", metavar="URL",
                               help="webhook: POST each event record as JSON to this http(s) URL (own thread, "
                                    "retried with backoff, never blocks capture; deliveries counted in summary.json)"),
    mask: Path = typer.Option(None, "--mask", help="regions of interest: a picture (white = watch, black = ignore; "
                                                   "any size, stretched to the frame) or a JSON file "
                                                   "{\"watch\": [[[x, y], ...]], \"ignore\": [...]} in source pixels"),
    mask_poly: list[str] = typer.Option(None, "--mask-poly", help="watch only inside this polygon \"x,y x,y x,y ...\" "
                                                                  "(source pixels; repeat for more)"),
    ignore_poly: list[str] = typer.Option(None, "--ignore-poly", help="ignore inside this polygon \"x,y x,y ...\" "
                                                                      "(source pixels; repeat for more)"),
    photometric: str = typer.Option("gain", "--photometric",
                                    help="gain: exposure / white-balance changes are normalized away (each frame's "
                                         "per-channel gain matched to a running reference, local changes left out; "
                                         "for auto-exposure cameras, but a sudden whole-scene swap is then mostly "
                                         "normalized too); match: whole-frame mean and std matched; off: frames as "
                                         "they come"),
) -> None:
    """Watch a camera, file, URL or image folder for surprise; log events (and clips) as they happen.

    Keys in the window: q/Esc quit, space/p pause, r recalibrate. Ctrl-C stops cleanly (an open event is
    closed and logged; every event already logged is on disk).
    """
    from edge_jepa.checkpoints import CheckpointError
    from edge_jepa.stream import EventDetector, SourceError, watch
    from edge_jepa.stream.notify import check_url
    from edge_jepa.stream.watcher import source_for

    if notify is not None:
        try:
            check_url(notify)
        except ValueError as e:
            raise fail(f"{e}; see --help") from None
    try:
        from edge_jepa.surprise import as_scorer

        runner = as_scorer(model)  # a window model's Runner inside a scorer, or a frame-causal model's scorer
    except (CheckpointError, FileNotFoundError, ValueError, RuntimeError) as e:
        raise fail(str(e)) from None
    try:
        roi = _roi_mask(mask, mask_poly or [], ignore_poly or [])
        runner.set_mask(roi)  # a mask that keeps no token of the model's grid fails here
        check_photometric(photometric)
    except ValueError as e:
        raise fail(str(e)) from None
    settings = {name: value for name, value in (("warmup_s", warmup), ("k", k), ("k_low", k_low),
                                                ("min_duration_s", min_duration)) if value is not None}
    try:
        detector = EventDetector(**settings, use_prior=prior)
    except ValueError as e:
        raise fail(str(e)) from None
    if out is None and headless:
        out = DEFAULT_HEADLESS_OUT

    def on_event(ev) -> None:
        where = f" box {list(ev.region)}" if ev.region else ""
        files = ", ".join(f for f in (ev.clip, ev.thumbnail) if f)
        console.print(f"[bold red]event {ev.id}[/] {ev.start_s:8.2f}-{ev.end_s:.2f} s  {ev.describe()} "
                      f"(peak at {ev.peak_s:.2f} s){where}{f' -> {files}' if files else ''}", highlight=False,
                      soft_wrap=True)

    try:
        src = source_for(source, runner, headless=headless, realtime=realtime, fps=fps)
    except SourceError as e:
        raise fail(str(e)) from None
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        mode = "real time" if src.realtime else "every window"
        inputs = f", photometric {photometric}" + (f", {roi!r}" if roi is not None else "")
        console.print(f"watching {src.name} ({mode}) with {runner}{inputs}"
                      f"{'' if headless else ' - keys: q quit, space pause, r recalibrate'}", highlight=False,
                      soft_wrap=True)
        summary = watch(src, model=runner, headless=headless, out=out, detector=detector,
                        max_seconds=seconds, clips=clips, on_event=on_event, notify=notify, width=width,
                        threads=threads, photometric=photometric)
    except (SourceError, RuntimeError, FloatingPointError) as e:
        src.close()
        raise fail(str(e)) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    console.print(stats_table(summary))
    for name, path in summary.outputs.items():
        console.print(f"{name}: {path}", highlight=False)
    sent = summary.notify
    if sent and (sent["failed"] or sent["dropped"] or sent["unsent"]):
        warnings.warn(f"--notify {sent['url']}: {sent['failed'] + sent['dropped'] + sent['unsent']} of "
                      f"{len(summary.events)} event(s) not delivered ({sent['failed']} failed, {sent['dropped']} "
                      f"dropped, {sent['unsent']} unsent; last error: {sent['last_error']})", RuntimeWarning,
                      stacklevel=1)
    if summary.stopped_by == "interrupt":  # Ctrl-C (or SIGTERM): the outputs are complete, the exit says why
        raise typer.Exit(130)


def _roi_mask(path: Path | None, watch_polys: list[str], ignore_polys: list[str]):
    """The RoiMask of --mask / --mask-poly / --ignore-poly (None without any); MaskError (a ValueError) if bad."""
    from edge_jepa.roi import RoiMask

    if path is None and not watch_polys and not ignore_polys:
        return None
    watch_pts = [RoiMask.parse_polygon(p) for p in watch_polys]
    ignore_pts = [RoiMask.parse_polygon(p) for p in ignore_polys]
    if path is None:
        return RoiMask(watch=watch_pts, ignore=ignore_pts, name="--mask-poly" if watch_pts else "--ignore-poly")
    base = RoiMask.load(path)
    if watch_pts and (base.image is not None or base.watch):
        raise ValueError(f"{path} already says what to watch: give --mask or --mask-poly, not both "
                         "(--ignore-poly adds to either)")
    return RoiMask(base.image, watch=[*base.watch, *watch_pts], ignore=[*base.ignore, *ignore_pts], name=str(path))


def stats_table(summary) -> Table:
    """Rates, drops, latency and events of a WatchSummary."""
    s = summary.stats
    mode = "real time (newest window)" if s.realtime else "every window"
    table = Table(title=f"{summary.source}: {summary.model} ({summary.backend}), {mode}")
    table.add_column("")
    table.add_column("value", justify="right")
    rows = [
        ("source time", f"{s.source_s:.1f} s ({s.frames_captured} frames, {s.frames_skipped} skipped late)"),
        ("capture / score / render", f"{s.capture_fps:.1f} / {s.update_fps:.1f} / {s.render_fps:.1f} per s"),
        ("windows eligible / scored / dropped", f"{s.windows_eligible} / {s.windows_scored} / {s.windows_dropped}"),
        ("frame-to-score latency p50 / p90", f"{s.latency_ms['p50']:.0f} / {s.latency_ms['p90']:.0f} ms")
        if s.realtime else ("frame-to-score latency", "n/a (every window: capture waits for scoring)"),
        ("scoring time per window p50 / p90", f"{s.process_ms['p50']:.0f} / {s.process_ms['p90']:.0f} ms"),
        ("reopens / resolution changes", f"{s.reopens} / {s.resolution_changes}"),
        ("threshold (baseline + k spread)", f"{summary.calibration['threshold']}"),
        ("events", f"{len(summary.events)}"),
    ]
    if summary.notify:
        n = summary.notify
        rows.append(("webhook sent / failed / dropped / unsent",
                     f"{n['sent']} / {n['failed']} / {n['dropped']} / {n['unsent']}"))
    if summary.run_id:
        rows.append(("run id", summary.run_id))
    for name, value in rows:
        table.add_row(name, value)
    return table


@app.command("calibrate")
def calibrate_command(
    model: str = typer.Argument(..., help="an edge-jepa model directory, or 'default' (= 'world') / 'window'"),
    footage: list[Path] = typer.Option(None, "--footage", help="ordinary video of the scene (repeatable); default: "
                                                                "the project's plausible synthetic scenes"),
    scenes: int = typer.Option(12, "--scenes", min=1, help="synthetic scenes (without --footage)"),
    seconds: float = typer.Option(20.0, "--seconds", callback=positive, help="length of each synthetic scene"),
) -> None:
    """Measure the model's surprise on ordinary footage and store it as the model's surprise prior (edge_jepa.json),
    so that `watch` judges from the first window instead of calibrating blind."""
    from edge_jepa.checkpoints import CheckpointError
    from edge_jepa.stream.prior import SYNTHETIC_SEEDS, compute_prior, write_prior

    seeds = tuple(SYNTHETIC_SEEDS[0] + i for i in range(scenes))
    try:
        record = compute_prior(model, footage=[str(p) for p in footage or ()], seeds=seeds, seconds=seconds,
                               on_scene=lambda fps, i: console.print(f"  {fps:g} fps: scene {i + 1}", highlight=False))
        path = write_prior(model, record)
    except (CheckpointError, FileNotFoundError, ValueError, RuntimeError, OSError) as e:
        raise fail(str(e)) from None
    for e in record["entries"]:
        console.print(f"{e['fps']:g} fps: baseline {e['baseline']:.4f}, spread {e['spread']:.4f}, q99 "
                      f"{e['quantiles']['0.99']:.4f} ({e['scores']} scores, {e['scenes']} scenes)", highlight=False)
    console.print(f"wrote the surprise prior into {path}", highlight=False)
