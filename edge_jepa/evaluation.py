"""Violation-of-expectation evaluation on held-out synthetic scenes (`edge-jepa eval-surprise`).

Each matched pair is one scene rendered twice: plausible, and with one violation at a known frame. A clip's
score is its maximum surprise over windows. Reported: AUROC (violating vs plausible clips), pairwise
accuracy (violating clip scores higher than its own plausible twin), both per violation type, and how often
the surprise peak of a violating clip falls within the target span after the violation. Pairwise
accuracy counts ties as misses and reports their share: the clips of a pair are identical up to the
violation, so a tie means the violation never raised the surprise above the scene's ordinary peak.

Next to the model, the same pairs are scored by two model-free pixel baselines (on the model's own
preprocessed frames, attributed to the same frames as the model's windows): `frame_difference` (mean
|f_t - f_{t-1}|, i.e. "predict no change") and `linear_extrapolation` (mean |f_t - (2 f_{t-1} - f_{t-2})|).
A world model is only useful where it beats them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from edge_jepa.data.synthetic import VIOLATIONS, WorldConfig, eval_set
from edge_jepa.models.vjepa2 import VJEPA2
from edge_jepa.preprocess import resize_frame
from edge_jepa.runtime.base import Runner
from edge_jepa.surprise import as_scorer, surprise_scores

# Held-out scene seeds: training draws its scenes from seeds < 2**31 derived from (seed, step); evaluation
# uses this disjoint block (training seeds are (seed * 1_000_003 + step * batch) mod 2**31 < 10**9 for any
# run shorter than ~30M clips, see edge_jepa.train.data).
EVAL_SEED_BASE = 2_000_000_000


def auroc(negatives: Iterable[float], positives: Iterable[float]) -> float:
    """Area under the ROC curve = P(positive > negative), ties counting half (Mann-Whitney U)."""
    neg, pos = np.asarray(list(negatives), float), np.asarray(list(positives), float)
    if len(neg) == 0 or len(pos) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two score vectors (NaNs dropped pairwise)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return float("nan")
    ra, rb = _ranks(a[ok]), _ranks(b[ok])
    return float(np.corrcoef(ra, rb)[0, 1])


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x))
    for v in np.unique(x):  # average ranks of ties
        tie = x == v
        if tie.sum() > 1:
            ranks[tie] = ranks[tie].mean()
    return ranks


@dataclass
class PairScores:
    violation: str
    violation_frame: int
    plausible: np.ndarray  # per-frame surprise [F]
    violating: np.ndarray
    baselines: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # name -> (plaus., viol.)


BASELINES = ("frame_difference", "linear_extrapolation")


def pixel_baseline_scores(frames: np.ndarray, kind: str, *, size: int, mode: str, window: int) -> np.ndarray:
    """Per-frame score [F] of a model-free baseline; NaN where the model (windows of `window` frames) has none."""
    if kind not in BASELINES:
        raise ValueError(f"unknown baseline {kind!r}; choose from {', '.join(BASELINES)}")
    x = np.stack([resize_frame(f, size, mode) for f in frames]).astype(np.float32) / 255.0  # [F, S, S, 3]
    scores = np.full(len(x), np.nan)
    if len(x) < max(window, 3):
        return scores
    guess = x[1:-1] if kind == "frame_difference" else 2 * x[1:-1] - x[:-2]  # prediction of frames 2..F-1
    err = np.abs(x[2:] - guess)
    scores[2:] = err.mean(axis=(1, 2, 3))
    scores[: window - 1] = np.nan
    return scores


def world_for(runner) -> WorldConfig:
    """Held-out scenes at the model's size and fps, long enough that a violation comes after a full window
    of normal frames (so the model has a plausible context) and is followed by the same again.
    `runner`: anything with the model's `config` (a Runner, a scorer, a model)."""
    clip = runner.config.clip
    return WorldConfig(size=max(32, clip.size), num_frames=clip.frames * 2 + 4, fps=clip.fps,
                       violation_margin=clip.frames)


def score_pairs(model: VJEPA2 | Runner | str, *, pairs_per_type: int = 20, seed_base: int = EVAL_SEED_BASE,
                violations: tuple[str, ...] = VIOLATIONS, world: WorldConfig | None = None,
                on_pair: Callable[[int, int], None] | None = None, baselines: bool = False) -> list[PairScores]:
    """Score `pairs_per_type` held-out matched pairs of each violation type (and the pixel baselines)."""
    scorer = as_scorer(model)
    world = world or world_for(scorer)
    pairs = eval_set(range(seed_base, seed_base + pairs_per_type * len(violations)), world, violations)
    out = []
    clip = scorer.config.clip
    for i, (plausible, violating) in enumerate(pairs):
        extra = {k: tuple(pixel_baseline_scores(c.frames, k, size=clip.size, mode=clip.preprocess, window=clip.frames)
                          for c in (plausible, violating)) for k in (BASELINES if baselines else ())}
        out.append(PairScores(violating.violation, int(violating.violation_frame),
                              surprise_scores(scorer, plausible.frames),
                              surprise_scores(scorer, violating.frames), extra))
        if on_pair:
            on_pair(i + 1, len(pairs))
    return out


def summarize(pairs: list[PairScores], tolerance: int) -> dict:
    """AUROC, pairwise accuracy and peak localisation, overall and per violation type."""

    def stats(group: list[PairScores]) -> dict:
        neg = np.array([np.nanmax(p.plausible) for p in group])
        pos = np.array([np.nanmax(p.violating) for p in group])
        offsets = [int(np.nanargmax(p.violating)) - p.violation_frame for p in group]
        return {
            "pairs": len(group),
            "auroc": auroc(neg, pos),
            "pairwise": float(np.mean(pos > neg)),
            "pairwise_ties": float(np.mean(pos == neg)),
            "peak_within_tolerance": float(np.mean([0 <= o <= tolerance for o in offsets])),
            "median_peak_offset": float(np.median(offsets)),
            "mean_surprise_plausible": float(np.mean(neg)),
            "mean_surprise_violating": float(np.mean(pos)),
        }

    result = {"overall": stats(pairs), "tolerance_frames": tolerance, "per_type": {}}
    for v in sorted({p.violation for p in pairs}, key=lambda v: VIOLATIONS.index(v) if v in VIOLATIONS else 99):
        result["per_type"][v] = stats([p for p in pairs if p.violation == v])
    return result


def evaluate_surprise(model: VJEPA2 | Runner | str, *, pairs_per_type: int = 20, seed_base: int = EVAL_SEED_BASE,
                      violations: tuple[str, ...] = VIOLATIONS, tolerance: int | None = None,
                      on_pair: Callable[[int, int], None] | None = None, baselines: bool = True) -> dict:
    """Score held-out matched pairs and summarize (see module docstring). JSON-serialisable dict.

    With `baselines`, `report["baselines"][name]` holds the same summary for each model-free pixel baseline.
    """
    runner = as_scorer(model)
    pairs = score_pairs(runner, pairs_per_type=pairs_per_type, seed_base=seed_base, violations=violations,
                        on_pair=on_pair, baselines=baselines)
    tol = tolerance if tolerance is not None else runner.config.clip.frames - runner.config.clip.context_frames
    summary = summarize(pairs, tol)
    if baselines:
        summary["baselines"] = {
            k: summarize([PairScores(p.violation, p.violation_frame, *p.baselines[k]) for p in pairs], tol)
            for k in BASELINES
        }
    summary["model"] = runner.config.name
    summary["backend"] = runner.backend
    summary["seeds"] = [seed_base, seed_base + pairs_per_type * len(violations)]
    summary["world"] = dataclasses.asdict(world_for(runner))
    return summary
