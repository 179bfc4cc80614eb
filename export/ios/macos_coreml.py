"""iOS / macOS: time the bundle's CoreML package with coremltools' MLModel.predict on a Mac, as bench rows.

    python export/ios/macos_coreml.py BUNDLE --compute-units ALL --json mac.json
    python export/ios/macos_coreml.py BUNDLE --compute-units CPU_AND_NE,CPU_ONLY --runs 50

BUNDLE is an `edge-jepa export --format coreml` directory (model.mlpackage with the functions encode_context,
encode_window, predict), or a frame-causal model's (one function, stream_step: its row times one steady-state
stream update, the key/value cache full). Each compute-unit setting is one row (`edge-jepa bench` on the bundle with
CoreMLRunner(compute_units=...)): p50/p90/p99 of the step and of each function, peak RSS of a process of its
own, size, cosine vs fp32 eager (when the bundle's source model loads on the Mac) and GFLOP/s. CoreML runs
only on macOS: elsewhere the script stops with exit code 2 before doing anything.

For an iPhone or iPad, use Xcode's performance report (it measures what coremltools on a Mac cannot: the
device's own CPU/GPU/Neural Engine): open model.mlpackage in Xcode, select the Performance tab, press "+",
pick the connected device and the compute units, and run. The report gives the load time and the median
prediction time, and which compute unit runs each operation (it does not measure memory or power). Xcode
times the model's default function; for each of the three functions, open the package per function or
compare with the per-function rows this script writes on a Mac. Copy the medians into a bench-schema row
(format coreml, tool "Xcode performance report") to compare them with `edge-jepa bench compare`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

COMPUTE_UNITS = ("ALL", "CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", type=Path, help="coreml bundle directory")
    parser.add_argument("--compute-units", default="ALL", help=f"comma-separated: {', '.join(COMPUTE_UNITS)}")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--auroc-pairs", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    if sys.platform != "darwin":
        print(f"error: CoreML prediction runs only on macOS (this is {sys.platform}); run this script on a Mac, or "
              "use Xcode's performance report for an iPhone/iPad (see --help)", file=sys.stderr)
        return 2
    units = [u.strip() for u in args.compute_units.split(",") if u.strip()]
    unknown = [u for u in units if u not in COMPUTE_UNITS]
    if unknown or not units:
        print(f"error: unknown compute units {unknown}; choose from {', '.join(COMPUTE_UNITS)}", file=sys.stderr)
        return 2
    from edge_jepa.bench.device import bundle_manifest, emit
    from edge_jepa.bench.report import line_reporter
    from edge_jepa.bench.run import BenchOptions, run_bench

    try:
        manifest = bundle_manifest(args.bundle, ("coreml",), "export one with --format coreml")
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    rows = []
    for unit in units:
        options = BenchOptions(formats=("coreml",), precisions=(manifest["precision"],), runs=args.runs,
                               warmup=args.warmup, auroc_pairs=args.auroc_pairs,
                               runner_options={"compute_units": unit})
        for row in run_bench([str(args.bundle)], options, line_reporter()):
            row.tool = f"coremltools MLModel.predict (compute units {unit})"
            row.format = "coreml" if unit == "ALL" else f"coreml-{unit.lower()}"  # distinct compare keys
            rows.append(row)
    emit(rows, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
