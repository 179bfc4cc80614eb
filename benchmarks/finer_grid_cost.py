"""What a finer token grid costs: world_pico (4x4 tokens per 64 px frame) vs world_pico_p8 (8 px patches, 8x8).

    python benchmarks/finer_grid_cost.py                                   # fresh models, exports both (~10 min)
    python benchmarks/finer_grid_cost.py --coarse world --fine runs/p8/model \\
        --coarse-bundle world_pte --fine-bundle p8_pte --json out.json    # trained models, bundles already exported

Per stream update (one new frame through the encoder, the predictor on its tokens against the cached keys/values
of the 7 frames before it): GFLOPs (analytic, and counted by torch's FlopCounterMode), eager fp32 ms
(`encode_frames` + `CausalPredictor.step`, what FrameCausalScorer(cache="kv") runs) and the ExecuTorch .pte int8
ms of the bundle's `stream_step` (StreamStepRunner). All four timed in one process, interleaved
(edge_jepa.timing.time_round_robin), so load from other processes hits them alike. Timing does not depend on the
weights. Also the median process CPU ms of each call (interleaved too), the figure that survives a loaded
machine. `edge-jepa bench BUNDLE` gives the .pte figure with the project's bench schema as well.
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
from edge_jepa.runtime.stream_step import StreamStepRunner  # noqa: E402
from edge_jepa.timing import time_round_robin  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from world_step_cost import counted_gflops, steady_state  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "finer_grid_cost.json"


def model_of(source: str | None, config: str):
    model = edge_jepa.load(source) if source else edge_jepa.create(config, seed=0).eval()
    if model.config.kind != "frame_causal":
        raise SystemExit(f"{source}: a {model.config.kind} model, not a frame-causal one")
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--coarse", default=None, help="the 4x4-grid model (dir or 'world'); default: fresh world_pico")
    ap.add_argument("--fine", default=None, help="the finer-grid model (dir); default: fresh world_pico_p8")
    ap.add_argument("--coarse-bundle", type=Path, default=None, help="its executorch int8 bundle (else exported)")
    ap.add_argument("--fine-bundle", type=Path, default=None, help="its executorch int8 bundle (else exported)")
    ap.add_argument("--runs", type=int, default=150)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=RESULTS)
    args = ap.parse_args()
    set_threads(args.threads, "executorch")
    torch.manual_seed(0)
    models = {"coarse": model_of(args.coarse, "world_pico"), "fine": model_of(args.fine, "world_pico_p8")}
    bundles = {"coarse": args.coarse_bundle, "fine": args.fine_bundle}
    fns, rows = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for key, model in models.items():
            if bundles[key] is None:
                print(f"exporting {model.config.name} to .pte int8 ...", file=sys.stderr)
                bundles[key] = export_bundle(model, "executorch", "int8", out=Path(tmp) / key)
            runner = StreamStepRunner.open(bundles[key])
            manifest = json.loads((Path(bundles[key]) / "manifest.json").read_text())
            fc = model.config.clip
            frame = torch.randn(1, 3, 1, fc.size, fc.size)
            step, grid, kv = steady_state(model, runner, frame)

            @torch.no_grad()
            def eager(model=model, frame=frame, step=step, grid=grid, kv=kv) -> None:
                model.predictor.step(model.encode_frames(frame)[0], step, grid, kv)

            fns[f"{key}_eager_fp32"] = eager
            fns[f"{key}_pte_int8"] = lambda runner=runner, frame=frame: runner.step(frame)
            per_update = model.flops_per_update()
            rows[key] = {"model": model.config.name, "weights": getattr(args, key) or "fresh (seed 0)",
                         "token_grid": list(grid), "tokens_per_frame": grid[0] * grid[1],
                         "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
                         "gflops_per_update_analytic": round(per_update["kv"] / 1e9, 4),
                         "gflops_per_update_counted": round(counted_gflops(eager), 4),
                         "pte_mb": round(sum(f.stat().st_size for f in Path(bundles[key]).glob("*.pte")) / 1e6, 2),
                         "pte_fidelity": {k: manifest["fidelity"][k] for k in ("tokens", "predicted", "steps")}}
        print(f"timing {args.runs} runs of each step, interleaved ...", file=sys.stderr)
        timings = time_round_robin(fns, warmup=args.warmup, runs=args.runs)
        cpu_times = time_round_robin(fns, warmup=0, runs=args.runs, clock=time.process_time)
        cpu = {k: t.p50 for k, t in cpu_times.items()}
    for key, row in rows.items():
        for kind in ("eager_fp32", "pte_int8"):
            t = timings[f"{key}_{kind}"]
            row[f"{kind}_ms_p50"], row[f"{kind}_ms_p90"] = round(t.p50, 3), round(t.p90, 3)
            row[f"{kind}_cpu_ms_p50"] = round(cpu[f"{key}_{kind}"], 3)
    keys = ("gflops_per_update_analytic", "eager_fp32_ms_p50", "pte_int8_ms_p50", "eager_fp32_cpu_ms_p50",
            "pte_int8_cpu_ms_p50")
    result = {"benchmark": "finer_grid_cost", "threads": args.threads, "runs": args.runs, "rows": rows,
              "ratio_fine_over_coarse": {k: round(rows["fine"][k] / rows["coarse"][k], 2) for k in keys},
              "load_avg": os.getloadavg(),
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__}}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(json.dumps(result, indent=1, default=float))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
