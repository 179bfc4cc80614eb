"""Every surprise variant of one or more models next to the pixel baselines, on the same pairs, at several rates.

For each frame rate the matched pairs (plausible / one violation) are rendered once from the given seed block and
scored by:
    window models        mean (V-JEPA's mean L1 over target tokens), max (the largest target-token L1)
    frame-causal models  mean, max, nll (Laplace NLL under the predicted scale), zmax (largest scaled error),
                         scene_excess / scene_z (errors relative to the clip's running per-token statistics)
    pixel baselines      frame_difference, linear_extrapolation (mean |error| of "no change" / "constant velocity")
A clip's score is its maximum over frames (the protocol of `edge-jepa eval-surprise`); reported are AUROC and
pairwise accuracy, overall and per violation type. Choose on `--split validation` (seeds 1,500,000,000+); report
`--split held-out` (seeds 2,000,000,000+, the block of `eval-surprise`) once for the chosen variant.

    python benchmarks/world_model_eval.py --model default --model runs/world/model --fps 30 15 10 \\
        --pairs-per-type 20 --split validation --json benchmarks/results/world_validation.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from edge_jepa.checkpoints import load  # noqa: E402
from edge_jepa.data.synthetic import VIOLATIONS, WorldConfig, eval_set  # noqa: E402
from edge_jepa.evaluation import BASELINES, EVAL_SEED_BASE, PairScores, pixel_baseline_scores, summarize  # noqa: E402
from edge_jepa.io import atomic_file  # noqa: E402
from edge_jepa.models.world import SCORINGS, token_surprise  # noqa: E402
from edge_jepa.photometric import PHOTOMETRIC_MODES  # noqa: E402
from edge_jepa.surprise import FrameCausalScorer, surprise_trace  # noqa: E402

SPLITS = {"validation": 1_500_000_000, "held-out": EVAL_SEED_BASE}


def variant_scores(model, frames: np.ndarray, fps: float, caches: tuple[str, ...] = ("kv",),
                   photometric: str | None = None) -> dict[str, np.ndarray]:
    """Per-frame scores [F] of every surprise variant of `model` on `frames` (NaN before the first window).
    Frame-causal models: every scoring for each stream step in `caches` ("kv" rows carry no suffix).
    photometric: the scorers' photometric normalization (None: the default; edge_jepa.photometric)."""
    out: dict[str, np.ndarray] = {}
    if model.config.kind == "frame_causal":
        for cache in caches:
            results = FrameCausalScorer(model, fps=fps, cache=cache, photometric=photometric).trace(frames)
            for scoring in SCORINGS:
                s = np.full(len(frames), np.nan)
                for r in results:
                    err, log_b = (torch.from_numpy(a.reshape(-1)) for a in (r.token_errors, r.log_scale))
                    s[r.frame_index] = float(token_surprise(err, log_b, scoring))
                out[scoring if cache == "kv" else f"{scoring}[{cache}]"] = s
            for name, s in scene_relative(results, len(frames)).items():
                out[name if cache == "kv" else f"{name}[{cache}]"] = s
        return out
    results = surprise_trace(model, frames, photometric=photometric)  # window models see the frames as they come
    for name, reduce in (("mean", np.mean), ("max", np.max)):
        s = np.full(len(frames), np.nan)
        for r in results:
            s[r.frame_index] = float(reduce(r.token_errors))
        out[name] = s
    return out


def scene_relative(results, num_frames: int, floor: float = 0.05, min_frames: int = 4) -> dict[str, np.ndarray]:
    """Errors relative to the scene's own running per-location statistics (issue 18, item 3's second example):
    each token's error minus the mean of that token's errors over the clip's earlier scored frames
    ("scene_excess", the largest over tokens), and the same over their standard deviation + `floor`
    ("scene_z"); NaN until `min_frames` earlier frames are seen (score them on clips long enough for that:
    --clip-frames). Research rows only: measured on validation, not a product scoring."""
    excess, z = np.full(num_frames, np.nan), np.full(num_frames, np.nan)
    seen: list[np.ndarray] = []
    for r in results:
        e = r.token_errors.reshape(-1).astype(np.float64)
        if len(seen) >= min_frames:
            prev = np.stack(seen)
            mean, std = prev.mean(0), prev.std(0)
            excess[r.frame_index] = float(np.max(e - mean))
            z[r.frame_index] = float(np.max((e - mean) / (std + floor)))
        seen.append(e)
    return {"scene_excess": excess, "scene_z": z}


def evaluate(models: dict[str, torch.nn.Module], *, fps: float, seed_base: int, pairs_per_type: int,
             size: int = 64, caches: tuple[str, ...] = ("kv",), photometrics: tuple[str | None, ...] = (None,),
             clip_frames: int | None = None) -> dict:
    """clip_frames: frames per clip (default: two windows + 4, the violation at least a window from either end;
    longer clips keep the violation at least half the clip minus 4 frames from either end)."""
    window = max(m.config.clip.frames for m in models.values())
    frames = clip_frames or window * 2 + 4
    world = WorldConfig(size=size, num_frames=frames, fps=fps, violation_margin=max(window, frames // 2 - 4))
    pairs = eval_set(range(seed_base, seed_base + pairs_per_type * len(VIOLATIONS)), world, VIOLATIONS)
    rows: dict[str, list[PairScores]] = {}
    for plausible, violating in pairs:
        v, vf = violating.violation, int(violating.violation_frame)
        for name, model in models.items():
            for ph in photometrics:
                a, b = (variant_scores(model, c.frames, fps, caches, ph) for c in (plausible, violating))
                suffix = f" photometric={ph}" if len(photometrics) > 1 else ""
                for variant in a:
                    rows.setdefault(f"{name}:{variant}{suffix}", []).append(PairScores(v, vf, a[variant], b[variant]))
        for k in BASELINES:
            a, b = (pixel_baseline_scores(c.frames, k, size=size, mode="resize", window=window)
                    for c in (plausible, violating))
            rows.setdefault(k, []).append(PairScores(v, vf, a, b))
    tolerance = 2
    return {"fps": fps, "seeds": [seed_base, seed_base + len(pairs)], "pairs": len(pairs), "clip_frames": frames,
            "variants": {name: summarize(group, tolerance) for name, group in rows.items()}}


def print_table(report: dict) -> None:
    types = list(VIOLATIONS)
    print(f"\n{report['fps']:g} fps, {report['pairs']} pairs (seeds {report['seeds'][0]}+)")
    print(f"{'variant':42} {'AUROC':>6} {'pairw':>6}  " + " ".join(f"{t[:6]:>6}" for t in types))
    for name, s in report["variants"].items():
        per = " ".join(f"{s['per_type'][t]['pairwise']:6.2f}" if t in s["per_type"] else "     -" for t in types)
        print(f"{name:42} {s['overall']['auroc']:6.3f} {s['overall']['pairwise']:6.3f}  {per}")


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", default=None, help="model dir or 'default' (repeatable)")
    p.add_argument("--fps", type=float, nargs="+", default=[30.0])
    p.add_argument("--split", choices=sorted(SPLITS), default="validation")
    p.add_argument("--pairs-per-type", type=int, default=20)
    p.add_argument("--cache", nargs="+", choices=FrameCausalScorer.CACHES, default=["kv"],
                   help="frame-causal stream steps to score (rows of 'rerun' carry a [rerun] suffix)")
    p.add_argument("--photometric", nargs="+", choices=PHOTOMETRIC_MODES, default=None,
                   help="photometric normalizations to compare (default: the scorers' default only)")
    p.add_argument("--clip-frames", type=int, default=None, help="frames per clip (default: two windows + 4)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if args.pairs_per_type < 1:
        p.error(f"--pairs-per-type must be >= 1, got {args.pairs_per_type}")
    if args.threads:
        torch.set_num_threads(args.threads)
    models = {}
    for source in args.model or ["default"]:
        m = load(source)
        models[f"{m.config.name}({Path(source).name})"] = m
    reports = []
    with torch.inference_mode():
        for fps in args.fps:
            reports.append(evaluate(models, fps=fps, seed_base=SPLITS[args.split], pairs_per_type=args.pairs_per_type,
                                    caches=tuple(args.cache), photometrics=tuple(args.photometric or [None]),
                                    clip_frames=args.clip_frames))
            print_table(reports[-1])
    if args.json:
        with atomic_file(args.json) as tmp:
            tmp.write_text(json.dumps({"split": args.split, "models": list(args.model or ["default"]),
                                       "reports": reports}, indent=2))
    return reports


if __name__ == "__main__":
    main()
