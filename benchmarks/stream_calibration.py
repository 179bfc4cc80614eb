"""How the stream detector's defaults behave with a model: detections per violation type and false alarms.

For each scene seed, one continuous synthetic scene is rendered at the model's frame rate with violations
of every type at known times, and the same seed again without violations (once with the world's occluder
setting and once with no occluder). The model scores every window; the online detector (`EventDetector`
with the given settings, the one `edge-jepa watch` runs) turns the scores into events, exactly as
`detect_events` replays a recorded trace. A violation counts as detected when an event starts within
[t - 0.2 s, t + 1.0 s] of it; every other event is a false alarm.

    python benchmarks/stream_calibration.py                       # the embedded default, seeds 100-109
    python benchmarks/stream_calibration.py --model runs/x/model --k 5 --json out.json

Frames go straight from the renderer to the model (no MP4 round trip), so codec noise is not included.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from edge_jepa.data.synthetic import VIOLATIONS, WorldConfig, render_long_video  # noqa: E402
from edge_jepa.io import atomic_file  # noqa: E402
from edge_jepa.stream.events import EventDetector, detect_events  # noqa: E402
from edge_jepa.surprise import SurpriseScorer, as_scorer, surprise_scores  # noqa: E402

TOLERANCE = (-0.2, 1.0)


def schedule(seconds: float, warmup_s: float, count: int) -> list[tuple[float, str]]:
    """`count` violations cycling through every type, evenly spaced after the detector's warm-up."""
    start = warmup_s + 3.0
    step = (seconds - 2.0 - start) / max(1, count - 1)
    if step < 2.0:
        raise SystemExit(f"{seconds:g} s is too short for {count} violations 2 s apart after a {warmup_s:g} s "
                         "warm-up; pass a longer --seconds or fewer --violations")
    return [(round(start + i * step, 2), VIOLATIONS[i % len(VIOLATIONS)]) for i in range(count)]


def events_of(runner: SurpriseScorer, frames: np.ndarray, detector: EventDetector) -> list:
    scores = surprise_scores(runner, frames)
    times = np.arange(len(frames)) / runner.fps
    events, _ = detect_events(times, scores, detector)
    return events


def starts_near(event, t: float) -> bool:
    """The event starts within TOLERANCE of a violation at time t."""
    return t + TOLERANCE[0] <= event.start_s <= t + TOLERANCE[1]


def run(model: str, seeds: list[int], *, seconds: float, count: int, size: int, detector_args: dict,
        threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    runner = as_scorer(model)  # a window model's scorer or a frame-causal model's (the default)
    fps = runner.fps
    world = WorldConfig(size=size, fps=fps)
    no_occluder = WorldConfig(size=size, fps=fps, occluder_prob=0.0)
    plan = schedule(seconds, detector_args["warmup_s"], count)
    hits = {v: [0, 0] for v in VIOLATIONS}  # type -> [detected, total]
    false_violation_scenes, false_plausible, false_no_occluder = 0, 0, 0
    started = time.perf_counter()
    for seed in seeds:
        scene = render_long_video(seed, seconds, world, plan)
        events = events_of(runner, scene.frames, EventDetector(**detector_args))
        truth = [(float(v["frame"]) / fps, str(v["violation"])) for v in scene.meta["violations"]]
        for t, name in truth:
            hits[name][1] += 1
            hits[name][0] += any(starts_near(e, t) for e in events)
        false_violation_scenes += sum(not any(starts_near(e, t) for t, _ in truth) for e in events)
        false_plausible += len(events_of(runner, render_long_video(seed, seconds, world).frames,
                                         EventDetector(**detector_args)))
        false_no_occluder += len(events_of(runner, render_long_video(seed, seconds, no_occluder).frames,
                                           EventDetector(**detector_args)))
        detected, total = (sum(h[i] for h in hits.values()) for i in (0, 1))
        print(f"seed {seed}: {detected}/{total} detected so far", flush=True)
    minutes = len(seeds) * seconds / 60
    return {
        "model": runner.config.name, "backend": runner.backend, "model_fps": fps,
        "seeds": seeds, "seconds_per_scene": seconds, "violations_per_scene": count, "size": size,
        "detector": detector_args, "tolerance_s": TOLERANCE,
        "detected": {v: {"detected": d, "total": n} for v, (d, n) in hits.items()},
        "detected_total": [sum(h[0] for h in hits.values()), sum(h[1] for h in hits.values())],
        "false_events": {"violation_scenes": false_violation_scenes, "plausible_scenes": false_plausible,
                         "plausible_no_occluder": false_no_occluder, "minutes_each": round(minutes, 2)},
        "wall_s": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> dict:
    defaults = EventDetector()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="default")
    p.add_argument("--seeds", default="100-109", help="first-last (inclusive) or a comma list")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--violations", type=int, default=8, help="violations per scene (cycling through the types)")
    p.add_argument("--size", type=int, default=128, help="rendered frame size (the model resizes)")
    p.add_argument("--warmup", type=float, default=defaults.warmup_s)
    p.add_argument("--k", type=float, default=defaults.k)
    p.add_argument("--k-low", type=float, default=defaults.k_low)
    p.add_argument("--min-duration", type=float, default=defaults.min_duration_s)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "stream_calibration.json")
    a = p.parse_args(argv)
    if "-" in a.seeds:
        lo, hi = (int(x) for x in a.seeds.split("-"))
        seeds = list(range(lo, hi + 1))
    else:
        seeds = [int(x) for x in a.seeds.split(",")]
    detector_args = {"warmup_s": a.warmup, "k": a.k, "k_low": a.k_low, "min_duration_s": a.min_duration}
    result = run(a.model, seeds, seconds=a.seconds, count=a.violations, size=a.size, detector_args=detector_args,
                 threads=a.threads)
    d, n = result["detected_total"]
    per_type = ", ".join(f"{v} {x['detected']}/{x['total']}" for v, x in result["detected"].items())
    f = result["false_events"]
    print(f"detected {d}/{n} ({per_type}); false events: {f['violation_scenes']} in the violation scenes, "
          f"{f['plausible_scenes']} in {f['minutes_each']:g} min of plausible scenes, {f['plausible_no_occluder']} "
          f"without an occluder")
    with atomic_file(a.json) as tmp:
        tmp.write_text(json.dumps(result, indent=2))
    print(f"result: {a.json}")
    return result


if __name__ == "__main__":
    main()
