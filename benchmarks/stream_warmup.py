"""The detector's start and its threshold under activity: issue 19's cases, measured with the real models.

Cases (each a real video file, scored as `watch --headless` scores it: every window, the world model at the
source's rate, the window model resampled to its own):
  * the two real clips in ../shared/videos (a hand with a ball in front of a wall; a street with cars);
  * `activity_start`: a car drives in at 0.2 s (the scene starts with activity) and another at 4.4 s;
  * `waving_then_car`: an arm waves from 6 s to 40 s, a car arrives at 30 s (during the waving) and at 44 s.
For each detector variant, the events (start, peak, which calibration judged them), the threshold before and at
the end of the waving, and the synthetic ground truth found (an event starting within [t - 0.2, t + 1.5] s).

    python benchmarks/stream_warmup.py --json benchmarks/results/stream_warmup.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from edge_jepa.io import atomic_file  # noqa: E402
from edge_jepa.stream.events import EventDetector, detect_events  # noqa: E402
from edge_jepa.stream.prior import prior_for  # noqa: E402
from edge_jepa.surprise import FrameCausalScorer, as_scorer, surprise_trace  # noqa: E402
from edge_jepa.video import read_video  # noqa: E402
from tests.camera_scenes import write_camera_scene  # noqa: E402

SHARED = ROOT.parent / "shared" / "videos"
SYNTHETIC = {
    "activity_start": (dict(seconds=20.0, cars=(0.2, 4.4)), (0.2, 4.4)),
    "waving_then_car (arm 0.30)": (dict(seconds=50.0, cars=(30.0, 44.0), waving=(6.0, 40.0), arm=0.30), (30.0, 44.0)),
}
VARIANTS = {  # name: (EventDetector settings, use the model's prior)
    "no prior, free rise (the old rules + the warm-up review)": (dict(max_rise=None), False),
    "no prior, rise <= 10%/min": (dict(), False),
    "prior, free rise": (dict(max_rise=None), True),
    "prior, rise <= 10%/min (default)": (dict(), True),
    "prior, learn quiet only (learn_k = k_low), free rise": (dict(learn_k=3.0, max_rise=None), True),
    "prior, learn quiet only, rise <= 10%/min": (dict(learn_k=3.0), True),
    "prior, growth cap 1.5x, free rise": (dict(max_growth=1.5, max_rise=None), True),
    "prior, 300 s history, free rise": (dict(history_s=300.0, max_rise=None), True),
    "prior, shorth statistics, rise <= 10%/min": (dict(robust="shorth"), True),
}


def trace(model: str, path: Path) -> tuple[np.ndarray, np.ndarray, object]:
    """(times, scores, scorer) of every window of a video file."""
    scorer = as_scorer(model)
    if isinstance(scorer, FrameCausalScorer):
        video = read_video(path, resize=(160, 120))
        scorer = FrameCausalScorer(scorer.model, fps=video.fps)
    else:
        video = read_video(path, fps=scorer.fps, resize=(160, 120))
    results = surprise_trace(scorer, video.frames)
    times = np.array([video.times[r.frame_index] for r in results])
    return times, np.array([r.score for r in results]), scorer


def run_case(name: str, model: str, path: Path, truth: tuple[float, ...] | None,
             waving: tuple[float, float] | None) -> dict:
    times, scores, scorer = trace(model, path)
    prior = prior_for(scorer)
    out = {"model": model, "case": name, "fps": round(float(scorer.fps), 3), "first_score_s": round(float(times[0]), 3),
           "prior": prior.to_json() if prior else None, "variants": {}}
    for vname, (settings, with_prior) in VARIANTS.items():
        det = EventDetector(**settings, prior=prior if with_prior else None)
        events, thresholds = detect_events(times, scores, det)
        row = {"events": [[round(e.start_s, 2), round(e.peak_score, 3), e.calibration] for e in events]}
        if truth is not None:
            found = [any(t - 0.2 <= e.start_s <= t + 1.5 for e in events) for t in truth]
            false = [e for e in events if not any(t - 0.2 <= e.start_s <= t + 1.5 for t in truth)]
            row["found"] = f"{sum(found)}/{len(truth)}"
            row["false_events"] = len(false)
        after = np.isfinite(thresholds) & (times > times[0] + det.warmup_s + 5.0)
        if after.any():
            row["threshold_p10_p90_after_warmup"] = [round(float(np.quantile(thresholds[after], q)), 4)
                                                     for q in (0.1, 0.9)]
        if waving is not None:
            for key, t in (("threshold_before_waving", waving[0] - 0.1), ("threshold_end_of_waving", waving[1] - 0.1)):
                row[key] = round(float(thresholds[min(int(np.searchsorted(times, t)), len(thresholds) - 1)]), 4)
        out["variants"][vname] = row
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["window", "world"])
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--clips", nargs="*", default=["trflorian_ball2.mp4", "ckuhn_traffic.mp4"],
                   help="real clips in ../shared/videos")
    p.add_argument("--synthetic", nargs="*", default=list(SYNTHETIC), help="synthetic cases")
    a = p.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        cases = []
        for name in a.synthetic:
            kwargs, truth = SYNTHETIC[name]
            cases.append((name, write_camera_scene(Path(tmp) / f"{name.split()[0]}{len(cases)}.mp4", **kwargs), truth,
                          kwargs.get("waving")))
        for clip in a.clips:
            if (SHARED / clip).exists():
                cases.append((clip, SHARED / clip, None, None))
            else:
                print(f"skipped {clip}: {SHARED} is absent")
        for model in a.models:
            for name, path, truth, waving in cases:
                r = run_case(name, model, path, truth, waving)
                results.append(r)
                prior = r["prior"]
                threshold = "none" if prior is None else round(prior["baseline"] + 6 * prior["spread"], 3)
                print(f"\n{model} on {name} ({r['fps']:g} fps, first score at {r['first_score_s']} s, prior "
                      f"threshold {threshold})")
                for vname, row in r["variants"].items():
                    extra = {k: v for k, v in row.items() if k != "events"}
                    evs = " ".join(f"{s}{'p' if c == 'prior' else 'w' if c == 'warmup' else ''}"
                                   for s, _, c in row["events"][:12])
                    print(f"  {vname:52s} {extra} events: {evs}")
    if a.json:
        with atomic_file(a.json) as tmp_path:
            tmp_path.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
