"""Does the predictor model the dynamics, or would copying the last context step do as well?

On the plausible clips of validation scenes (seeds 1,500,000,000+: neither training nor the held-out block of
`edge-jepa eval-surprise`), every window is run through the model. For each target token, the L1 between the
predicted and the observed representation (LayerNorm-ed window encoding, as surprise scoring uses) is compared
with the L1 of a *copy* prediction: the observed token at the same place on the last context time step.
Tokens are grouped by what the scene's metadata says happens in their patch during the target frames:

    contact  an object's centre passes through it and that object bounces or collides in those frames
    moving   an object's centre passes through it, with no contact
    static   no object centre in it (background, occluder, edges of objects)

A ratio (predictor / copy) below 1 means the predictor beats copying. A world model that has learned the
dynamics should be well below 1 on `moving` and `contact` tokens; surprise then rises above the ordinary motion
floor only where the physics breaks.

    python benchmarks/predictor_vs_copy.py                          # the embedded default, 4 scenes per type
    python benchmarks/predictor_vs_copy.py --model runs/x/model --pairs-per-type 8 --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from edge_jepa.data.synthetic import VIOLATIONS, SyntheticClip, WorldConfig, eval_set  # noqa: E402
from edge_jepa.evaluation import world_for  # noqa: E402
from edge_jepa.io import atomic_file  # noqa: E402
from edge_jepa.preprocess import crop_geometry  # noqa: E402
from edge_jepa.runtime import Runner  # noqa: E402
from edge_jepa.surprise import frame_to_input, step_errors  # noqa: E402

VALIDATION_SEED_BASE = 1_500_000_000
KINDS = ("static", "moving", "contact")


def to_model_px(xy: list[float], scene_size: int, size: int, mode: str) -> tuple[float, float]:
    """A point of `tracks_px` (pixel-centre coordinates of the square scene) -> the model input, in coordinates
    where its frame spans [0, size) (so patch = floor(coordinate / patch size)); `resize` or the release's crop."""
    x, y = xy[0] + 0.5, xy[1] + 0.5  # pixel centres -> pixel edges
    if mode == "resize":
        s = size / scene_size
        return x * s, y * s
    nh, nw, top, left = crop_geometry(scene_size, scene_size, size)  # center_crop, as the model's preprocessing
    return x * nw / scene_size - left, y * nh / scene_size - top


def token_kinds(clip: SyntheticClip, target_frames: range, grid_hw: tuple[int, int], size: int,
                mode: str) -> np.ndarray:
    """[H', W'] kind index (into KINDS) of each patch over `target_frames`, from the clip's tracks and contacts."""
    gh, gw = grid_hw
    kinds = np.zeros((gh, gw), dtype=np.int64)
    in_target = set(target_frames)
    for k, track in enumerate(clip.meta["tracks_px"]):
        bounces = any(c["frame"] in in_target and k in (c["object"], c.get("other_object"))
                      for c in clip.meta["contacts"])
        for f in target_frames:
            if track[f] is None:
                continue
            x, y = to_model_px(track[f], clip.meta["size"], size, mode)
            i, j = int(np.floor(y * gh / size)), int(np.floor(x * gw / size))
            if 0 <= i < gh and 0 <= j < gw:
                kinds[i, j] = max(kinds[i, j], KINDS.index("contact" if bounces else "moving"))
    return kinds


def _report(name: str, backend: str, clips: int, seed_base: int, sums: dict) -> dict:
    report: dict = {"model": name, "backend": backend, "clips": clips, "seeds": [seed_base, seed_base + clips],
                    "kinds": {}}
    for kind, s in sums.items():
        n = max(1, s["tokens"])
        pred, copy = s["predictor"] / n, s["copy"] / n
        report["kinds"][kind] = {"tokens": s["tokens"], "predictor_l1": pred, "copy_l1": copy,
                                 "ratio": pred / copy if copy > 0 else float("nan")}
    return report


def _add(sums: dict, kinds: np.ndarray, p_err: np.ndarray, c_err: np.ndarray) -> None:
    for k, name in enumerate(KINDS):
        sel = kinds == k
        sums[name]["tokens"] += int(sel.sum())
        sums[name]["predictor"] += float(p_err[sel].sum())
        sums[name]["copy"] += float(c_err[sel].sum())


def measure_frame_causal(model, *, pairs_per_type: int = 4, seed_base: int = VALIDATION_SEED_BASE) -> dict:
    """The same split for a frame-causal model: every frame with a full context is predicted from the cached
    tokens of the previous T-1 frames; the copy prediction is the previous frame's observed tokens."""
    from edge_jepa.models.world import token_errors

    c = model.config.clip
    gh, gw = model.token_grid()
    world = WorldConfig(size=max(32, c.size), num_frames=c.frames * 2 + 4, fps=c.fps, violation_margin=c.frames)
    pairs = eval_set(range(seed_base, seed_base + pairs_per_type * len(VIOLATIONS)), world, VIOLATIONS)
    sums = {k: {"tokens": 0, "predictor": 0.0, "copy": 0.0} for k in KINDS}
    ctx = c.frames - 1
    with torch.inference_mode():
        for clip, _ in pairs:
            x = torch.from_numpy(np.stack([frame_to_input(f, c.size, c.preprocess) for f in clip.frames], axis=1))
            z = model.encode_frames(x[None])[0]  # [F, N, D]
            ends = list(range(ctx, clip.num_frames))
            pred, _ = model.predict(torch.stack([z[e - ctx : e] for e in ends]), c.fps)
            observed = F.layer_norm(z, z.shape[-1:])
            for j, e in enumerate(ends):
                p_err = token_errors(pred[j, -1], z[e]).reshape(gh, gw).numpy()
                c_err = (observed[e - 1] - observed[e]).abs().mean(-1).reshape(gh, gw).numpy()
                _add(sums, token_kinds(clip, range(e, e + 1), (gh, gw), c.size, c.preprocess), p_err, c_err)
    return _report(model.config.name, "eager/fp32", len(pairs), seed_base, sums)


def measure(model, *, pairs_per_type: int = 4, seed_base: int = VALIDATION_SEED_BASE) -> dict:
    """Mean predictor and copy L1 per token kind over every window of the plausible validation clips."""
    from edge_jepa.surprise import _frame_causal

    causal = _frame_causal(model)
    if causal is not None:
        return measure_frame_causal(causal, pairs_per_type=pairs_per_type, seed_base=seed_base)
    runner = Runner.open(model)
    c = runner.config.clip
    gt, gh, gw = runner.grid
    ct = c.context_frames // runner.config.encoder.tubelet_size  # context time steps
    pairs = eval_set(range(seed_base, seed_base + pairs_per_type * len(VIOLATIONS)), world_for(runner), VIOLATIONS)
    sums = {k: {"tokens": 0, "predictor": 0.0, "copy": 0.0} for k in KINDS}
    batch = runner.max_batch or 8
    with torch.inference_mode():
        for clip, _ in pairs:
            x = np.stack([frame_to_input(f, c.size, c.preprocess) for f in clip.frames], axis=1)  # [3, F, S, S]
            ends = list(range(c.frames - 1, clip.num_frames))
            for b in range(0, len(ends), batch):
                chunk = ends[b : b + batch]
                out = runner.run(torch.from_numpy(np.stack([x[:, e - c.frames + 1 : e + 1] for e in chunk])))
                # the predictor's per-token L1 exactly as surprise scoring computes it, per patch
                pred_err = step_errors(out, runner.target_idx).reshape(len(chunk), gt - ct, gh, gw).mean(1)
                observed = F.layer_norm(out.window_tokens, out.window_tokens.shape[-1:]).float()
                observed = observed.reshape(len(chunk), gt, gh, gw, -1)  # [B, T', H', W', D]
                copy_err = (observed[:, ct - 1 : ct] - observed[:, ct:]).abs().mean(-1).mean(1)  # [B, H', W']
                for e, p_err, c_err in zip(chunk, pred_err.numpy(), copy_err.numpy(), strict=True):
                    kinds = token_kinds(clip, range(e - c.frames + 1 + c.context_frames, e + 1), (gh, gw),
                                        c.size, c.preprocess)
                    _add(sums, kinds, p_err, c_err)
    return _report(runner.config.name, f"{runner.backend}/{runner.precision}", len(pairs), seed_base, sums)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="default", help="model dir, export bundle or an embedded model "
                   "('default' = 'world', frame-causal; 'window')")
    p.add_argument("--pairs-per-type", type=int, default=4, help="validation scenes per type (their plausible halves)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    report = measure(args.model, pairs_per_type=args.pairs_per_type)
    print(f"{report['model']} ({report['backend']}), {report['clips']} plausible validation clips")
    print(f"{'tokens':>8} {'kind':8} {'predictor L1':>13} {'copy L1':>9} {'ratio':>6}")
    for name, k in report["kinds"].items():
        print(f"{k['tokens']:8d} {name:8} {k['predictor_l1']:13.4f} {k['copy_l1']:9.4f} {k['ratio']:6.2f}")
    if args.json:
        with atomic_file(args.json) as tmp:
            tmp.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
