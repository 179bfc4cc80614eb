"""Jetson (or any NVIDIA GPU): the ONNX bundle through TensorRT's `trtexec`, or ONNX Runtime's TensorRT/CUDA
providers, as rows of the bench schema.

    # trtexec: build an engine per graph (fp16 or int8), time it, parse --exportTimes
    python export/jetson/jetson_tensorrt.py trtexec BUNDLE --precision fp16 --json jetson-trt.json
    python export/jetson/jetson_tensorrt.py trtexec BUNDLE --precision int8 --dry-run   # print the commands

    # ONNX Runtime with execution providers (tensorrt, cuda, cpu; fidelity vs fp32 eager when the source loads)
    python export/jetson/jetson_tensorrt.py ort BUNDLE --providers tensorrt,cuda,cpu --precision fp16

BUNDLE is an fp32 `edge-jepa export --format onnx` directory (TensorRT builds its own fp16/int8 engines; the
.onnx files read their weights from encoder.weights beside them). trtexec mode: one `trtexec --onnx=...
--saveEngine=... [--fp16|--int8] --warmUp=MS --iterations=N --duration=0 --percentile=50,90,99
--exportTimes=...` per graph, under GNU `time -v` when present (peak RSS); the step is the sum of the three
graphs' i-th queries. `--int8` without a calibration cache (`--calib`) times int8 kernels on uncalibrated
scales: valid for latency, not for accuracy. ort mode is `edge-jepa bench` on the bundle with those providers.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from edge_jepa.bench.device import (  # noqa: E402
    BUNDLE_METHODS,
    bundle_manifest,
    emit,
    parse_max_rss_mb,
    parse_trtexec_times,
    row_from_parts,
)

PRECISION_FLAGS = {"fp32": [], "fp16": ["--fp16"], "int8": ["--int8", "--fp16"]}  # int8 with fp16 fallback
PROVIDERS = {"tensorrt": "TensorrtExecutionProvider", "cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}


def trtexec_commands(bundle: Path, manifest: dict, args: argparse.Namespace) -> dict[str, list[str]]:
    """method -> the exact trtexec command line (prefixed by `time -v` when GNU time is used)."""
    out = {}
    for method in BUNDLE_METHODS:
        onnx = bundle / manifest["methods"][method]["file"]
        stem = f"{method}-{args.precision}"
        command = [args.trtexec, f"--onnx={onnx}", f"--saveEngine={args.work_dir / (stem + '.plan')}",
                   *PRECISION_FLAGS[args.precision], f"--warmUp={args.warmup_ms}", f"--iterations={args.iterations}",
                   "--duration=0", "--percentile=50,90,99", f"--exportTimes={args.work_dir / (stem + '.times.json')}"]
        if args.calib:
            command.append(f"--calib={args.calib}")
        out[method] = ([args.time, "-v"] if args.time else []) + command
    return out


def run_trtexec(bundle: Path, manifest: dict, args: argparse.Namespace) -> list:
    commands = trtexec_commands(bundle, manifest, args)
    if args.dry_run:
        for command in commands.values():
            print(shlex.join(command))
        return []
    if shutil.which(args.trtexec) is None and not Path(args.trtexec).is_file():
        raise SystemExit(f"{args.trtexec}: trtexec not found (JetPack: /usr/src/tensorrt/bin/trtexec)")
    args.work_dir.mkdir(parents=True, exist_ok=True)
    per_method, peaks, engine_bytes = {}, [], 0
    for method, command in commands.items():
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"trtexec failed on {method} (exit {done.returncode}):\n{done.stdout[-2000:]}"
                             f"{done.stderr[-2000:]}")
        stem = f"{method}-{args.precision}"
        per_method[method] = parse_trtexec_times((args.work_dir / f"{stem}.times.json").read_text())
        peaks.append(parse_max_rss_mb(done.stderr))
        engine_bytes += (args.work_dir / f"{stem}.plan").stat().st_size
    clip = manifest["clip"]
    row = row_from_parts(per_method, format="tensorrt", precision=args.precision, model=manifest["model"]["name"],
                         source=str(bundle), frames=clip["frames"], size=clip["size"], runs=args.iterations,
                         size_mb=engine_bytes / 1e6, tool="trtexec", device=args.device_name,
                         cosine_from="not measured: trtexec feeds random inputs (use the ort mode for fidelity)",
                         notes="step = sum of the three engines' queries; host latency (H2D + compute + D2H)"
                         + ("; int8 without calibration: latency only" if args.precision == "int8" and not args.calib
                            else ""))
    known = [p for p in peaks if p is not None]
    row.peak_rss_mb = max(known) if known else None
    return [row]


def run_ort(bundle: Path, args: argparse.Namespace) -> list:
    from edge_jepa.bench.run import BenchOptions, run_bench

    names = [p.strip() for p in args.providers.split(",") if p.strip()]
    unknown = [p for p in names if p not in PROVIDERS]
    if unknown:
        raise SystemExit(f"unknown providers {unknown}; choose from {', '.join(PROVIDERS)}")
    providers: list = []
    for name in names:
        if name == "tensorrt":
            providers.append((PROVIDERS[name], {"trt_fp16_enable": args.precision in ("fp16", "int8"),
                                                "trt_int8_enable": args.precision == "int8",
                                                "trt_engine_cache_enable": True,
                                                "trt_engine_cache_path": str(args.work_dir / "trt-cache")}))
        else:
            providers.append(PROVIDERS[name])
    if args.dry_run:
        print(json.dumps({"bundle": str(bundle), "providers": providers}))
        return []
    import onnxruntime as ort

    available = ort.get_available_providers()
    missing = [PROVIDERS[n] for n in names if PROVIDERS[n] not in available]
    if missing:
        raise SystemExit(f"this onnxruntime ({ort.__version__}) lacks {', '.join(missing)} (it has "
                         f"{', '.join(available)}); on a Jetson install the onnxruntime-gpu wheel for your JetPack")
    options = BenchOptions(formats=("onnx",), precisions=("fp32",), threads=args.threads, runs=args.iterations,
                           warmup=args.warmup, auroc_pairs=0, runner_options={"providers": providers})
    rows = run_bench([str(bundle)], options)
    for row in rows:
        row.format = "onnx-" + names[0] if names[0] != "cpu" else "onnx"
        row.precision = args.precision if names[0] == "tensorrt" else row.precision
        row.tool = f"onnxruntime ({', '.join(PROVIDERS[n] for n in names)})"
        row.device = args.device_name or row.device
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["trtexec", "ort"])
    parser.add_argument("bundle", type=Path, help="fp32 onnx bundle directory")
    parser.add_argument("--precision", choices=list(PRECISION_FLAGS), default="fp16")
    parser.add_argument("--iterations", type=int, default=100, help="timed queries per graph (trtexec) / runs (ort)")
    parser.add_argument("--warmup-ms", type=int, default=500, help="trtexec --warmUp")
    parser.add_argument("--warmup", type=int, default=10, help="ort: warm-up runs")
    parser.add_argument("--calib", default=None, help="trtexec --calib: int8 calibration cache")
    parser.add_argument("--trtexec", default="trtexec", help="trtexec binary (JetPack: /usr/src/tensorrt/bin/trtexec)")
    parser.add_argument("--time", default="/usr/bin/time" if Path("/usr/bin/time").is_file() else "",
                        help="GNU time, run as `TIME -v trtexec ...` for the peak RSS ('' to disable)")
    parser.add_argument("--providers", default="tensorrt,cuda,cpu", help="ort: tensorrt, cuda, cpu (in order)")
    parser.add_argument("--threads", type=int, default=1, help="ort: CPU threads")
    parser.add_argument("--work-dir", type=Path, default=Path("trt-work"), help="engines, timing files, caches")
    parser.add_argument("--device-name", default="", help="the rows' device field (default: this machine)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--dry-run", action="store_true", help="print what would run, run nothing")
    args = parser.parse_args(argv)

    hint = "TensorRT wants the fp32 onnx bundle (edge-jepa export SOURCE --format onnx)"
    try:
        manifest = bundle_manifest(args.bundle, ("onnx",), hint)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    if manifest.get("precision") != "fp32":
        raise SystemExit(f"{args.bundle}: is an onnx/{manifest.get('precision')} bundle; {hint}")
    if args.mode == "trtexec":
        args.device_name = args.device_name or "jetson (trtexec)"
        rows = run_trtexec(args.bundle, manifest, args)
    else:
        rows = run_ort(args.bundle, args)
    if args.dry_run:
        return 0
    emit(rows, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
