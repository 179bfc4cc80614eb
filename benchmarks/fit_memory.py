"""Peak memory of `edge-jepa fit` on a long high-resolution recording (issue 19: a 10-minute 1080p file must fit
under 1 GB).

Writes a synthetic 1080p recording with OpenCV (a textured static background, a few objects crossing it, camera
noise; mp4v) into a temporary directory, then runs the real CLI in child processes and reads each child's peak
resident set size from the kernel (`os.wait4`, ru_maxrss):

1. `decode`: `edge_jepa.train.data.VideoSource` alone (decoding at the model's size while reading, with the
   held-out split), to separate the decoder's share;
2. `fit`: the whole `edge-jepa fit` (decode, held-out check before, `--steps` training steps, held-out check
   after, model written).

The two children run side by side. Memory does not depend on the number of steps (one batch at a time), so a
few steps measure it.

    python benchmarks/fit_memory.py                                  # 10 min, 1920x1080, 30 fps, default model
    python benchmarks/fit_memory.py --minutes 2 --model window --steps 10
    python benchmarks/fit_memory.py --video existing.mp4             # measure on a file of your own

Result: results/fit_memory_<model>.json (or --json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from edge_jepa.io import atomic_file  # noqa: E402


def write_recording(path: Path, minutes: float, width: int, height: int, fps: float, seed: int = 0) -> Path:
    """A `minutes`-long recording: textured background, objects crossing now and then, per-frame sensor noise."""
    rng = np.random.default_rng(seed)
    small = rng.integers(40, 200, size=(height // 40 + 1, width // 40 + 1, 3), dtype=np.uint8)
    background = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    grains = []  # 8 backgrounds with their own sensor noise, cycled (the writer's memory is not measured)
    for _ in range(8):
        grain = cv2.resize(rng.integers(-6, 7, size=(height // 4, width // 4), dtype=np.int16), (width, height),
                           interpolation=cv2.INTER_NEAREST)
        grains.append(np.clip(background + grain[..., None], 0, 255).astype(np.uint8))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise SystemExit(f"{path}: OpenCV cannot write mp4v here")
    n = int(round(minutes * 60 * fps))
    t0 = time.monotonic()
    try:
        for i in range(n):
            frame = grains[i % len(grains)].copy()
            t = i / fps
            for k in range(3):  # an object crosses every ~20 s, each on its own lane
                phase = (t + 7 * k) % 20.0
                if phase < 6.0:
                    x = int(-200 + (width + 400) * phase / 6.0)
                    y = int(height * (0.3 + 0.2 * k))
                    cv2.rectangle(frame, (x, y), (x + 160, y + 90), (30 + 80 * k, 200 - 60 * k, 90), -1)
            writer.write(frame)
            if i % int(fps * 30) == 0:
                print(f"  writing: {t / 60:.0f}/{minutes:g} min ({time.monotonic() - t0:.0f} s)", flush=True)
    finally:
        writer.release()
    return path


def start_child(args: list[str], env: dict, log) -> tuple[subprocess.Popen, float]:
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT), time.monotonic()


def wait_child(child: tuple[subprocess.Popen, float], log) -> tuple[int, float, float, str]:
    """(exit code, peak RSS in MB, wall seconds, output) of a child started by start_child."""
    proc, t0 = child
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage: ru_maxrss is its peak RSS (KB)
    proc.returncode = os.waitstatus_to_exitcode(status)
    log.seek(0)
    return proc.returncode, usage.ru_maxrss / 1024.0, time.monotonic() - t0, log.read()


DECODE_ONLY = """
import sys
from edge_jepa.train.api import prepare_model
from edge_jepa.train.data import VideoSource
clip = prepare_model(sys.argv[2])[0].config.clip
src = VideoSource(sys.argv[1], clip, holdout=0.2)
frames = sum(v.nbytes for v in src.videos) + sum(h.frames.nbytes for h in src.held_out)
print(f"{src.describe()}; stored frames {frames / 2**20:.1f} MB")
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the generated recording")
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--video", type=Path, help="measure on this file instead of generating one")
    ap.add_argument("--keep", type=Path, help="write the generated recording here (and keep it) instead of a "
                    "temporary directory")
    ap.add_argument("--model", default="default", help="model to fit (default: the embedded default, the frame-causal "
                    "world model; 'window': the embedded window model)")
    ap.add_argument("--steps", type=int, default=20, help="training steps of the measured fit")
    ap.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of the children")
    ap.add_argument("--json", type=Path, help="result file (default: results/fit_memory_<model>.json)")
    args = ap.parse_args()

    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory(prefix="edge-jepa-fit-memory-") as tmp:
        video = args.video
        t0 = time.monotonic()
        if video is None:
            print(f"writing a {args.minutes:g} min {args.width}x{args.height} {args.fps:g} fps recording ...")
            video = write_recording(args.keep or Path(tmp) / "recording.mp4", args.minutes, args.width, args.height,
                                    args.fps)
        write_s = time.monotonic() - t0
        cap = cv2.VideoCapture(str(video))
        width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps, count = cap.get(cv2.CAP_PROP_FPS), int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        cap.release()
        full_res_gb = count * width * height * 3 / 2**30
        print(f"{video}: {width}x{height}, {count} frames at {fps:g} fps ({video.stat().st_size / 2**20:.0f} MB); "
              f"holding every frame at full resolution would take {full_res_gb:.1f} GB")

        # the two children run side by side (each one's peak RSS is its own; the machine is shared anyway)
        out = Path(tmp) / "fitted"
        print(f"decode only, and fit --steps {args.steps}, in two child processes ...")
        with tempfile.TemporaryFile("w+") as dlog, tempfile.TemporaryFile("w+") as flog:
            decode = start_child([sys.executable, "-c", DECODE_ONLY, str(video), args.model], env, dlog)
            fit = start_child([sys.executable, "-m", "edge_jepa.cli.main", "fit", "--source", str(video), "--out",
                               str(out), "--model", args.model, "--steps", str(args.steps), "--minutes", "30",
                               "--threads", str(args.threads)], env, flog)
            rc, decode_mb, decode_s, text = wait_child(decode, dlog)
            print(text.strip()[-400:])
            if rc:
                raise SystemExit(f"decode child failed ({rc})")
            print(f"decode: peak RSS {decode_mb:.0f} MB, {decode_s:.0f} s")
            rc, fit_mb, fit_s, text = wait_child(fit, flog)
            print(text.strip()[-3000:])
            if rc:
                raise SystemExit(f"fit child failed ({rc})")
        print(f"fit: peak RSS {fit_mb:.0f} MB, {fit_s:.0f} s")
        card = json.loads((out / "card.json").read_text())

    result = {
        "video": {"width": width, "height": height, "fps": fps, "frames": count,
                  "minutes": round(count / fps / 60, 2) if fps else None, "generated": args.video is None,
                  "write_seconds": round(write_s, 1), "full_resolution_gb": round(full_res_gb, 1)},
        "model": args.model, "steps": args.steps, "threads": args.threads,
        "decode": {"peak_rss_mb": round(decode_mb, 1), "seconds": round(decode_s, 1)},
        "fit": {"peak_rss_mb": round(fit_mb, 1), "seconds": round(fit_s, 1)},
        "held_out": card.get("fit", {}).get("held_out"),
        "target_mb": 1024, "meets_target": fit_mb < 1024,
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count()},
        "command": " ".join(sys.argv),
    }
    path = args.json or ROOT / "benchmarks" / "results" / f"fit_memory_{Path(args.model).name}.json"
    with atomic_file(path) as f:
        f.write_text(json.dumps(result, indent=2) + "\n")
    print(f"peak RSS: decode {decode_mb:.0f} MB, whole fit {fit_mb:.0f} MB (target < 1024 MB: "
          f"{'met' if result['meets_target'] else 'NOT met'}); result: {path}")


if __name__ == "__main__":
    main()
