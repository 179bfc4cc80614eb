"""The surprise prior: what a model's surprise looks like on ordinary footage, stored with the model.

A scene's own statistics take seconds to gather; until they have, `EventDetector` judges scores against the
model's prior (baseline + k * spread), so nothing at the start of a stream goes unjudged. The prior is a small
record computed by the project's code on ordinary (plausible) footage: the synthetic scenes a model was trained
on (`synthetic_scenes`), or the footage `fit` trains on (`video_scenes`). It lives under the key
"surprise_prior" of the model directory's edge_jepa.json (`write_prior`) and of an export bundle's
manifest.json (copied by `edge-jepa export`):

    {"version": 1, "weights_sha256": "...",            # the weights it was measured with (a model directory)
     "data": "synthetic plausible scenes, seeds 900-911, 20 s each, 192 px", "created": "...",
     "entries": [{"fps": 30.0, "scoring": null,        # one per frame rate (and frame-causal scoring)
                  "baseline": 0.071, "spread": 0.016,  # median and 1.4826 * MAD of every score, pooled
                  "quantiles": {"0.5": ..., "0.9": ..., "0.99": ..., "0.999": ...}, "scores": 7116, "scenes": 12}]}

The spread is pooled over all scenes, so it includes how much scenes differ from one another: the prior is the
threshold of a scene the detector has not seen yet, wider than a scene's own. `prior_for(model)` picks the entry
for the rate (and scoring) a stream is scored at; a record measured with other weights is ignored (warning).

    edge-jepa calibrate MODEL_DIR [--footage a.mp4 ...]   # compute and store (or python -m edge_jepa.stream.prior)
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_jepa.models.persist import PRIOR_KEY

PRIOR_VERSION = 1
# 20 s plausible scenes; not the detector's tuning seeds (100-109) nor the tests' (4242). Training draws its clips
# from a seed stream that covers these numbers too: ordinary, in-distribution footage is what a prior is about.
SYNTHETIC_SEEDS = tuple(range(900, 912))
FRAME_CAUSAL_RATES = (10.0, 15.0, 30.0)
MAX_RATE_RATIO = 1.5  # an entry serves streams within this factor of its fps
QUANTILES = (0.5, 0.9, 0.99, 0.999)


@dataclass(frozen=True)
class SurprisePrior:
    """The prior statistics of one stream setting: the detector's baseline and spread until the scene's own."""

    baseline: float
    spread: float
    fps: float
    scoring: str | None  # a frame-causal model's scoring (None: a window model)
    source: str  # where it came from: the model and the data it was measured on

    def threshold(self, k: float) -> float:
        return self.baseline + k * self.spread

    def to_json(self) -> dict:
        return {"baseline": round(self.baseline, 6), "spread": round(self.spread, 6), "fps": self.fps,
                "scoring": self.scoring, "source": self.source}


# -- computing --------------------------------------------------------------------------------------------


def synthetic_scenes(fps: float, *, seeds: Sequence[int] = SYNTHETIC_SEEDS, seconds: float = 20.0,
                     size: int = 192) -> Iterator[np.ndarray]:
    """Plausible synthetic scenes (no violation) of the project's world at `fps`: uint8 [F, size, size, 3] each."""
    from edge_jepa.data.synthetic import WorldConfig, render_long_video

    for seed in seeds:
        yield render_long_video(seed, seconds, WorldConfig(size=size, fps=fps, num_frames=16), ()).frames


def video_scenes(paths: Sequence[str | os.PathLike], fps: float | None, size: int) -> Iterator[np.ndarray]:
    """Frames of video files (resampled to `fps`, None: their own rate), shrunk to about `size` pixels high
    while decoding (the model resizes them to `size` anyway)."""
    from edge_jepa.video import iter_frames, read_video

    for path in paths:
        first = next(iter_frames(path))[1]
        h, w = first.shape[:2]
        scale = min(1.0, 2 * size / min(h, w))
        yield read_video(path, fps, resize=(max(1, round(w * scale)), max(1, round(h * scale)))).frames


def _scores(model, frames: np.ndarray, fps: float, scoring: str | None) -> np.ndarray:
    from edge_jepa.surprise import FrameCausalScorer, _frame_causal, surprise_trace

    causal = _frame_causal(model)
    scorer = FrameCausalScorer(causal, fps=fps, scoring=scoring) if causal is not None else model
    return np.asarray([r.score for r in surprise_trace(scorer, frames)], dtype=np.float64)


def prior_entry(scores: Iterable[np.ndarray], fps: float, scoring: str | None) -> dict:
    """The record of one rate from the score traces of several ordinary scenes (pooled)."""
    traces = [np.asarray(s, dtype=np.float64) for s in scores]
    pooled = np.concatenate([s[np.isfinite(s)] for s in traces]) if traces else np.zeros(0)
    if len(pooled) < 10:
        raise ValueError(f"a surprise prior needs at least 10 scores, got {len(pooled)}: give longer footage")
    med = float(np.median(pooled))
    spread = max(1.4826 * float(np.median(np.abs(pooled - med))), 1e-9)
    return {"fps": float(fps), "scoring": scoring, "baseline": round(med, 6), "spread": round(spread, 6),
            "quantiles": {str(q): round(float(np.quantile(pooled, q)), 6) for q in QUANTILES},
            "scores": int(len(pooled)), "scenes": len(traces)}


def compute_prior(model, *, footage: Sequence[str | os.PathLike] = (), rates: Sequence[float] | None = None,
                  seeds: Sequence[int] = SYNTHETIC_SEEDS, seconds: float = 20.0, data: str | None = None,
                  scenes: Iterable[np.ndarray] | None = None, on_scene=None) -> dict:
    """The surprise-prior record of `model` (a model, Runner or path): scores of ordinary footage, pooled per rate.

    Footage, in order of precedence: `scenes` (uint8 frame arrays, e.g. what `fit` trained on, at `rates[0]`),
    `footage` (video files), else the project's plausible synthetic scenes (`seeds`, `seconds` long).
    rates: window models are scored at their own rate only; frame-causal models at 10, 15 and 30 fps by default
    (for footage: its own rate). on_scene(fps, i) is called after each scene (progress).
    The record is what `write_prior` stores and `prior_for` reads (module docstring)."""
    from edge_jepa.models.world import DEFAULT_SCORING
    from edge_jepa.surprise import _frame_causal, as_scorer

    causal = _frame_causal(model)
    scorer = as_scorer(causal if causal is not None else model)
    config = scorer.config
    scoring = DEFAULT_SCORING if causal is not None else None
    if causal is None:
        rates = [config.clip.fps]  # a window model: the stream resamples to its rate
    elif rates is None:
        rates = [_video_fps(footage[0])] if footage and scenes is None else \
            [config.clip.fps] if scenes is not None else list(FRAME_CAUSAL_RATES)
    if scenes is not None:
        rates = list(rates)[:1]  # the caller's frames are at one rate
    entries = []
    for fps in rates:
        if scenes is not None:
            chosen, what = scenes, data or "frames given by the caller"
        elif footage:
            chosen = video_scenes(footage, fps, config.clip.size)
            what = data or "footage: " + ", ".join(Path(p).name for p in footage)
        else:
            chosen = synthetic_scenes(fps, seeds=seeds, seconds=seconds)
            what = data or f"synthetic plausible scenes, seeds {seeds[0]}-{seeds[-1]}, {seconds:g} s each, 192 px"
        traces = []
        for i, frames in enumerate(chosen):
            traces.append(_scores(causal if causal is not None else scorer, frames, fps, scoring))
            if on_scene is not None:
                on_scene(fps, i)
        entries.append(prior_entry(traces, fps, scoring))
    return prior_record(config.name, entries, what, "edge_jepa.stream.prior.compute_prior")


def prior_record(model_name: str, entries: list[dict], data: str, computed_by: str) -> dict:
    """The stored record (module docstring) around `prior_entry` results."""
    return {"version": PRIOR_VERSION, "model": model_name, "data": data, "entries": entries,
            "computed_by": computed_by, "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}


def _video_fps(path: str | os.PathLike) -> float:
    import cv2

    cap = cv2.VideoCapture(str(path))
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    cap.release()
    return fps if 1.0 <= fps <= 240.0 else 30.0


# -- storing and reading ----------------------------------------------------------------------------------


def write_prior(model_dir: str | os.PathLike, record: dict) -> Path:
    """Store `record` (from `compute_prior`) in an edge-jepa model directory's edge_jepa.json, atomically, with
    the sha256 of the weights it belongs to. Returns the file written."""
    from edge_jepa.checkpoints import model_path
    from edge_jepa.io import atomic_file
    from edge_jepa.models.persist import CONFIG_FILE, weights_sha256

    path = model_path(model_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path.parent}: not an edge-jepa model directory (no {CONFIG_FILE}); a surprise "
                                "prior is stored with a model saved by edge-jepa (convert other checkpoints first)")
    meta = json.loads(path.read_text())
    meta[PRIOR_KEY] = {**record, "weights_sha256": weights_sha256(path.parent)}
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(meta, indent=2) + "\n")
    return path


def read_prior(source: str | os.PathLike) -> dict | None:
    """The prior record stored with a model directory (checked against its weights) or an export bundle, else
    None. A record measured with other weights is ignored with a warning."""
    from edge_jepa.checkpoints import model_path
    from edge_jepa.models.persist import CONFIG_FILE, stored_prior

    path = model_path(source)
    if (path / "manifest.json").is_file():
        try:
            record = json.loads((path / "manifest.json").read_text()).get(PRIOR_KEY)
        except (OSError, ValueError, AttributeError):
            return None
        return record if isinstance(record, dict) else None
    return stored_prior(path) if (path / CONFIG_FILE).is_file() else None


def _record_of(model) -> tuple[dict | None, str]:
    """(the prior record carried by a model, runner, bundle runner, scorer or path; a name for messages)."""
    if isinstance(model, str | os.PathLike):
        return read_prior(model), str(model)
    for attr in ("runner", "stepper", "model", "bundle"):  # scorer -> runner/stepper/model, stepper -> bundle
        inner = getattr(model, attr, None)
        if inner is not None and inner is not model:
            record, name = _record_of(inner)
            if record is not None:
                return record, name
    manifest = getattr(model, "manifest", None)
    if isinstance(manifest, dict) and isinstance(manifest.get(PRIOR_KEY), dict):
        return manifest[PRIOR_KEY], str(getattr(model, "path", "bundle"))
    record = getattr(model, PRIOR_KEY, None)
    config = getattr(model, "config", None)
    return (record if isinstance(record, dict) else None), getattr(config, "name", type(model).__name__)


def select_entry(record: dict, fps: float, scoring: str | None) -> dict | None:
    """The record's entry for a stream scored at `fps` (within MAX_RATE_RATIO) with `scoring`, else None."""
    best, best_ratio = None, math.inf
    for entry in record.get("entries", []):
        try:
            ratio = max(fps / float(entry["fps"]), float(entry["fps"]) / fps)
            ok = entry.get("scoring") == scoring and float(entry["spread"]) > 0 and math.isfinite(entry["baseline"])
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            continue
        if ok and ratio <= MAX_RATE_RATIO and ratio < best_ratio:
            best, best_ratio = entry, ratio
    return best


def prior_for(model, fps: float | None = None) -> SurprisePrior | None:
    """The prior for streaming with `model` (a scorer, Runner, bundle runner, model or path) at `fps` (default:
    the scorer's / model's rate), or None when the model carries none for that rate."""
    record, name = _record_of(model)
    if record is None:
        return None
    fps = float(fps or _own_fps(model))
    scoring = getattr(model, "scoring", None)
    if not hasattr(model, "scoring") and any(e.get("scoring") for e in record.get("entries", [])):
        from edge_jepa.models.world import DEFAULT_SCORING

        scoring = DEFAULT_SCORING  # a frame-causal model (not a scorer yet) is scored with its default
    entry = select_entry(record, fps, scoring)
    if entry is None:
        return None
    return SurprisePrior(float(entry["baseline"]), float(entry["spread"]), float(entry["fps"]), scoring,
                         f"{name}: {record.get('data', 'ordinary footage')}")


def _own_fps(model) -> float:
    """The rate a model, scorer, runner or path (model directory, bundle) scores at by default."""
    if isinstance(model, str | os.PathLike):
        from edge_jepa.checkpoints import model_path
        from edge_jepa.models.persist import CONFIG_FILE

        path = model_path(model)
        if (path / "manifest.json").is_file():
            return float(json.loads((path / "manifest.json").read_text())["clip"]["fps"])
        return float(json.loads((path / CONFIG_FILE).read_text())["config"]["clip"]["fps"])
    return float(getattr(model, "fps", None) or model.config.clip.fps)


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m edge_jepa.stream.prior", description=__doc__.split("\n")[0])
    p.add_argument("model", help="an edge-jepa model directory, or 'default' (= 'world') / 'window' (the embedded "
                   "ones)")
    p.add_argument("--footage", nargs="*", default=(), help="ordinary video files (default: synthetic scenes)")
    p.add_argument("--seconds", type=float, default=20.0, help="length of each synthetic scene")
    p.add_argument("--scenes", type=int, default=len(SYNTHETIC_SEEDS), help="number of synthetic scenes")
    a = p.parse_args(argv)
    seeds = tuple(SYNTHETIC_SEEDS[0] + i for i in range(a.scenes))
    record = compute_prior(a.model, footage=a.footage, seeds=seeds, seconds=a.seconds,
                           on_scene=lambda fps, i: print(f"  {fps:g} fps: scene {i + 1}", flush=True))
    path = write_prior(a.model, record)
    for e in record["entries"]:
        print(f"{e['fps']:g} fps: baseline {e['baseline']:.4f} spread {e['spread']:.4f} "
              f"(q99 {e['quantiles']['0.99']:.4f}, {e['scores']} scores, {e['scenes']} scenes)")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
