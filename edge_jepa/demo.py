"""`edge-jepa demo`: a synthetic scene with physics violations, scored by a world model, shown and plotted."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_jepa.data.synthetic import WorldConfig, render_long_video
from edge_jepa.io import atomic_file
from edge_jepa.models.vjepa2 import VJEPA2
from edge_jepa.runtime.base import Runner
from edge_jepa.surprise import SurpriseScorer, surprise_trace
from edge_jepa.viz import VideoWriter, annotate, plot_timeline

DEFAULT_VIOLATIONS = ((5.0, "teleport"), (10.0, "vanish"), (15.0, "color_change"), (20.0, "reverse"),
                      (25.0, "appear"))


@dataclass
class DemoOutputs:
    video: Path
    plot: Path
    summary: Path
    report: dict


def robust_threshold(scores: np.ndarray, k: float = 5.0) -> float:
    """median + k * 1.4826 * MAD of the finite scores: a level plausible motion rarely reaches."""
    s = scores[np.isfinite(scores)]
    med = float(np.median(s))
    mad = float(np.median(np.abs(s - med))) * 1.4826
    return med + k * max(mad, 1e-6)


def find_events(times: np.ndarray, scores: np.ndarray, threshold: float, min_gap_s: float = 1.0
                ) -> list[dict]:
    """Runs of scores above `threshold` (runs closer than `min_gap_s` merged) with their peak."""
    above = np.isfinite(scores) & (scores > threshold)
    events: list[dict] = []
    for i in np.flatnonzero(above):
        if events and times[i] - events[-1]["end_s"] <= min_gap_s:
            ev = events[-1]
            ev["end_s"] = float(times[i])
        else:
            ev = {"start_s": float(times[i]), "end_s": float(times[i]), "peak_s": float(times[i]), "peak_score": -1.0}
            events.append(ev)
        if scores[i] > ev["peak_score"]:
            ev["peak_s"], ev["peak_score"] = float(times[i]), float(scores[i])
    return events


def run_demo(model: VJEPA2 | Runner | str = "default", out_dir: str | os.PathLike = "edge-jepa-demo", *,
             seconds: float = 30.0, seed: int = 7, violations: tuple[tuple[float, str], ...] = DEFAULT_VIOLATIONS,
             render_size: int = 192, on_progress: Callable[[str, int, int], None] | None = None) -> DemoOutputs:
    """Render, score, annotate, plot and summarize. Returns the paths and the JSON report."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scorer = SurpriseScorer(model)
    fps = scorer.fps
    world = WorldConfig(size=render_size, fps=fps, num_frames=16)
    scene = render_long_video(seed, seconds, world, violations)
    frames = scene.frames
    results = surprise_trace(scorer, frames)
    scores = np.full(len(frames), np.nan)
    maps: dict[int, np.ndarray] = {}
    for r in results:
        scores[r.frame_index] = r.score
        maps[r.frame_index] = r.heatmap
    times = np.arange(len(frames)) / fps
    threshold = robust_threshold(scores)
    events = find_events(times, scores, threshold)
    truth = [(float(v["frame"]) / fps, str(v["violation"])) for v in scene.meta["violations"]]

    vmax = float(np.nanpercentile([m.max() for m in maps.values()], 99)) if maps else 1.0
    video_path = out / "demo.mp4"
    with VideoWriter(video_path, fps) as writer:
        for i, frame in enumerate(frames):
            active = any(e["start_s"] <= times[i] <= e["end_s"] for e in events)
            label = f"t={times[i]:5.1f}s  surprise {scores[i]:.3f}" if np.isfinite(scores[i]) else \
                f"t={times[i]:5.1f}s  warming up"
            recent = [v for t, v in truth if t <= times[i] < t + 1.0]
            if recent:
                label += f"  [{recent[0]}]"
            writer.write(annotate(frame, heatmap=maps.get(i), vmax=vmax, history=scores[: i + 1].tolist(),
                                  threshold=threshold, label=label, active=active))
            if on_progress and (i % 25 == 0 or i == len(frames) - 1):
                on_progress("render", i + 1, len(frames))

    plot_path = plot_timeline(out / "surprise.png", times, scores, threshold=threshold,
                              events=[(e["start_s"], e["end_s"]) for e in events], truth=truth,
                              title=f"surprise of {scorer.runner.config.name} on a synthetic scene (seed {seed})")
    target_s = (scorer.runner.config.clip.frames - scorer.runner.config.clip.context_frames) / fps
    per_violation = []
    for t, name in truth:
        window = (times >= t) & (times <= t + target_s + 1.0 / fps)
        peak = float(np.nanmax(scores[window])) if np.isfinite(scores[window]).any() else float("nan")
        hit = any(e["start_s"] <= t + target_s + 1.0 / fps and e["end_s"] >= t for e in events)
        per_violation.append({"time_s": t, "violation": name, "peak_score_after": peak, "detected": hit})
    matched = sum(v["detected"] for v in per_violation)
    false_events = [e for e in events
                    if not any(t - 0.1 <= e["peak_s"] <= t + target_s + 1.0 / fps for t, _ in truth)]
    report = {
        "model": scorer.runner.config.name,
        "backend": f"{scorer.runner.backend}/{scorer.runner.precision}",
        "seconds": seconds, "fps": fps, "frames": len(frames), "seed": seed,
        "threshold": threshold,
        "baseline_median": float(np.nanmedian(scores)),
        "violations": per_violation,
        "detected": f"{matched}/{len(per_violation)}",
        "false_events": len(false_events),
        "events": events,
        "outputs": {"video": str(video_path), "plot": str(plot_path)},
    }
    summary_path = out / "summary.json"
    with atomic_file(summary_path) as tmp:
        tmp.write_text(json.dumps(report, indent=2))
    return DemoOutputs(video_path, plot_path, summary_path, report)
