"""Benchmark rows for people: a rich table for the terminal, Markdown for the README, and a side-by-side
comparison of result files from different machines or devices (same schema)."""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.table import Table

from edge_jepa.bench.schema import PARTS, BenchRow
from edge_jepa.io import atomic_file

PART_LABELS = (("encode_context", "ctx"), ("encode_window", "win"), ("predict", "pred"))


def _num(value: float | None, fmt: str = ".2f") -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)


def _latency(row: BenchRow) -> str:
    if row.p50_ms is None:
        return "-"
    return f"{row.p50_ms:.2f} / {row.p90_ms:.2f} / {row.p99_ms:.2f}"


def _parts(row: BenchRow) -> str:
    values = [row.parts.get(name, {}).get("p50_ms") for name, _ in PART_LABELS]
    return "-" if all(v is None for v in values) else " / ".join(_num(v) for v in values)


def _throughput(row: BenchRow) -> str:
    if row.gflops_per_s is None:
        window = row.parts.get("encode_window", {})
        if window.get("gflops_per_s") is None:
            return "-"
        return f"window {window['gflops_per_s']:.1f} ({100 * window['matmul_fraction']:.0f}%)"
    return f"{row.gflops_per_s:.1f} ({100 * row.matmul_fraction:.0f}%)"


def _clip(row: BenchRow) -> str:
    return f"{row.frames}x{row.size}" if row.frames else "-"


def _note(row: BenchRow) -> str:
    return row.reason if row.status != "ok" else row.notes


HEADERS = ("model", "clip", "format", "precision", "step ms p50 / p90 / p99", "FPS",
           "ctx / win / pred p50 ms", "peak RSS MB", "size MB", "cosine", "AUROC", "GFLOPs",
           "GFLOP/s (% matmul)", "note")


def row_cells(row: BenchRow) -> list[str]:
    return [row.model or "-", _clip(row), row.format, row.precision, _latency(row), _num(row.fps, ".1f"),
            _parts(row), _num(row.peak_rss_mb, ".0f"), _num(row.size_mb), _num(row.cosine, ".5f"),
            _num(row.auroc, ".3f"), _num(row.gflops, ".3f"), _throughput(row),
            f"{row.status}: {_note(row)}" if row.status != "ok" else _note(row)]


def rich_table(rows: Sequence[BenchRow], title: str | None = None) -> Table:
    """The rows for a terminal; skip/fail reasons and notes go under the table, numbered, to keep it narrow."""
    notes = []
    table = Table(title=title, show_lines=False, caption_justify="left")
    for h in (*HEADERS[:-1], "#"):
        table.add_column(h, justify="left" if h in ("model", "format", "precision") else "right", overflow="fold")
    for row in rows:
        style = {"skipped": "yellow", "failed": "red"}.get(row.status)
        note = row_cells(row)[-1]
        if note:
            notes.append(f"[{len(notes) + 1}] {row.format}/{row.precision}: {note}")
        table.add_row(*row_cells(row)[:-1], str(len(notes)) if note else "", style=style)
    table.caption = "\n".join(notes) or None
    return table


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_md_escape(c) for c in cells) + " |" for cells in body]
    return "\n".join(lines) + "\n"


def markdown(rows: Sequence[BenchRow]) -> str:
    """The README table of `rows` (threads and machine in a line under it)."""
    text = markdown_table(HEADERS, [row_cells(r) for r in rows])
    devices = sorted({r.device for r in rows if r.device})
    threads = sorted({r.threads for r in rows if r.threads})
    matmul = sorted({round(r.matmul_gflops_per_s) for r in rows if r.matmul_gflops_per_s})
    facts = []
    if devices:
        facts.append("measured on " + "; ".join(devices))
    if threads:
        facts.append(f"{', '.join(map(str, threads))} thread(s)")
    if matmul:
        facts.append(f"fp32 matmul (best of 10) {', '.join(map(str, matmul))} GFLOP/s in the same run")
    return text + ("\n" + ", ".join(facts) + ".\n" if facts else "")


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_file(path) as tmp:
        tmp.write_text(text)
    return Path(path)


# --------------------------------------------------------------------------------------------- compare


ROW_METRICS = ("p50_ms", "p90_ms", "p99_ms", "fps", "peak_rss_mb", "size_mb", "cosine", "auroc", "gflops_per_s",
               "matmul_fraction")
PART_METRICS = ("p50_ms", "p90_ms", "p99_ms", "gflops_per_s", "matmul_fraction")


def check_metric(metric: str) -> str:
    part, dot, field = metric.partition(".")
    if (not dot and metric in ROW_METRICS) or (dot and part in PARTS and field in PART_METRICS):
        return metric
    raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(ROW_METRICS)} or PART.FIELD with PART in "
                     f"{', '.join(PARTS)} and FIELD in {', '.join(PART_METRICS)}")


Comparison = tuple[list[str], list[list[str]]]


def compare(files: Sequence[tuple[str, Sequence[BenchRow]]], metric: str = "p50_ms") -> Comparison:
    """Side-by-side rows: one line per (model, clip, format, precision) found in any file, one column per file
    (the metric, or the skip/fail status), and each file's ratio to the first where both were measured."""
    check_metric(metric)
    if not files:
        raise ValueError("compare needs at least one result file")
    keys: dict[tuple, None] = {}
    by_file = []
    for _, rows in files:
        index = {}
        for r in rows:
            keys.setdefault(r.key(), None)
            index.setdefault(r.key(), r)
        by_file.append(index)
    headers = ["model", "clip", "format", "precision", *(label for label, _ in files)]
    headers += [f"{label} / {files[0][0]}" for label, _ in files[1:]]
    body = []
    for key in keys:
        model, frames, size, fmt, precision = key
        values = []
        cells = [model or "-", f"{frames}x{size}" if frames else "-", fmt, precision]
        for index in by_file:
            r = index.get(key)
            value = _metric(r, metric) if r is not None else None
            values.append(value)
            cells.append(_num(value) if value is not None else ("absent" if r is None else r.status))
        base = values[0]
        cells += [f"{v / base:.2f}x" if v is not None and base else "-" for v in values[1:]]
        body.append(cells)
    return headers, body


def _metric(row: BenchRow, metric: str) -> float | None:
    if row.status != "ok":
        return None
    if "." in metric:  # part.field, e.g. encode_window.p50_ms
        part, _, field = metric.partition(".")
        return row.parts.get(part, {}).get(field)
    value = getattr(row, metric, None)
    return value if isinstance(value, int | float) else None


def compare_table(headers: Sequence[str], body: Sequence[Sequence[str]], title: str | None = None) -> Table:
    table = Table(title=title)
    for h in headers:
        table.add_column(h, justify="left" if h in ("model", "format", "precision") else "right")
    for cells in body:
        table.add_row(*cells)
    return table


# --------------------------------------------------------------------------------------------- scripts


def line_reporter(stream: Any = None) -> Any:
    """A Reporter that prints one line per cell and per step inside it (for the benchmark scripts and logs)."""
    from edge_jepa.bench.run import Reporter

    out = stream or sys.stderr
    state = {"label": ""}

    def cell(label: str, index: int, total: int) -> None:
        state["label"] = f"[{index}/{total}] {label}"
        print(state["label"], file=out, flush=True)

    def message(text: str) -> None:
        run = re.search(r"run (\d+)/(\d+)$", text)
        if run is None or run.group(1) == run.group(2) or int(run.group(1)) % 10 == 0:
            print(f"    {state['label']}: {text}", file=out, flush=True)

    def done(row: BenchRow) -> None:
        what = f"p50 {row.p50_ms:.2f} ms" if row.p50_ms is not None else row.status
        print(f"    {state['label']}: {what} {row.reason}".rstrip(), file=out, flush=True)

    return Reporter(cell=cell, message=message, done=done)


def write_report(rows: Sequence[BenchRow], *, json_path: str | os.PathLike | None = None,
                 markdown_path: str | os.PathLike | None = None, title: str = "", extra_markdown: str = "") -> None:
    """The rows as JSON (bench schema) and as a Markdown section (title, table, extra text such as verdicts)."""
    from edge_jepa.bench.schema import save_rows

    if json_path:
        save_rows(list(rows), json_path)
    if markdown_path:
        head = f"### {title}\n\n" if title else ""
        write_text(markdown_path, head + markdown(rows) + (f"\n{extra_markdown}" if extra_markdown else ""))
