"""Cost of one surprise update: the window model's full-window step vs a frame-causal KV stream step.

    python benchmarks/world_step_cost.py                     # ~1-2 min, one thread
    python benchmarks/world_step_cost.py --world /path/to/world_pico_model --json out.json

Both at the same window length (8 frames of 64 px):
  (a) window: the embedded window model's (vit_pico) surprise step, which encodes the context (6 frames) and the whole
      window (8 frames) again at every update, then runs the predictor: eager fp32 and its ExecuTorch .pte int8
      (XNNPACK, PT2E dynamic int8) through the bundle runner;
  (b) stream: a world_pico frame-causal model's KV-cache stream step (the new frame through the encoder once,
      the predictor on its 16 tokens against the cached keys/values of the 7 previous frames): eager fp32
      (`encode_frames` + `CausalPredictor.step`, what FrameCausalScorer(cache="kv") runs) and its .pte int8
      (the bundle's `stream_step` through StreamStepRunner).
All four are timed in one process, interleaved (edge_jepa.timing.time_round_robin), so load from other processes
hits them alike: wall time, then a second interleaved pass in process CPU time (which hardly counts the time a call
waited for a core: on a shared, loaded machine the window step's three long calls are preempted more often than the
stream step's one short call, so the wall ratio moves with the load). Reported: median ms (wall and CPU), the
stream/window ratios, the load averages at the start and the end, the two .pte steps also timed back to back (each
call right after the one before, so the weights and caches are still in the CPU caches; interleaved with the other
steps every call starts cold), and GFLOPs per update (analytic, and counted by
torch's FlopCounterMode on the eager steps). The issue's target: stream step <= 1/4 of the window step.
Timing does not depend on the weights: world_pico is freshly initialized unless --world names a trained one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import edge_jepa  # noqa: E402
from edge_jepa.bench.cell import set_threads  # noqa: E402
from edge_jepa.export import export_bundle  # noqa: E402
from edge_jepa.models.world import TIME_UNIT  # noqa: E402
from edge_jepa.runtime import EagerRunner, Runner  # noqa: E402
from edge_jepa.runtime.stream_step import StreamStepRunner  # noqa: E402
from edge_jepa.timing import time_calls, time_round_robin  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "world_step_cost.json"


def steady_state(model, runner: StreamStepRunner, frame: torch.Tensor):
    """Fill the eager KV cache and the bundle's with window - 1 frames (a stream's steady state, where every update
    costs one full step); (time step, token grid, eager cache)."""
    fc = model.config.clip
    step, grid = 1.0 / (fc.fps * TIME_UNIT), model.token_grid()
    with torch.no_grad():
        kv = None
        for _ in range(model.window - 1):
            _, _, kv = model.predictor.step(model.encode_frames(frame)[0], step, grid, kv)
    for _ in range(model.window - 1):
        runner.step(frame)
    return step, grid, kv


def counted_gflops(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn()
    return counter.get_total_flops() / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", default=None,
                    help="a frame-causal model: its dir, or 'world' = 'default' (the embedded one); default: fresh "
                         "world_pico")
    ap.add_argument("--runs", type=int, default=150, help="timed runs of each step (interleaved)")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=RESULTS)
    args = ap.parse_args()
    set_threads(args.threads, "executorch")  # torch's and ExecuTorch's XNNPACK threadpool, as edge-jepa bench
    torch.manual_seed(0)

    window_model = edge_jepa.load("window")
    world = edge_jepa.load(args.world) if args.world else edge_jepa.create("world_pico", seed=0).eval()
    if world.config.kind != "frame_causal":
        raise SystemExit(f"--world {args.world}: a {world.config.kind} model, not a frame-causal one")
    wc, fc = window_model.config.clip, world.config.clip
    if (wc.frames, wc.size) != (fc.frames, fc.size):
        print(f"note: window {wc.frames}x{wc.size} vs stream window {fc.frames}x{fc.size}", file=sys.stderr)

    with tempfile.TemporaryDirectory() as tmp:
        print("exporting the embedded window model to .pte int8 ...", file=sys.stderr)
        window_pte = Runner.open(export_bundle(window_model, "executorch", "int8", out=Path(tmp) / "window"))
        print("exporting the world_pico stream step to .pte int8 ...", file=sys.stderr)
        stream_path = export_bundle(world, "executorch", "int8", out=Path(tmp) / "stream")
        stream_pte = StreamStepRunner.open(stream_path)
        manifest = json.loads((stream_path / "manifest.json").read_text())

        clip = torch.randn(1, 3, wc.frames, wc.size, wc.size)
        frame = torch.randn(1, 3, 1, fc.size, fc.size)
        window_eager = EagerRunner(window_model)
        step, grid, kv = steady_state(world, stream_pte, frame)

        @torch.no_grad()
        def stream_eager() -> None:  # kv stays the steady-state cache: every call costs one full update
            world.predictor.step(world.encode_frames(frame)[0], step, grid, kv)

        def stream_pte_step() -> None:  # the runner's cache slides on: always full
            stream_pte.step(frame)

        fns = {"window_eager_fp32": lambda: window_eager.run(clip), "window_pte_int8": lambda: window_pte.run(clip),
               "stream_eager_fp32": stream_eager, "stream_pte_int8": stream_pte_step}
        print(f"timing {args.runs} runs of each step, interleaved (wall, then CPU time) ...", file=sys.stderr)
        load_start = os.getloadavg()
        timings = time_round_robin(fns, warmup=args.warmup, runs=args.runs)
        cpu_timings = time_round_robin(fns, warmup=0, runs=args.runs, clock=time.process_time)
        warm = {k: time_calls(fns[k], warmup=args.warmup, runs=args.runs).p50 for k in ("window_pte_int8",
                                                                                      "stream_pte_int8")}
        load_end = os.getloadavg()
        assert stream_pte.cache_mask.eq(0).all()  # timed with every cache slot filled

    med = {k: t.p50 for k, t in timings.items()}
    cpu = {k: t.p50 for k, t in cpu_timings.items()}
    per_update = world.flops_per_update()
    analytic = {"window_step": window_model.flops().total / 1e9, "stream_step_kv": per_update["kv"] / 1e9,
                "stream_step_rerun": per_update["rerun"] / 1e9}
    counted = {"window_step": counted_gflops(lambda: window_eager.run(clip)),
               "stream_step_kv": counted_gflops(stream_eager)}
    result = {
        "benchmark": "world_step_cost",
        "window_model": {"name": window_model.config.name, "frames": wc.frames, "size": wc.size,
                         "context_frames": wc.context_frames},
        "stream_model": {"name": world.config.name, "weights": args.world or "fresh (seed 0)", "window": world.window,
                         "fps": fc.fps},
        "threads": args.threads, "runs": args.runs, "warmup": args.warmup,
        "median_ms": med,
        "p90_ms": {k: t.p90 for k, t in timings.items()},
        "median_cpu_ms": cpu,
        "ratio_ms": {"pte_int8": med["stream_pte_int8"] / med["window_pte_int8"],
                     "eager_fp32": med["stream_eager_fp32"] / med["window_eager_fp32"]},
        "ratio_cpu_ms": {"pte_int8": cpu["stream_pte_int8"] / cpu["window_pte_int8"],
                         "eager_fp32": cpu["stream_eager_fp32"] / cpu["window_eager_fp32"]},
        "median_ms_back_to_back": warm,
        "ratio_ms_back_to_back": {"pte_int8": warm["stream_pte_int8"] / warm["window_pte_int8"]},
        "load_avg": {"start": load_start, "end": load_end},
        "gflops_analytic": analytic,
        "gflops_counted_torch": counted,
        "ratio_gflops": {"analytic": analytic["stream_step_kv"] / analytic["window_step"],
                         "counted": counted["stream_step_kv"] / counted["window_step"]},
        "target_ratio": 0.25,
        "stream_updates_per_s_pte_int8": 1e3 / med["stream_pte_int8"],
        "stream_delegation": manifest["export"]["delegation"],
        "stream_fidelity": {k: manifest["fidelity"][k] for k in ("tokens", "predicted", "steps")},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, default=float) + "\n")
    for k, v in med.items():
        print(f"{k:20s} median {v:8.3f} ms  p90 {timings[k].p90:8.3f} ms  CPU median {cpu[k]:8.3f} ms")
    print(f"ratio stream/window: .pte int8 {result['ratio_ms']['pte_int8']:.3f} (CPU "
          f"{result['ratio_cpu_ms']['pte_int8']:.3f}), eager fp32 {result['ratio_ms']['eager_fp32']:.3f} (CPU "
          f"{result['ratio_cpu_ms']['eager_fp32']:.3f}); load average {load_start[0]:.1f} -> {load_end[0]:.1f}; "
          f"GFLOPs {analytic['stream_step_kv']:.4f} / "
          f"{analytic['window_step']:.4f} = {result['ratio_gflops']['analytic']:.3f} (analytic), "
          f"{result['ratio_gflops']['counted']:.3f} (torch count); target <= 0.25")
    print(f".pte int8 back to back: window {warm['window_pte_int8']:.3f} ms, stream {warm['stream_pte_int8']:.3f} ms, "
          f"ratio {result['ratio_ms_back_to_back']['pte_int8']:.3f}")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
