"""README table (b): the same model on every backend, fp32 and int8, and the .pte-vs-onnxruntime target.

    python benchmarks/bench_backends.py --threads 1 --json backends.json --markdown backends.md
    python benchmarks/bench_backends.py --model vit_mini --formats eager,executorch,onnx   # a student, random weights

Backends: eager PyTorch, torch.compile (inductor; its compilation is part of the warm-up, not of the timed
runs), the ExecuTorch .pte (XNNPACK), onnxruntime (CPU), and any other row of the format table asked for.
Precisions: fp32 and int8 (eager/compile int8 = torchao int8 dynamic; .pte int8 = PT2E; onnx int8 = ONNX
Runtime dynamic quantization). Each cell runs in its own process. Targets: int8 .pte no slower than
onnxruntime int8; fp32 .pte no slower than eager; best fp32 encoder forward >= 60% of the measured matmul.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default", help="model source or registered geometry (random weights); "
                        "'default' is frame-causal (timed by its stream update), 'window' the window model")
    parser.add_argument("--formats", default="eager,compile,executorch,onnx")
    parser.add_argument("--quant", default="fp32,int8")
    parser.add_argument("--frames", type=int, default=None)
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5, help="warm-up runs (torch.compile compiles in the first)")
    parser.add_argument("--auroc-pairs", type=int, default=1)
    parser.add_argument("--json", type=Path, default=Path("bench_backends.json"))
    parser.add_argument("--markdown", type=Path, default=None)
    parser.add_argument("--bundles-dir", type=Path, default=None, help="keep/reuse exported bundles here")
    parser.add_argument("--cell-timeout", type=float, default=1200,
                        help="fail a cell without progress for this many seconds (torch.compile of int8 can stall)")
    args = parser.parse_args(argv)

    from rich.console import Console

    from edge_jepa.bench.report import line_reporter, rich_table, write_report
    from edge_jepa.bench.run import BenchOptions, run_bench
    from edge_jepa.bench.targets import find, matmul_fraction, no_slower, verdicts_markdown
    from edge_jepa.toolkits import quiet_toolkits

    options = BenchOptions(formats=args.formats, precisions=args.quant, frames=args.frames, size=args.size,
                           threads=args.threads, runs=args.runs, warmup=args.warmup, auroc_pairs=args.auroc_pairs,
                           bundles_dir=args.bundles_dir, cell_timeout_s=args.cell_timeout)
    with quiet_toolkits():
        rows = run_bench([args.model], options, line_reporter())
    verdicts = [
        no_slower("int8 .pte no slower than onnxruntime int8", find(rows, format="executorch", precision="int8"),
                  find(rows, format="onnx", precision="int8")),
        no_slower("fp32 .pte no slower than eager fp32", find(rows, format="executorch", precision="fp32"),
                  find(rows, format="eager", precision="fp32")),
        matmul_fraction("fp32 encoder forward >= 60% of the measured fp32 matmul throughput", rows, 0.6),
    ]
    Console(width=200).print(rich_table(rows, title=f"{args.model}: backends (ms per call, batch 1)"))
    text = verdicts_markdown(verdicts)
    print(text)
    write_report(rows, json_path=args.json, markdown_path=args.markdown, title=f"Backends on {args.model}",
                 extra_markdown=text)
    print(f"wrote {args.json}" + (f" and {args.markdown}" if args.markdown else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
