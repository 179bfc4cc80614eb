"""Photometric robustness: exposure / white-balance changes written into real footage, and the events they raise.

Each real clip of ../shared/videos is rewritten as MP4 (OpenCV) with one global photometric change applied to
every pixel with numpy (the content stays real):
    ae_recovery   the clip starts under-exposed (gain 0.49: mean brightness ~53 where the clip has ~109) and the
                  auto-exposure recovers to gain 1 over 1 s at t0 (issue 19's parking lot)
    slow_ramp     gain 1 -> 0.55 over 8 s from t0, then stays
    gain_step     gain x1.6 (clipped at 255) at t0, back to 1 at t0 + 3 s
    colour_shift  white balance R x1.25, B x0.8 over 0.5 s at t0, back at t0 + 3 s
    gamma_step    tone curve 255 (x / 255) ** 0.6 at t0 (not affine), back at t0 + 3 s
t0 = 14 s: a quiet stretch of both clips (frame differences of the untouched clips), after the detector's warm-up;
the changed clips are scored up to t0 + 12 s. Scored with both embedded models by four photometric settings:
    off           frames as they come
    match         per-channel mean and std of the whole frame matched to running averages (edge_jepa.photometric)
    gain          per-channel gain matched to a running reference image over the pixels that did not change locally
    gate          no normalization; a score is dropped (not fed to the detector) when the change over the window is
                  explained by a per-channel affine colour transform (least squares on the model's view)
The events come from the stream's detector (`detect_events`, the offline twin of `watch`'s every-window mode).
A change's false events: the events starting in its zone (t0 - 0.5 s to 2 s after the change has settled) beyond
those the untouched clip has there (same setting). Real events: the untouched clips' events under each setting,
and how many of them the "off" setting also has (starts within 1.5 s).

    python benchmarks/photometric.py --json benchmarks/results/photometric.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from edge_jepa.checkpoints import load  # noqa: E402
from edge_jepa.io import atomic_file  # noqa: E402
from edge_jepa.preprocess import resize_frame  # noqa: E402
from edge_jepa.stream import detect_events  # noqa: E402
from edge_jepa.surprise import surprise_trace  # noqa: E402
from edge_jepa.video import iter_frames, read_video  # noqa: E402

VIDEOS = ROOT.parent / "shared" / "videos"
CLIPS = {"trflorian_ball2.mp4": 14.0, "ckuhn_traffic.mp4": 14.0}  # clip -> t0 (quiet, after the 5 s warm-up)
CHANGES = ("ae_recovery", "slow_ramp", "gain_step", "colour_shift", "gamma_step")
SETTLED = {"ae_recovery": 1.0, "slow_ramp": 8.0, "gain_step": 3.0, "colour_shift": 3.5, "gamma_step": 3.0}  # after t0
SETTINGS = ("off", "match", "gain", "gate")
MATCH_S = 1.5  # two events are the same if they start within this


def change(kind: str, frame: np.ndarray, t: float, t0: float) -> np.ndarray:
    """The frame (uint8 RGB) at time t with the photometric change `kind` starting at t0."""
    x = frame.astype(np.float32)
    if kind == "ae_recovery":
        g = 0.49 + 0.51 * float(np.clip((t - t0) / 1.0, 0.0, 1.0))
        x = x * g
    elif kind == "slow_ramp":
        x = x * (1.0 - 0.45 * float(np.clip((t - t0) / 8.0, 0.0, 1.0)))
    elif kind == "gain_step":
        x = x * (1.6 if t0 <= t < t0 + 3.0 else 1.0)
    elif kind == "colour_shift":
        a = float(np.clip((t - t0) / 0.5, 0.0, 1.0)) if t < t0 + 3.0 else 0.0
        x = x * np.array([1.0 + 0.25 * a, 1.0, 1.0 - 0.2 * a], np.float32)
    elif kind == "gamma_step":
        if t0 <= t < t0 + 3.0:
            x = 255.0 * (x / 255.0) ** 0.6
    else:
        raise ValueError(kind)
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


def write_changed(src: Path, kind: str, t0: float, out: Path) -> Path:
    """The clip with the change applied, written as MP4 at the clip's own rate and size (OpenCV)."""
    from edge_jepa.viz import VideoWriter

    rate = read_video(src, max_seconds=1.0).fps
    with VideoWriter(out, rate) as w:
        for t, frame in iter_frames(src):
            w.write(change(kind, frame, t, t0))
    return out


def affine_explained(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(mean |b - a|, mean |b - fit(a)|) in grey levels, fit: per-channel least-squares gain and offset."""
    raw = float(np.abs(b - a).mean())
    resid = 0.0
    for c in range(3):
        x, y = a[..., c].ravel(), b[..., c].ravel()
        var = x.var()
        gain = float(((x - x.mean()) * (y - y.mean())).mean() / var) if var > 1e-6 else 1.0
        resid += float(np.abs(y - (gain * (x - x.mean()) + y.mean())).mean()) / 3
    return raw, resid


GATE_MIN_CHANGE = 3.0  # grey levels: a smaller change over the window is not a photometric change
GATE_EXPLAINED = 0.5  # dropped when the affine fit leaves less than this share of the change


def traces(model, path: Path, settings, max_seconds: float | None) -> dict[str, tuple[np.ndarray, np.ndarray, int]]:
    """setting -> (times, scores, gated) of every scored frame of the clip at path (the stream's rates)."""
    causal = model.config.kind == "frame_causal"
    video = read_video(path, None if causal else model.config.clip.fps, resize=(160, 120), max_seconds=max_seconds)
    out = {}
    for setting in ("off", "match", "gain"):
        if setting not in settings and not (setting == "off" and "gate" in settings):
            continue
        results = surprise_trace(model, video.frames, fps=video.fps if causal else None, photometric=setting)
        times = np.array([video.times[r.frame_index] for r in results])
        scores = np.array([r.score for r in results])
        out[setting] = (times, scores, 0)
        if setting == "off" and "gate" in settings:
            size, T = model.config.clip.size, model.config.clip.frames
            view = [resize_frame(f, size, model.config.clip.preprocess).astype(np.float32) for f in video.frames]
            gated = scores.copy()
            for i, r in enumerate(results):
                raw, resid = affine_explained(view[r.frame_index - T + 1], view[r.frame_index])
                if raw > GATE_MIN_CHANGE and resid < GATE_EXPLAINED * raw:
                    gated[i] = np.nan
            out["gate"] = (times, gated, int(np.isnan(gated).sum()))
    return {k: v for k, v in out.items() if k in settings}


def matched(a, b) -> int:
    """How many events of a start within MATCH_S of an event of b."""
    return sum(any(abs(e.start_s - f.start_s) <= MATCH_S for f in b) for e in a)


ACTIVE = 3.0  # grey levels: a frame difference above this (64x48 view) is activity in the untouched clip


def activity(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(times, mean |frame - previous frame|) of a clip at 64x48: where something moves."""
    video = read_video(path, resize=(64, 48))
    f = video.frames.astype(np.float32)
    return video.times[1:], np.abs(np.diff(f, axis=0)).mean(axis=(1, 2, 3))


def on_activity(starts, times: np.ndarray, diff: np.ndarray, margin: float = 1.5) -> int:
    """How many event starts have activity (a frame difference > ACTIVE) within `margin` seconds."""
    return sum(bool((diff[np.abs(times - s) <= margin] > ACTIVE).any()) for s in starts)


def report(paths: list[Path]) -> None:
    """The untouched clips' events on/off activity and the false events per change, from the JSON results."""
    rows = []
    for p in paths:
        text = p.read_text()
        rows += json.loads(text)["rows"] if p.suffix == ".json" else [
            json.loads(line) for line in text.splitlines() if line.startswith("{")]
    acts = {name: activity(VIDEOS / name) for name in {r["clip"] for r in rows}}
    print(f"{'clip':22} {'model:setting':16} {'events':>6} {'on activity':>11} {'also off':>8}")
    for r in rows:
        if r["change"] == "untouched":
            n = on_activity(r["starts"], *acts[r["clip"]])
            r["on_activity"] = n
            print(f"{r['clip']:22} {r['model'] + ':' + r['setting']:16} {r['events']:>6} {n:>11} "
                  f"{r.get('also_off', r['events']):>8}")
    print(f"\n{'clip':22} {'model:setting':16} " + " ".join(f"{c:>12}" for c in CHANGES) + "   (events in the zone:"
          " new (in the zone: changed / untouched))")
    keys = sorted({(r["clip"], r["model"], r["setting"]) for r in rows},
                  key=lambda k: (k[0], k[1], SETTINGS.index(k[2])))
    for clip, model, setting in keys:
        cells = []
        for c in CHANGES:
            r = next((r for r in rows
                      if (r["clip"], r["model"], r["setting"], r["change"]) == (clip, model, setting, c)), None)
            base = next(b for b in rows if (b["clip"], b["model"], b["setting"], b["change"]) ==
                        (clip, model, setting, "untouched")) if r else None
            new = [t for t in r["starts"] if r["zone"][0] <= t <= r["zone"][1]
                   and not any(abs(t - u) <= MATCH_S for u in base["starts"])] if r else []
            cells.append(f"{len(new)} ({r['zone_events']}/{r['untouched_zone_events']})" if r else "-")
        print(f"{clip:22} {model + ':' + setting:16} " + " ".join(f"{c:>12}" for c in cells)
              + f"   total new {sum(int(c.split()[0]) for c in cells if c != '-')}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["window", "world"])
    ap.add_argument("--clips", nargs="+", default=list(CLIPS), choices=list(CLIPS))
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)
    ap.add_argument("--changes", nargs="+", default=list(CHANGES), choices=CHANGES)
    ap.add_argument("--work", type=Path, default=Path("/tmp/edge-jepa-photometric"))
    ap.add_argument("--json", type=Path)
    ap.add_argument("--report", type=Path, nargs="+",
                    help="only print the tables of earlier results (--json files, or logs of their JSON lines)")
    args = ap.parse_args()
    if args.report:
        report(args.report)
        return
    torch.set_num_threads(1)
    clips = {name: t0 for name, t0 in CLIPS.items() if name in args.clips and (VIDEOS / name).exists()}
    if not clips:
        sys.exit(f"no clips in {VIDEOS}")
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    started = time.time()
    for name, t0 in clips.items():
        src = VIDEOS / name
        files = {"untouched": src}
        for kind in args.changes:
            out = args.work / f"{Path(name).stem}_{kind}.mp4"
            files[kind] = out if out.exists() else write_changed(src, kind, t0, out)
        for model_name in args.models:
            model = load(model_name).eval()
            base = {}
            for kind, path in files.items():
                scored = traces(model, path, args.settings, None if kind == "untouched" else t0 + 12.0)
                for setting, (times, scores, gated) in scored.items():
                    events, _ = detect_events(times, scores)
                    row = {"clip": name, "model": model_name, "setting": setting, "change": kind,
                           "events": len(events), "starts": [round(e.start_s, 2) for e in events]}
                    if kind == "untouched":
                        base[setting] = events
                        if "off" in base:
                            row["also_off"] = matched(events, base["off"])
                    else:
                        zone = (t0 - 0.5, t0 + SETTLED[kind] + 2.0)
                        inside = [e for e in events if zone[0] <= e.start_s <= zone[1]]
                        before = [e for e in base[setting] if zone[0] <= e.start_s <= zone[1]]
                        row.update(zone=zone, zone_events=len(inside), untouched_zone_events=len(before),
                                   false_events=max(0, len(inside) - len(before)))
                    row["gated"] = gated
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    summary = {}
    for r in rows:
        key = f"{r['model']}:{r['setting']}"
        s = summary.setdefault(key, {"untouched_events": 0, "also_off": 0, "false_events": 0, "changes": 0,
                                     "changes_with_false_events": 0})
        if r["change"] == "untouched":
            s["untouched_events"] += r["events"]
            s["also_off"] += r.get("also_off", r["events"])
        else:
            s["false_events"] += r["false_events"]
            s["changes"] += 1
            s["changes_with_false_events"] += r["false_events"] > 0
    print(f"\n{'model:setting':<16} {'untouched events (also off)':>28} {'false events':>13} {'changes with any':>17}")
    for key, s in summary.items():
        print(f"{key:<16} {s['untouched_events']:>19} ({s['also_off']:>3})  {s['false_events']:>13} "
              f"{s['changes_with_false_events']:>10}/{s['changes']}")
    print(f"({time.time() - started:.0f} s)")
    if args.json:
        with atomic_file(args.json) as tmp:
            tmp.write_text(json.dumps({"clips": clips, "changes": args.changes, "rows": rows, "summary": summary},
                                      indent=1))


if __name__ == "__main__":
    main()
