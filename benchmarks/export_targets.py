"""Export targets: sizes, latencies and fidelity of every (format, precision) of the format table.

    python benchmarks/export_targets.py --models vit_pico vit_mini --json export_targets.json

For each model it exports a bundle per row of edge_jepa.formats.FORMATS and precision (or the subset given),
then, in this one process, measures:
  - size of each bundle, and the .pte ratios fp32/int8 (target >= 3.5) and fp32/int4 (target >= 6);
  - median latency of the surprise step (context encoder + window encoder + predictor, batch 1) on a real
    clip for eager PyTorch and every bundle this machine can run, measured round-robin so that load from
    other processes hits all variants alike; targets: .pte fp32 <= eager, .pte int8 <= onnxruntime int8;
  - fidelity: the cosines measured at export (each graph vs eager on real clips, threshold per precision),
    and the surprise rank correlation / AUROC of each runnable bundle vs fp32 (edge_jepa.quantize).
Prints one table per model and writes everything as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIZE_TARGETS = {"int8": 3.5, "int4": 6.0}  # .pte: fp32 size / quantized size must reach this


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["vit_pico"],
                        help="registered config names (random init) or anything edge_jepa.load takes")
    parser.add_argument("--only", nargs="*", default=None,
                        help="format/precision pairs to run, e.g. executorch/fp32 onnx/int8 (default: all)")
    parser.add_argument("--runs", type=int, default=30, help="timed runs per variant (median reported)")
    parser.add_argument("--pairs-per-type", type=int, default=2, help="matched pairs per violation for AUROC")
    parser.add_argument("--json", type=Path, default=Path("export_targets.json"), help="where to write results")
    parser.add_argument("--keep", type=Path, default=None, help="keep the bundles under this directory")
    parser.add_argument("--int8-activations", default="dynamic", choices=["dynamic", "static"],
                        help="ExecuTorch int8 activations (static: calibrated on real clips)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for eager (torch), ExecuTorch (XNNPACK threadpool) and onnxruntime alike "
                             "(default: each runtime's own default)")
    args = parser.parse_args(argv)
    _quiet()
    if args.threads:
        _set_threads(args.threads)
    results = {"machine": {**_machine(), "threads": args.threads or "runtime defaults"}, "models": {}}
    for name in args.models:
        results["models"][name] = bench_model(name, args)
        print_table(name, results["models"][name])
    args.json.write_text(json.dumps(results, indent=2, default=float))
    print(f"wrote {args.json}")
    return 0


def _quiet() -> None:
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("ET_COREML_LOG_LEVEL", "ERROR")  # the CoreML partitioner logs at INFO by default
    warnings.simplefilter("ignore")
    for name in ("executorch", "coremltools", "torch", "torchao"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _set_threads(n: int) -> None:
    from edge_jepa.bench.cell import set_threads

    set_threads(n, "executorch")  # torch and the ExecuTorch (XNNPACK) threadpool


def _machine() -> dict[str, Any]:
    import platform

    import torch

    return {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "load_average_at_start": os.getloadavg()}


def _load_model(name: str):
    import edge_jepa

    return edge_jepa.create(name) if name in edge_jepa.CONFIGS else edge_jepa.load(name)


def bench_model(name: str, args: argparse.Namespace) -> dict[str, Any]:
    from edge_jepa.export import FORMATS, export_bundle
    from edge_jepa.formats import MANIFEST
    from edge_jepa.quantize import VERIFICATION_SEED_BASE, calibration_clips, fidelity_report
    from edge_jepa.runtime import EagerRunner, Runner

    model = _load_model(name).eval()
    root = args.keep or Path(tempfile.mkdtemp(prefix="edge-jepa-bench-"))
    variants = [(f.name, p) for f in FORMATS.values() for p in f.precisions]
    if args.only:
        variants = [v for v in variants if f"{v[0]}/{v[1]}" in args.only]
    bundles: dict[str, dict[str, Any]] = {}
    runners: dict[str, Any] = {"eager/fp32": EagerRunner(model)}
    for fmt, precision in variants:
        label = f"{fmt}/{precision}"
        print(f"[{name}] exporting {label} ...", flush=True)
        t0 = time.perf_counter()
        try:
            activations = args.int8_activations if (fmt, precision) == ("executorch", "int8") else "dynamic"
            path = export_bundle(model, fmt, precision, out=root / Path(name).name / f"{fmt}-{precision}",
                                 int8_activations=activations)
        except Exception as e:  # noqa: BLE001 - a failed export is a result to report, not a crash
            bundles[label] = {"error": str(e)}
            print(f"  failed: {e}", flush=True)
            continue
        manifest = json.loads((path / MANIFEST).read_text())
        bundles[label] = {"path": str(path), "bytes": manifest["total_bytes"], "export_s": time.perf_counter() - t0,
                          "fidelity": manifest["fidelity"], "delegation": manifest["export"].get("delegation")}
        if manifest["fidelity"].get("verified"):
            runners[label] = Runner.open(path, threads=args.threads) if fmt == "onnx" else Runner.open(path)

    clip = calibration_clips(model.config, 1, seed_base=VERIFICATION_SEED_BASE + 99)[0]
    latency = _round_robin(runners, clip, args.runs)
    print(f"[{name}] surprise rank correlation / AUROC of the runnable bundles ...", flush=True)
    extra = {k: v for k, v in runners.items() if k != "eager/fp32"}
    rows = fidelity_report(model, [], runners=extra, pairs_per_type=args.pairs_per_type)
    surprise = {r.scheme: {"surprise_spearman": r.surprise_spearman, "surprise_auroc": r.surprise_auroc,
                           "predicted_cosine_end_to_end": r.predicted_cosine} for r in rows}
    surprise["eager/fp32"] = surprise.pop("fp32")
    return {"config": model.config.to_dict(), "params": model.num_params(), "bundles": bundles,
            "latency_ms": latency, "surprise": surprise, "targets": targets(bundles, latency)}


def _round_robin(runners: dict[str, Any], clip: Any, runs: int) -> dict[str, float]:
    """Median ms of runner.run(clip) per runner, runs interleaved across runners (after 3 warm-ups each)."""
    import torch

    from edge_jepa.timing import time_round_robin

    with torch.inference_mode():
        timings = time_round_robin({k: (lambda r=r: r.run(clip)) for k, r in runners.items()}, warmup=3, runs=runs)
    return {k: t.p50 for k, t in timings.items()}


def targets(bundles: dict[str, dict[str, Any]], latency: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Each target of the issue with its measured value and whether it is met (None: not measurable here)."""
    from edge_jepa.export import MIN_COSINE

    out: dict[str, dict[str, Any]] = {}
    fp32 = bundles.get("executorch/fp32", {}).get("bytes")
    for quant, ratio in SIZE_TARGETS.items():
        size = bundles.get(f"executorch/{quant}", {}).get("bytes")
        value = fp32 / size if fp32 and size else None
        out[f".pte fp32/{quant} size >= {ratio}"] = {"value": value, "met": None if value is None else value >= ratio}
    pairs = ((".pte fp32 ms <= eager ms", "executorch/fp32", "eager/fp32"),
             (".pte int8 ms <= onnxruntime int8 ms", "executorch/int8", "onnx/int8"))
    for key, a, b in pairs:
        if a in latency and b in latency:
            out[key] = {"value": [latency[a], latency[b]], "met": latency[a] <= latency[b]}
        else:
            out[key] = {"value": None, "met": None}
    for label, b in bundles.items():
        fid = b.get("fidelity", {})
        precision = label.split("/")[1]
        if fid.get("verified"):
            worst = min(fid[m]["cosine"] for m in ("encode_context", "encode_window", "predict"))
            out[f"{label} cosine >= {MIN_COSINE[precision]}"] = {"value": worst, "met": worst >= MIN_COSINE[precision]}
        elif "error" in b:
            out[f"{label} exports"] = {"value": b["error"][:200], "met": False}
    return out


def print_table(name: str, result: dict[str, Any]) -> None:
    print(f"\n== {name} ({result['params'] / 1e6:.2f} M params) ==")
    print(f"{'variant':<26}{'size MB':>9}{'step ms':>9}{'ctx cos':>9}{'win cos':>9}{'pred cos':>9}"
          f"{'rho':>8}{'AUROC':>7}  note")
    for label in ["eager/fp32", *result["bundles"]]:
        b = result["bundles"].get(label, {})
        fid = b.get("fidelity", {})
        s = result["surprise"].get(label, {})
        cos = [f"{fid[m]['cosine']:.5f}" if fid.get("verified") else "-"
               for m in ("encode_context", "encode_window", "predict")]
        note = b.get("error", "")[:60] or ("" if fid.get("verified", True) else "not run here: "
                                           + fid.get("reason", "")[:50])
        size = f"{b['bytes'] / 1e6:.2f}" if "bytes" in b else "-"
        ms = f"{result['latency_ms'][label]:.2f}" if label in result["latency_ms"] else "-"
        rho = f"{s['surprise_spearman']:.4f}" if s else "-"
        auroc = f"{s['surprise_auroc']:.3f}" if s and not math.isnan(s["surprise_auroc"]) else "-"
        print(f"{label:<26}{size:>9}{ms:>9}{cos[0]:>9}{cos[1]:>9}{cos[2]:>9}{rho:>8}{auroc:>7}  {note}")
    print("targets:")
    for key, t in result["targets"].items():
        mark = {True: "MET", False: "MISSED", None: "n/a"}[t["met"]]
        print(f"  {mark:<7}{key}: {t['value']}")


if __name__ == "__main__":
    raise SystemExit(main())
