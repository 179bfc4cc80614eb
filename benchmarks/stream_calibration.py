"""How the stream detector's defaults behave with a model: detections per violation type and false alarms.

For each scene seed, one continuous synthetic scene is rendered at the model's frame rate with violations
of every type at known times, and the same seed again without violations (once with the world's occluder
setting and once with no occluder). The model scores every window; the online detector (`EventDetector`
with the given settings and the model's surprise prior, as `edge-jepa watch` runs it) turns the scores into
events, exactly as `detect_events` replays a recorded trace. A frame-causal model is scored at `--fps` (default:
its own rate), a window model at its own rate. A violation counts as detected when an event starts within
[t - 0.2 s, t + 1.0 s] of it; every other event is a false alarm.

    python benchmarks/stream_calibration.py                       # the embedded default, seeds 100-109
    python benchmarks/stream_calibration.py --model runs/x/model --k 5 --json out.json
    python benchmarks/stream_calibration.py --model world --fps 10 --json out.json

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
from edge_jepa.stream.prior import prior_for  # noqa: E402
from edge_jepa.surprise import as_scorer, surprise_trace  # noqa: E402

TOLERANCE = (-0.2, 1.0)


def schedule(seconds: float, warmup_s: float, count: int) -> list[tuple[float, str]]:
    """`count` violations cycling through every type, evenly spaced after the detector's warm-up."""
    start = warmup_s + 3.0
    step = (seconds - 2.0 - start) / max(1, count - 1)
    if step < 2.0:
        raise SystemExit(f"{seconds:g} s is too short for {count} violations 2 s apart after a {warmup_s:g} s "
                         "warm-up; pass a longer --seconds or fewer --violations")
    return [(round(start + i * step, 2), VIOLATIONS[i % len(VIOLATIONS)]) for i in range(count)]


def scene_scores(scorer, frames: np.ndarray, scorings: list[str]) -> dict[str, np.ndarray]:
    """Per-frame scores [F] of `frames` under each scoring (NaN before the first window), from one pass."""
    import torch

    from edge_jepa.models.world import token_surprise

    scores = {name: np.full(len(frames), np.nan) for name in scorings}
    for r in surprise_trace(scorer, frames):
        err = torch.from_numpy(r.token_errors.reshape(-1).astype(np.float32))
        log_b = torch.from_numpy(r.log_scale.reshape(-1)) if r.log_scale is not None else torch.zeros_like(err)
        for name in scorings:
            scores[name][r.frame_index] = float(token_surprise(err, log_b, name))
    return scores


def starts_near(event, t: float) -> bool:
    """The event starts within TOLERANCE of a violation at time t."""
    return t + TOLERANCE[0] <= event.start_s <= t + TOLERANCE[1]


def tally(scenes: list[dict], fps: float, detector_args: dict, scoring: str) -> dict:
    """Detections per violation type and false events of one detector setting over the scored scenes."""
    hits = {v: [0, 0] for v in VIOLATIONS}  # type -> [detected, total]
    false = {"violations": 0, "plausible": 0, "no_occluder": 0}
    for scene in scenes:
        scores = scene["scores"][scoring]
        events, _ = detect_events(np.arange(len(scores)) / fps, scores, EventDetector(**detector_args))
        for t, name in scene["truth"]:
            hits[name][1] += 1
            hits[name][0] += any(starts_near(e, t) for e in events)
        false[scene["kind"]] += sum(not any(starts_near(e, t) for t, _ in scene["truth"]) for e in events)
    return {"detected": {v: {"detected": d, "total": n} for v, (d, n) in hits.items()},
            "detected_total": [sum(h[0] for h in hits.values()), sum(h[1] for h in hits.values())],
            "false_events": {"violation_scenes": false["violations"], "plausible_scenes": false["plausible"],
                             "plausible_no_occluder": false["no_occluder"]}}


def run(model: str, seeds: list[int], *, seconds: float, count: int, size: int, detector_args: dict,
        threads: int, fps: float | None = None, use_prior: bool = True, scorings: list[str] | None = None,
        ks: list[float] | None = None) -> dict:
    """Score every scene once per model, then replay the detector for each scoring x k. The result's top level is
    the first scoring at the first k (as `watch` would run it); "sweep" holds every combination."""
    import torch

    torch.set_num_threads(threads)
    scorer = as_scorer(model, fps=fps) if fps else as_scorer(model)  # what watch scores with
    fps = scorer.fps
    own = getattr(scorer, "scoring", "mean")  # a window model's surprise is the mean over its target tokens
    scorings = scorings or [own]
    ks = ks or [detector_args["k"]]
    world = WorldConfig(size=size, fps=fps)
    no_occluder = WorldConfig(size=size, fps=fps, occluder_prob=0.0)
    plan = schedule(seconds, detector_args["warmup_s"], count)
    started = time.perf_counter()
    scenes = []
    for seed in seeds:
        scene = render_long_video(seed, seconds, world, plan)
        truth = [(float(v["frame"]) / fps, str(v["violation"])) for v in scene.meta["violations"]]
        plausible = render_long_video(seed, seconds, world).frames
        quiet = render_long_video(seed, seconds, no_occluder).frames
        for kind, frames in (("violations", scene.frames), ("plausible", plausible), ("no_occluder", quiet)):
            scenes.append({"kind": kind, "truth": truth if kind == "violations" else [],
                           "scores": scene_scores(scorer, frames, scorings)})
        print(f"seed {seed}: scored ({time.perf_counter() - started:.0f} s)", flush=True)
    priors = {}
    for name in scorings:
        if not use_prior:
            priors[name] = None
        elif name == own:
            priors[name] = prior_for(scorer)
        else:  # the prior of another scoring (frame-causal priors are per scoring; window priors are the mean's)
            priors[name] = prior_for(as_scorer(model, fps=fps, scoring=name)) if hasattr(scorer, "scoring") else None
    minutes = round(len(seeds) * seconds / 60, 2)
    sweep = []
    for name in scorings:
        prior = priors[name]
        for k in ks:
            args = {**detector_args, "k": k, "prior": prior, "use_prior": prior is not None}
            row = tally(scenes, fps, args, name)
            row["false_events"]["minutes_each"] = minutes
            sweep.append({"scoring": name, "k": k, "prior": None if prior is None else
                          {"baseline": prior.baseline, "spread": prior.spread, "fps": prior.fps}, **row})
    first = sweep[0]
    return {
        "model": scorer.config.name, "backend": scorer.backend, "model_fps": fps,
        "seeds": seeds, "seconds_per_scene": seconds, "violations_per_scene": count, "size": size,
        "detector": {**detector_args, "k": first["k"], "use_prior": first["prior"] is not None},
        "scoring": first["scoring"], "prior": first["prior"], "tolerance_s": TOLERANCE,
        "detected": first["detected"], "detected_total": first["detected_total"],
        "false_events": first["false_events"], "sweep": sweep,
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
    p.add_argument("--k", type=float, nargs="+", default=[defaults.k], help="detector k (several: a sweep)")
    p.add_argument("--scoring", nargs="+", default=None, help="frame scorings to compare (default: the model's "
                   "own; frame-causal: mean max nll zmax, window: mean max)")
    p.add_argument("--k-low", type=float, default=defaults.k_low)
    p.add_argument("--min-duration", type=float, default=defaults.min_duration_s)
    p.add_argument("--fps", type=float, default=None, help="frame rate of the scenes (frame-causal models; "
                   "default: the model's)")
    p.add_argument("--no-prior", action="store_true", help="calibrate on the scene only (no surprise prior)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "stream_calibration.json")
    a = p.parse_args(argv)
    if "-" in a.seeds:
        lo, hi = (int(x) for x in a.seeds.split("-"))
        seeds = list(range(lo, hi + 1))
    else:
        seeds = [int(x) for x in a.seeds.split(",")]
    detector_args = {"warmup_s": a.warmup, "k": a.k[0], "k_low": a.k_low, "min_duration_s": a.min_duration}
    result = run(a.model, seeds, seconds=a.seconds, count=a.violations, size=a.size, detector_args=detector_args,
                 threads=a.threads, fps=a.fps, use_prior=not a.no_prior, scorings=a.scoring, ks=a.k)
    for row in result["sweep"]:
        d, n = row["detected_total"]
        per_type = ", ".join(f"{v} {x['detected']}/{x['total']}" for v, x in row["detected"].items())
        f = row["false_events"]
        print(f"{row['scoring']}, k={row['k']:g}{'' if row['prior'] else ' (no prior)'}: detected {d}/{n} "
              f"({per_type}); false events: {f['violation_scenes']} in the violation scenes, "
              f"{f['plausible_scenes']} in {f['minutes_each']:g} min of plausible scenes, "
              f"{f['plausible_no_occluder']} without an occluder")
    with atomic_file(a.json) as tmp:
        tmp.write_text(json.dumps(result, indent=2))
    print(f"result: {a.json}")
    return result


if __name__ == "__main__":
    main()
