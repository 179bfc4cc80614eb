"""`edge-jepa bench SOURCE_OR_BUNDLE...` (latency, memory, size, fidelity per format x precision) and
`edge-jepa bench compare A.json B.json ...` (results of several machines side by side)."""

from __future__ import annotations

from pathlib import Path

import click
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from typer.core import TyperGroup

from edge_jepa.cli.app import app, console, fail
from edge_jepa.cli.errors import positive

# Wide tables: rich falls back to 80 columns when stdout is not a terminal (logs, CI), which folds every cell.
TABLE_WIDTH = None if console.is_terminal else 200


class BenchGroup(TyperGroup):
    """Routes `bench compare ...` to the compare command and anything else (`bench SOURCE ...`) to `bench run`,
    so that the variadic SOURCE argument never swallows the subcommand name."""

    default_command = "run"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


bench_app = typer.Typer(
    cls=BenchGroup,
    no_args_is_help=True,
    help="Latency, memory, size and fidelity of each format x precision (`bench SOURCE...`, same as `bench run`), "
         "or `bench compare A.json B.json` for results of several machines side by side.",
)
app.add_typer(bench_app, name="bench")

ALL_PARTS = "step,encode_context,encode_window,predict"


@bench_app.command("run")
def bench_run(
    sources: list[str] = typer.Argument(..., help="'default' (frame-causal: its stream step), 'window', a model "
                                        "source, a registered geometry "
                                        "(vit_large, ...: random weights) or an export bundle directory"),
    formats: str = typer.Option("eager,executorch,onnx,coreml", "--formats", "-f",
                                help="comma-separated: eager, compile, executorch, executorch-coreml, onnx, coreml"),
    quant: str = typer.Option("fp32,int8", "--quant", "-q", help="comma-separated precisions: fp32, fp16, int8, int4"),
    frames: int = typer.Option(None, "--frames", "-T", min=1, help="clip frames (default: each model's own clip)"),
    size: int = typer.Option(None, "--size", "-S", min=1, help="clip height = width in pixels (default: the model's)"),
    threads: int = typer.Option(1, "--threads",
                                min=1, help="CPU threads for every runtime and for the matmul yardstick"),
    runs: int = typer.Option(20, min=1, help="timed runs of each part after the warm-up"),
    warmup: int = typer.Option(3, min=0, help="untimed warm-up runs of each part"),
    parts: str = typer.Option(ALL_PARTS, help="which calls to time (comma-separated; step = the full surprise step)"),
    fidelity_clips: int = typer.Option(2, min=0, help="real clips for the cosine vs fp32 eager (0: skip)"),
    auroc_pairs: int = typer.Option(1, min=0, help="matched pairs per violation type for the surprise AUROC (0: skip)"),
    json_out: Path = typer.Option(None, "--json", help="write the rows here (a JSON list in the bench schema)"),
    markdown_out: Path = typer.Option(None, "--markdown", help="write the Markdown table here"),
    bundles_dir: Path = typer.Option(None, help="keep exported bundles here and reuse them (default: temporary)"),
    isolate: bool = typer.Option(True, "--isolate/--no-isolate",
                                 help="measure each cell in its own process (honest per-cell peak RSS)"),
    matmul_size: int = typer.Option(1024, min=1,
                                    help="n of the n x n fp32 matmul that measures this machine's throughput"),
    cell_timeout: float = typer.Option(None, callback=positive,
                                       help="fail a cell that reports no progress for this many seconds "
                                       "(e.g. a torch.compile that never ends)"),
) -> None:
    """Benchmark models or bundles: p50/p90/p99 of the surprise step and its parts, FPS, peak RSS, size,
    cosine and AUROC vs fp32 eager, GFLOP/s as a fraction of this machine's fp32 matmul."""
    from edge_jepa.bench.report import markdown, rich_table, write_text
    from edge_jepa.bench.run import BenchOptions, Reporter, run_bench
    from edge_jepa.bench.schema import save_rows
    from edge_jepa.outputs import check_writable
    from edge_jepa.runtime.bundle import BundleError
    from edge_jepa.toolkits import quiet_toolkits

    for path in (json_out, markdown_out):
        if path:
            check_writable(path)  # before the benchmark, not after
    try:
        options = BenchOptions(formats=formats, precisions=quant, frames=frames, size=size, threads=threads,
                               warmup=warmup, runs=runs, parts=tuple(p.strip() for p in parts.split(",")),
                               fidelity_clips=fidelity_clips, auroc_pairs=auroc_pairs, isolate=isolate,
                               bundles_dir=bundles_dir, matmul_size=matmul_size, cell_timeout_s=cell_timeout)
    except ValueError as e:
        raise fail(str(e)) from None
    columns = (SpinnerColumn(), TextColumn("[bold]{task.fields[cell]}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("{task.description}"))
    with Progress(*columns, console=console, transient=True) as progress, quiet_toolkits():
        task = progress.add_task("preparing", total=None, cell="bench")

        def on_cell(label: str, index: int, total: int) -> None:
            progress.update(task, total=total, completed=index - 1, cell=label, description="")

        reporter = Reporter(cell=on_cell, message=lambda text: progress.update(task, description=text),
                            done=lambda row: progress.advance(task))
        try:
            rows = run_bench(sources, options, reporter)
        except (ValueError, FileNotFoundError, BundleError) as e:
            raise fail(str(e)) from None
    console.print(rich_table(rows, title="edge-jepa bench (ms per call, batch 1)"), width=TABLE_WIDTH)
    if json_out:
        save_rows(rows, json_out)
        console.print(f"wrote {json_out}")
    if markdown_out:
        write_text(markdown_out, markdown(rows))
        console.print(f"wrote {markdown_out}")
    if any(r.status == "failed" for r in rows):
        raise typer.Exit(1)


@bench_app.command("compare")
def bench_compare(
    files: list[Path] = typer.Argument(..., help="result files (JSON lists in the bench schema)"),
    metric: str = typer.Option("p50_ms", help="row field (p50_ms, fps, peak_rss_mb, ...) or PART.FIELD "
                               "(encode_window.p50_ms)"),
    labels: str = typer.Option(None, help="comma-separated column labels (default: the file names)"),
    markdown_out: Path = typer.Option(None, "--markdown", help="write the comparison as Markdown here"),
) -> None:
    """Side-by-side table of benchmark results from different machines/devices (ratios to the first file)."""
    from edge_jepa.bench.report import compare, compare_table, markdown_table, write_text
    from edge_jepa.bench.schema import BenchSchemaError, load_rows

    names = [s.strip() for s in labels.split(",")] if labels else [f.stem for f in files]
    if len(names) != len(files):
        raise fail(f"--labels gives {len(names)} labels for {len(files)} files")
    try:
        loaded = [(name, load_rows(f)) for name, f in zip(names, files, strict=True)]
        headers, body = compare(loaded, metric)
    except (BenchSchemaError, FileNotFoundError, ValueError) as e:
        raise fail(str(e)) from None
    console.print(compare_table(headers, body, title=f"{metric} side by side"), width=TABLE_WIDTH)
    if markdown_out:
        write_text(markdown_out, markdown_table(headers, body))
        console.print(f"wrote {markdown_out}")
