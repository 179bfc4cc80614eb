"""`watch --headless --realtime` on a 720p 30 fps file: where the time goes, and does it keep real time on 2 cores?

    python benchmarks/watch_720p.py                          # stages, cost, e2e: 20 s, window and world models
    python benchmarks/watch_720p.py --before /path/to/old/checkout --repeats 3
    python benchmarks/watch_720p.py --parts stages --json out.json

The source: ../shared/videos/trflorian_ball2.mp4 (a webcam clip: a hand with a ball) upscaled to 1280x720 and
written at 30 fps (moving shapes over a texture if the clip is absent), read with real-time pacing, i.e. as a
camera delivers it: a frame the loop is not ready for is skipped, a window inference cannot keep up with is dropped.

stages: the CPU cost of each step per frame (process CPU time, so OpenCV's own threads count; medians), before
(the full 720p frame drawn at 960 px, encoding in the drawing thread, torch's default threads) and after (the frame
shrunk once at capture, drawn at 640 px, encoded in a thread of its own, one torch thread), and what 30 frames/s
cost in cores: the total (<= 2 on 2 cores) and the busiest thread (<= 1). CPU time barely depends on the load
from other processes, so this is the figure that says whether an idle 2-core machine keeps up.
cost: `watch(file, realtime=False, headless=True, out=tmp)` scores every window and draws every frame: its CPU
seconds per source second are the cores real time needs with nothing dropped (process total, and per Python
thread: capture, inference, main = drawing, video = encoding), measured end to end in the steady state (from the
first update to the last whole second: model loading and the closing outputs left out).
e2e: `edge_jepa.stream.watch(file, realtime=True, headless=True, out=tmp)` for --seconds of source time, in a
child process per (code, model): windows scored / eligible / dropped, render drops, frames skipped by pacing,
windows/s, wall vs source seconds, the run's CPU seconds and the load average (`os.getloadavg`) around it. With
--before, an older checkout runs the same, interleaved (before, after, before, after ...), with its own defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, os.environ.get("EDGE_JEPA_CODE", str(ROOT)))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

CLIP = ROOT.parent / "shared" / "videos" / "trflorian_ball2.mp4"
RESULTS = Path(__file__).resolve().parent / "results" / "watch_720p.json"
FPS, SIZE = 30.0, (1280, 720)


def make_source(path: Path, seconds: float) -> str:
    """A 1280x720 30 fps MP4 of `seconds`; what it shows (the real clip upscaled, or synthetic shapes)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE)
    n = int(seconds * FPS)
    if CLIP.exists():
        cap = cv2.VideoCapture(str(CLIP))
        for _ in range(n):
            ok, frame = cap.read()
            if not ok:  # loop the clip
                cap.release()
                cap = cv2.VideoCapture(str(CLIP))
                ok, frame = cap.read()
            writer.write(cv2.resize(frame, SIZE, interpolation=cv2.INTER_LINEAR))
        cap.release()
        what = f"{CLIP.name} upscaled to 1280x720, 30 fps"
    else:
        rng = np.random.default_rng(0)
        texture = cv2.resize(rng.integers(40, 200, (90, 160, 3), dtype=np.uint8), SIZE, interpolation=cv2.INTER_CUBIC)
        for i in range(n):
            frame = texture.copy()
            x = int(640 + 500 * np.sin(i / 40))
            cv2.circle(frame, (x, 360), 60, (30, 200, 60), -1)
            cv2.rectangle(frame, (200 + (i * 7) % 900, 100), (300 + (i * 7) % 900, 220), (200, 40, 40), -1)
            writer.write(frame)
        what = "synthetic shapes over a texture, 1280x720, 30 fps"
    writer.release()
    return what


# -- stages ------------------------------------------------------------------------------------------------------


def cpu_ms(fn, runs: int) -> float:
    """Median process CPU milliseconds of fn() (all threads of this process: OpenCV's pool included)."""
    from edge_jepa.timing import time_round_robin

    return time_round_robin({"fn": fn}, warmup=0, runs=runs, clock=time.process_time)["fn"].p50


def stages(source: Path, runs: int) -> dict:
    import torch

    from edge_jepa.stream.sources import to_rgb
    from edge_jepa.surprise import as_scorer, frame_to_input
    from edge_jepa.viz import VideoWriter, annotate, fit_width

    cap = cv2.VideoCapture(str(source))
    frames = []

    def decode() -> None:
        ok, frame = cap.read()
        frames.append(to_rgb(frame))

    out: dict[str, float] = {"decode + BGR->RGB, 1280x720": cpu_ms(decode, runs)}
    cap.release()
    image = frames[-1]
    view = fit_width(image, max_width=640)
    out["model input (64 px) from 1280x720"] = cpu_ms(lambda: frame_to_input(image, 64, "resize"), runs)
    out["shrink for drawing 1280 -> 640"] = cpu_ms(lambda: fit_width(image, max_width=640), runs)
    heat = np.random.default_rng(0).random((4, 4)).astype(np.float32)
    history = list(np.random.default_rng(1).random(400))
    label = "   12.3s  surprise 0.123  thr 0.200  EVENT"

    def draw(frame: np.ndarray, width: int) -> np.ndarray:
        return annotate(frame, heatmap=heat, vmax=1.0, history=history, threshold=0.5, label=label, active=True,
                        max_width=width, status="cap 30/s  score 30.0/s  draw 30/s  lat 40 ms  drop 0")

    out["draw: 1280x720 frame at 960 px (before)"] = cpu_ms(lambda: draw(image, 960), runs)
    out["draw: 640 px view (after)"] = cpu_ms(lambda: draw(view, 640), runs)
    with tempfile.TemporaryDirectory() as tmp:
        for width, name in ((960, "before"), (640, "after")):
            drawn = draw(image, width)
            writer = VideoWriter(Path(tmp) / f"{width}.mp4", FPS)
            out[f"encode mp4v {drawn.shape[1]}x{drawn.shape[0]} ({name})"] = cpu_ms(
                lambda w=writer, d=drawn: w.write(d), runs)
            writer.close()
    prep = frame_to_input(image, 64, "resize")
    for threads in (2, 1):
        torch.set_num_threads(threads)
        window = as_scorer("window")
        clip = torch.from_numpy(np.stack([prep] * window.frames_per_window, axis=1)[None])
        window.score_clips(clip, [0])
        out[f"window: one window ({threads} torch thread{'s' if threads > 1 else ''})"] = cpu_ms(
            lambda s=window, c=clip: s.score_clips(c, [0]), runs)
        world = as_scorer("world")
        tokens = world.encode(prep)
        out[f"world: encode a frame + score its window ({threads} torch thread{'s' if threads > 1 else ''})"] = (
            cpu_ms(lambda s=world, t=tokens: s.score_tokens([s.encode(prep)] + [t] * (s.frames_per_window - 1), 0),
                   runs))
    return {k: round(v, 2) for k, v in out.items()}


def budget(ms: dict) -> dict:
    """Cores that 30 frames/s need, per thread (every frame: one window scored, one frame drawn and encoded).

    before: the 720p frame prepared for the model in the inference thread, drawn at 960 px and encoded in the
    drawing thread, with torch's default 2 threads and (to separate the two changes) with 1; after: prepared and
    shrunk at capture, drawn at 640 px, encoded in its own thread, 1 torch thread."""
    decode = ms["decode + BGR->RGB, 1280x720"]
    prep = ms["model input (64 px) from 1280x720"]
    rows = {}
    for model, key in (("window", "window: one window"), ("world", "world: encode a frame + score its window")):
        variants = {}
        for threads in ("2 torch threads", "1 torch thread"):
            variants[f"before, {threads}"] = {
                "capture": decode, "inference": prep + ms[f"{key} ({threads})"],
                "draw + encode": ms["draw: 1280x720 frame at 960 px (before)"] + ms["encode mp4v 960x600 (before)"]}
        variants["after"] = {"capture": decode + prep + ms["shrink for drawing 1280 -> 640"],
                             "inference": ms[f"{key} (1 torch thread)"], "draw": ms["draw: 640 px view (after)"],
                             "encode": ms["encode mp4v 640x420 (after)"]}
        for name, parts in variants.items():
            cores = {k: round(v * FPS / 1000, 3) for k, v in parts.items()}
            rows[f"{model} {name}"] = {"threads": cores, "total_cores": round(sum(cores.values()), 3),
                                       "busiest_thread_cores": max(cores.values())}
    return rows


# -- end to end --------------------------------------------------------------------------------------------------


CHILD = r"""
import json, os, sys, tempfile, threading, time, warnings
warnings.simplefilter("ignore")
from edge_jepa.stream import watch
source, model, seconds, realtime = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4] == "realtime"

def snapshot():  # (source time, process CPU s, {thread name: CPU s}) of the Python threads now alive
    names = {}
    for th in threading.enumerate():
        name = "main" if th is threading.main_thread() else th.name.split(" ")[0].replace("edge-jepa-", "")
        try:
            names[name] = names.get(name, 0.0) + time.clock_gettime(time.pthread_getcpuclockid(th.ident))
        except OSError:
            pass
    return time.process_time(), names

marks = []  # (source t, snapshot) at the first update and about every second of source time after it

def on_update(update, image):
    if not marks or update.t - marks[-1][0] >= 1.0:
        marks.append((update.t, snapshot()))

load0 = os.getloadavg()[0]
with tempfile.TemporaryDirectory() as out:
    t = time.perf_counter()
    summary = watch(source, model=model, headless=True, out=out, realtime=realtime, max_seconds=seconds,
                    on_update=on_update)
    wall = time.perf_counter() - t
s = summary.stats
(t0, (c0, th0)), (t1, (c1, th1)) = marks[0], marks[-1]  # steady state: model loading and the end left out
span = t1 - t0
print(json.dumps({"wall_s": round(wall, 2), "source_s": round(s.source_s, 2), "measured_source_s": round(span, 2),
                  "cores": round((c1 - c0) / span, 3),
                  "thread_cores": {k: round((v - th0.get(k, 0.0)) / span, 3) for k, v in sorted(th1.items())},
                  "frames_captured": s.frames_captured, "frames_skipped": s.frames_skipped,
                  "windows_eligible": s.windows_eligible, "windows_scored": s.windows_scored,
                  "windows_dropped": s.windows_dropped, "render_drops": s.render_drops,
                  "frames_rendered": s.frames_rendered, "windows_per_s": round(s.update_fps, 2),
                  "load_before": round(load0, 2), "load_after": round(os.getloadavg()[0], 2)}))
"""


def e2e(code: Path, model: str, source: Path, seconds: float, realtime: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # each code's own thread defaults
    env["PYTHONPATH"] = str(code)
    mode = "realtime" if realtime else "every"
    run = subprocess.run([sys.executable, "-c", CHILD, str(source), model, str(seconds), mode], env=env, cwd=code,
                         capture_output=True, text=True, timeout=900)
    if run.returncode != 0:
        raise SystemExit(f"{code} {model}: the run failed\n{run.stderr[-2000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="stages,cost,e2e", help="comma-separated: stages, cost, e2e")
    ap.add_argument("--models", default="window,world")
    ap.add_argument("--seconds", type=float, default=20.0, help="source seconds per end-to-end run")
    ap.add_argument("--repeats", type=int, default=1, help="end-to-end runs per (code, model); medians reported")
    ap.add_argument("--runs", type=int, default=40, help="timed calls per stage")
    ap.add_argument("--before", type=Path, default=None, help="an older checkout to run end to end as well")
    ap.add_argument("--json", type=Path, default=RESULTS)
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    report: dict = {"platform": platform.platform(), "cpus": os.cpu_count(), "load_start": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "source_720p30.mp4"
        report["source"] = make_source(source, args.seconds + 2)
        if "stages" in parts:
            report["stages_cpu_ms"] = stages(source, args.runs)
            report["cores_at_30fps"] = budget(report["stages_cpu_ms"])
            print(json.dumps(report["stages_cpu_ms"], indent=1), json.dumps(report["cores_at_30fps"], indent=1),
                  sep="\n", flush=True)
        if parts & {"cost", "e2e"}:
            codes = ([("before", args.before)] if args.before else []) + [("after", ROOT)]
            for part, realtime in (("cost", False), ("e2e", True)):
                if part not in parts:
                    continue
                runs: dict[str, list[dict]] = {}
                for _ in range(args.repeats):
                    for model in args.models.split(","):
                        for name, code in codes:
                            row = e2e(code, model, source, args.seconds, realtime)
                            runs.setdefault(f"{model} {name}", []).append(row)
                            print(f"{part} {model} {name}: {json.dumps(row)}", flush=True)
                report[f"{part}_runs"] = runs
                report[f"{part}_median"] = {k: {f: statistics.median(r[f] for r in rows) for f in rows[0]
                                                if not isinstance(rows[0][f], dict)} for k, rows in runs.items()}
    report["load_end"] = os.getloadavg()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
