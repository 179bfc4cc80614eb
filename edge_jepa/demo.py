"""`edge-jepa demo`: a synthetic scene with physics violations, scored by a world model, shown and plotted."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_jepa.data.synthetic import WorldConfig, render_long_video
from edge_jepa.io import atomic_file, strict_json
from edge_jepa.models.vjepa2 import VJEPA2
from edge_jepa.runtime.base import Runner
from edge_jepa.stream.events import EventDetector, detect_events
from edge_jepa.stream.prior import prior_for
from edge_jepa.surprise import as_scorer, surprise_trace
from edge_jepa.viz import VideoWriter, annotate, plot_timeline

DEFAULT_VIOLATIONS = ((5.0, "teleport"), (10.0, "vanish"), (15.0, "color_change"), (20.0, "reverse"),
                      (25.0, "appear"))
# Events come from the live detector (edge_jepa.stream.EventDetector), run over the scene's scores as a camera
# would produce them: it calibrates on the first seconds. 4 s of scores (from 0.7 s, the first full window)
# end before the first violation at 5 s.
DEMO_WARMUP_S = 4.0


VIOLATION_TAIL_S = 1.5  # after the last violation: its target span, scored, and a moment to see it
MIN_VIOLATION_GAP_S = 1.5


def place_violations(seconds: float, window_s: float,
                     violations: tuple[tuple[float, str], ...] = DEFAULT_VIOLATIONS) -> tuple[tuple[float, str], ...]:
    """The violations inside a `seconds` scene: as given when they all fit (each VIOLATION_TAIL_S before the
    end). The default ones that do not fit are replaced by as many of their types as fit, spread evenly
    between the end of calibration (first window `window_s` + DEMO_WARMUP_S) and VIOLATION_TAIL_S before
    the end, at least MIN_VIOLATION_GAP_S apart. ValueError if not even one fits, or if violations given
    by the caller do not fit."""
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"seconds must be a finite number > 0, got {seconds}")
    first = window_s + DEMO_WARMUP_S + 0.5
    last = seconds - VIOLATION_TAIL_S
    if all(0 < t <= last for t, _ in violations):
        return violations
    if violations != DEFAULT_VIOLATIONS:
        outside = [f"{name} at {t:g} s" for t, name in violations if not 0 < t <= last]
        raise ValueError(f"violations {', '.join(outside)} do not fit a {seconds:g} s scene (each needs "
                         f"{VIOLATION_TAIL_S:g} s after it): move them before {last:g} s or lengthen the scene")
    if last < first:
        raise ValueError(f"a {seconds:g} s demo is too short: the detector calibrates until {first - 0.5:.1f} s "
                         f"(one {window_s:.1f} s window + {DEMO_WARMUP_S:g} s) and each violation needs "
                         f"{VIOLATION_TAIL_S:g} s after it; use --seconds {math.ceil(first + VIOLATION_TAIL_S)} "
                         "or more")
    n = min(len(violations), 1 + int((last - first) // MIN_VIOLATION_GAP_S))
    step = (last - first) / max(1, n - 1)
    return tuple((round(first + i * step, 2), name) for i, (_, name) in enumerate(violations[:n]))


@dataclass
class DemoOutputs:
    video: Path
    plot: Path
    summary: Path
    report: dict


def run_demo(model: VJEPA2 | Runner | str = "default", out_dir: str | os.PathLike = "edge-jepa-demo", *,
             seconds: float = 30.0, seed: int = 7, violations: tuple[tuple[float, str], ...] = DEFAULT_VIOLATIONS,
             render_size: int = 192, fps: float | None = None,
             on_progress: Callable[[str, int, int], None] | None = None) -> DemoOutputs:
    """Render, score, annotate, plot and summarize. Returns the paths and the JSON report.

    Violations that do not fit in `seconds` are moved inside it (see `place_violations`). fps: the scene's frame
    rate (default: the model's); a frame-causal model scores any rate as it comes."""
    out = Path(out_dir)
    scorer = as_scorer(model, fps=fps) if fps else as_scorer(model)
    fps = scorer.fps
    violations = place_violations(seconds, scorer.config.clip.frames / fps, violations)
    out.mkdir(parents=True, exist_ok=True)
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
    detector = EventDetector(warmup_s=DEMO_WARMUP_S, prior=prior_for(scorer))  # as watch: the model's prior
    detected, thresholds = detect_events(times, scores, detector)
    events = [e.to_json() for e in detected]
    calibrated = np.isfinite(thresholds)
    threshold = float(thresholds[calibrated][-1]) if calibrated.any() else float("nan")
    truth = [(float(v["frame"]) / fps, str(v["violation"])) for v in scene.meta["violations"]]

    video_path = _write_video(out / "demo.mp4", frames, fps, scores, maps, thresholds, events, truth, on_progress)
    scored_times = times[np.isfinite(scores)]
    calibration = (float(scored_times[0]), float(scored_times[0] + DEMO_WARMUP_S)) if len(scored_times) else None
    plot_path = plot_timeline(out / "surprise.png", times, scores, threshold=thresholds,
                              events=[(e["start_s"], e["end_s"]) for e in events], truth=truth,
                              calibration=calibration,
                              title=f"surprise of {scorer.config.name} on a synthetic scene (seed {seed})")
    target_s = (scorer.config.clip.frames - scorer.config.clip.context_frames) / fps
    per_violation, false_events = _match_events(times, scores, events, truth, target_s + 1.0 / fps)
    matched = sum(v["detected"] for v in per_violation)
    report = {
        "model": scorer.config.name,
        "backend": scorer.backend,
        "seconds": seconds, "fps": fps, "frames": len(frames), "seed": seed,
        "threshold": threshold,  # the live detector's last upper threshold (it adapts; NaN if never calibrated)
        "detector": {"warmup_s": detector.warmup_s, "k": detector.k, "k_low": detector.k_low,
                     "min_duration_s": detector.min_duration_s,
                     "prior": detector.prior.to_json() if detector.prior is not None else None},
        "baseline_median": float(np.nanmedian(scores)),
        "violations": per_violation,
        "detected": f"{matched}/{len(per_violation)}",
        "false_events": len(false_events),
        "events": events,
        "outputs": {"video": str(video_path), "plot": str(plot_path)},
    }
    summary_path = out / "summary.json"
    with atomic_file(summary_path) as tmp:
        tmp.write_text(strict_json(report))
    return DemoOutputs(video_path, plot_path, summary_path, report)


def _write_video(path: Path, frames: np.ndarray, fps: float, scores: np.ndarray, maps: dict[int, np.ndarray],
                 thresholds: np.ndarray, events: list[dict], truth: list[tuple[float, str]],
                 on_progress: Callable[[str, int, int], None] | None) -> Path:
    """The annotated MP4: each frame with its heat map, the score history, the threshold and the violation."""
    vmax = float(np.nanpercentile([m.max() for m in maps.values()], 99)) if maps else 1.0
    times = np.arange(len(frames)) / fps
    calibrated = np.isfinite(thresholds)
    with VideoWriter(path, fps) as writer:
        for i, frame in enumerate(frames):
            active = any(e["start_s"] <= times[i] <= e["end_s"] for e in events)
            label = f"t={times[i]:5.1f}s  surprise {scores[i]:.3f}" if np.isfinite(scores[i]) else \
                f"t={times[i]:5.1f}s  warming up"
            recent = [v for t, v in truth if t <= times[i] < t + 1.0]
            if recent:
                label += f"  [{recent[0]}]"
            writer.write(annotate(frame, heatmap=maps.get(i), vmax=vmax, history=scores[: i + 1].tolist(),
                                  threshold=float(thresholds[i]) if calibrated[i] else None, label=label,
                                  active=active))
            if on_progress and (i % 25 == 0 or i == len(frames) - 1):
                on_progress("render", i + 1, len(frames))
    return path


def _match_events(times: np.ndarray, scores: np.ndarray, events: list[dict], truth: list[tuple[float, str]],
                  reach_s: float) -> tuple[list[dict], list[dict]]:
    """(per violation: peak score after it and whether an event covers it, the events near no violation);
    a violation at t can show up to `reach_s` later (the target span of the window)."""
    per_violation = []
    for t, name in truth:
        window = (times >= t) & (times <= t + reach_s)
        peak = float(np.nanmax(scores[window])) if np.isfinite(scores[window]).any() else float("nan")
        hit = any(e["start_s"] <= t + reach_s and e["end_s"] >= t for e in events)
        per_violation.append({"time_s": t, "violation": name, "peak_score_after": peak, "detected": hit})
    false_events = [e for e in events if not any(t - 0.1 <= e["peak_s"] <= t + reach_s for t, _ in truth)]
    return per_violation, false_events
