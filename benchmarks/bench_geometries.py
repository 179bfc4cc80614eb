"""README table (a): V-JEPA 2 ViT-L / ViT-H / ViT-g geometries vs the students, and the 200x target.

    python benchmarks/bench_geometries.py --threads 1 --json geometries.json --markdown geometries.md
    python benchmarks/bench_geometries.py --clip stream --runs 5          # skip the minutes-long release clips

Weights are random (seed 0): latency does not depend on them. Rows, all in one bench-schema JSON:
  - teachers (--teachers) at the release clip (64 frames x 256 px, 8192 tokens): by default only the window
    encoder (--release-parts), once (--release-runs): one forward of ViT-g takes minutes on a CPU core;
  - teachers at the stream window of the default model (its clip: 8 frames x 64 px), every part;
  - students (--students) at their stream operating point (8 frames x 128 px) as --student-cells;
  - the embedded default model as --default-cells: the frame-causal world_pico, timed by its stream update (one
    frame encoded, the predictor against a full KV cache; the bundle's cosines from its export verification).
Targets: default int8 .pte >= 200x faster than ViT-L fp32 eager on the same window; best fp32 encoder
forward >= 60% of this machine's fp32 matmul throughput (measured in the same run, same threads).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def cells(text: str) -> list[tuple[str, str]]:
    out = []
    for item in (s.strip() for s in text.split(",") if s.strip()):
        fmt, slash, precision = item.partition("/")
        if not slash:
            raise argparse.ArgumentTypeError(f"cells are FORMAT/PRECISION (e.g. executorch/int8), got {item!r}")
        out.append((fmt, precision))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", choices=["release", "stream", "both"], default="both",
                        help="teachers at the release clip, at the default model's stream window, or both")
    parser.add_argument("--teachers", default="vit_large,vit_huge,vit_giant")
    parser.add_argument("--release-teachers", default=None,
                        help="teachers timed at the release clip (default: --teachers)")
    parser.add_argument("--students", default="vit_small,vit_tiny,vit_mini,vit_pico")
    parser.add_argument("--student-cells", type=cells, default=cells("eager/fp32,executorch/int8"))
    parser.add_argument("--default-cells", type=cells, default=cells("eager/fp32,executorch/int8"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=5, help="timed runs at the stream window")
    parser.add_argument("--default-runs", type=int, default=30, help="timed runs of the default model's cells")
    parser.add_argument("--release-runs", type=int, default=1, help="timed runs at the release clip")
    parser.add_argument("--release-parts", default="encode_window",
                        help="parts timed at the release clip (step,encode_context,encode_window,predict)")
    parser.add_argument("--parts", default="step,encode_context,encode_window,predict",
                        help="parts timed at the stream window")
    parser.add_argument("--json", type=Path, default=Path("bench_geometries.json"))
    parser.add_argument("--markdown", type=Path, default=None)
    parser.add_argument("--bundles-dir", type=Path, default=None, help="keep/reuse exported bundles here")
    args = parser.parse_args(argv)

    from edge_jepa.bench.report import line_reporter, rich_table, write_report
    from edge_jepa.bench.run import BenchOptions, run_bench
    from edge_jepa.bench.targets import find, matmul_fraction, speedup, verdicts_markdown
    from edge_jepa.checkpoints import load
    from edge_jepa.models.config import STREAM_CLIP
    from edge_jepa.toolkits import quiet_toolkits

    teachers = [t for t in args.teachers.split(",") if t]
    students = [s for s in args.students.split(",") if s]
    default_clip = load("default").config.clip  # teachers are timed on the embedded default model's window
    reporter = line_reporter()
    rows = []

    def run(sources: list[str], cells_: list[tuple[str, str]], **kw) -> None:
        if not sources:
            return
        for fmt, precision in cells_:
            options = BenchOptions(formats=(fmt,), precisions=(precision,), threads=args.threads,
                                   bundles_dir=args.bundles_dir, **kw)
            rows.extend(run_bench(sources, options, reporter))

    geometry = {"fidelity_clips": 0, "auroc_pairs": 0}
    stream_parts = tuple(args.parts.split(","))
    with quiet_toolkits():
        if args.clip in ("release", "both"):
            release = [t for t in (args.release_teachers or args.teachers).split(",") if t]
            run(release, [("eager", "fp32")], runs=args.release_runs, warmup=0,
                parts=tuple(args.release_parts.split(",")), **geometry)
        if args.clip in ("stream", "both"):
            run(teachers, [("eager", "fp32")], frames=default_clip.frames, size=default_clip.size, runs=args.runs,
                warmup=1, parts=stream_parts, **geometry)
        run(students, args.student_cells, frames=STREAM_CLIP.frames, size=STREAM_CLIP.size, runs=args.runs,
            warmup=2, parts=stream_parts, **geometry)
        run(["default"], args.default_cells, runs=args.default_runs, warmup=3, fidelity_clips=2, auroc_pairs=1)

    pte = find(rows, source="default", format="executorch", precision="int8")
    vitl = find(rows, model="vit_large", format="eager", precision="fp32", frames=default_clip.frames,
                size=default_clip.size)
    verdicts = [
        speedup("default int8 .pte >= 200x faster than ViT-L fp32 eager on the same stream window", pte, vitl, 200),
        matmul_fraction("fp32 encoder forward >= 60% of the measured fp32 matmul throughput", rows, 0.6),
    ]
    from rich.console import Console

    Console(width=200).print(rich_table(rows, title="geometries vs students (ms per call, batch 1)"))
    text = verdicts_markdown(verdicts)
    print(text)
    write_report(rows, json_path=args.json, markdown_path=args.markdown,
                 title="V-JEPA 2 geometries vs students", extra_markdown=text)
    print(f"wrote {args.json}" + (f" and {args.markdown}" if args.markdown else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
