"""Benchmark the real-time stream loop: a synthetic 30 FPS camera, the full `watch` pipeline (headless).

    python benchmarks/stream_loop.py                       # 60 s, default model, 640x480 @ 30 FPS
    python benchmarks/stream_loop.py --seconds 600         # the 10-minute memory check
    python benchmarks/stream_loop.py --model bundle_dir --threads 2 --json out.json

The camera plays a rendered synthetic scene (20 s, looped; a few physics violations included) at 30 FPS,
upscaled to the camera resolution, paced by the wall clock: frames inference cannot keep up with are
dropped by the loop, never queued. Reports surprise updates/s, frame-to-score latency (capture of a
window's last frame -> its score available), drops, and the process RSS over time (sampled every second;
flat memory = no queue growth). Targets (issue 6, 2 CPU cores): >= 10 updates/s, p90 <= 150 ms, flat RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_jepa.bench.memory import current_rss_mb  # noqa: E402
from edge_jepa.bench.schema import save_rows  # noqa: E402


class RssMonitor(threading.Thread):
    def __init__(self, every_s: float = 1.0):
        super().__init__(daemon=True)
        self.every_s, self.samples, self.stop_event = every_s, [], threading.Event()
        self.t0 = time.monotonic()

    def run(self) -> None:
        while not self.stop_event.wait(self.every_s):
            self.samples.append((time.monotonic() - self.t0, current_rss_mb()))

    def report(self, settle_s: float) -> dict:
        s = np.asarray([x for x in self.samples if x[0] >= settle_s] or self.samples, float)
        slope = float(np.polyfit(s[:, 0], s[:, 1], 1)[0] * 60) if len(s) > 2 else float("nan")
        per_minute = [round(float(mb), 1) for t, mb in self.samples if int(t) % 60 == 0 and t >= 59]
        return {"rss_start_mb": round(float(s[0, 1]), 1), "rss_end_mb": round(float(s[-1, 1]), 1),
                "rss_each_minute_mb": per_minute,
                "rss_max_mb": round(float(s[:, 1].max()), 1), "rss_slope_mb_per_min": round(slope, 3),
                "settled_after_s": settle_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default", help="model dir, export bundle or an embedded model "
                        "('default' = 'world', frame-causal; 'window')")
    parser.add_argument("--seconds", type=float, default=60.0, help="wall-clock duration (600 for the memory check)")
    parser.add_argument("--fps", type=float, default=30.0, help="camera frame rate")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds before memory is tracked")
    parser.add_argument("--json", default=None, help="write the report here too")
    parser.add_argument("--bench-json", default=None,
                        help="also write one row in the bench schema (latency = frame-to-score, fps = updates/s)")
    args = parser.parse_args()

    import torch

    from edge_jepa.data.synthetic import WorldConfig, render_long_video
    from edge_jepa.stream import ArraySource, SourceFrame, watch
    from edge_jepa.surprise import as_scorer

    if args.threads:
        torch.set_num_threads(args.threads)
    runner = as_scorer(args.model)  # a window model's scorer or a frame-causal model's (the default)
    scene = render_long_video(101, 20.0, WorldConfig(size=160, fps=args.fps),
                              [(6.0, "teleport"), (11.0, "vanish"), (16.0, "color_change")])

    class Camera(ArraySource):
        """The rendered scene, looped, at the camera's resolution and frame rate (paced by the wall clock)."""

        def _read(self) -> SourceFrame | None:
            frame = super()._read()
            return SourceFrame(cv2.resize(frame.image, (args.width, args.height), interpolation=cv2.INTER_LINEAR),
                               frame.t)

    camera = Camera(scene.frames, fps=args.fps, realtime=True, loop=True, name="synthetic camera")
    monitor = RssMonitor()
    monitor.start()
    with tempfile.TemporaryDirectory() as out:
        summary = watch(camera, model=runner, headless=True, out=out, max_seconds=args.seconds)
    monitor.stop_event.set()
    s = summary.stats
    report = {
        "model": summary.model, "backend": summary.backend, "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "machine": platform.machine(), "source": f"{args.width}x{args.height} @ {args.fps:g} FPS (synthetic)",
        "seconds": round(s.wall_s, 1),
        "capture_fps": round(s.capture_fps, 2), "updates_per_s": round(s.update_fps, 2),
        "render_fps": round(s.render_fps, 2),
        "latency_ms": {k: round(v, 1) for k, v in s.latency_ms.items()},
        "windows_scored": s.windows_scored, "windows_dropped": s.windows_dropped,
        "frames_skipped_by_camera": s.frames_skipped, "render_drops": s.render_drops,
        "ring_peak_frames": s.ring_peak_frames, "events": len(summary.events),
        **monitor.report(args.settle),
    }
    report["targets_met"] = {"updates_per_s>=10": report["updates_per_s"] >= 10,
                             "p90_latency<=150ms": report["latency_ms"]["p90"] <= 150}
    print(json.dumps(report, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    if args.bench_json:
        save_rows([stream_row(report, runner, args)], args.bench_json)


def stream_row(report: dict, runner, args: argparse.Namespace):
    """The stream loop as a bench row: end-to-end frame-to-score latency percentiles and surprise updates/s."""
    from edge_jepa.bench.run import machine_description
    from edge_jepa.bench.schema import BenchRow

    lat = report["latency_ms"]
    backend, _, precision = runner.backend.partition("/")
    inner = getattr(runner, "runner", None) or getattr(getattr(runner, "stepper", None), "bundle", None)  # files
    return BenchRow(format=backend, precision=precision, model=runner.config.name, source=args.model,
                    frames=runner.frames_per_window, size=runner.size, threads=report["torch_threads"],
                    p50_ms=lat["p50"], p90_ms=lat["p90"], p99_ms=lat["p99"], fps=report["updates_per_s"],
                    peak_rss_mb=report["rss_max_mb"], size_mb=getattr(inner, "size_bytes", None) and
                    inner.size_bytes / 1e6, tool="benchmarks/stream_loop.py", device=machine_description(),
                    notes=f"stream loop end to end: {report['source']}, {report['seconds']} s; latency = capture of a "
                          f"window's last frame -> its score; fps = surprise updates/s; "
                          f"{report['windows_dropped']} stale windows dropped")


if __name__ == "__main__":
    main()
