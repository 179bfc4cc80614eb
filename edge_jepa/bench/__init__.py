"""`edge-jepa bench`: latency, memory, size and fidelity of every format x precision, side by side.

    from edge_jepa.bench import BenchOptions, run_bench, save_rows
    rows = run_bench(["default"], BenchOptions(formats=("eager", "executorch"), precisions=("fp32", "int8")))
    save_rows(rows, "bench.json")

Modules: schema (the row and its JSON file), memory (RSS), matmul
(this machine's fp32 throughput), parts (the calls timed on a Runner), cell (one cell, in its own process),
run (sources x formats x precisions), report (tables, Markdown, compare), targets (verdicts), device
(parsers of executor_runner / trtexec / time -v output for export/{android,ios,jetson}/).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from edge_jepa._verbs import callable_module

_LAZY = {"BenchOptions": "run", "Reporter": "run", "run_bench": "run", "BenchRow": "schema",
         "BenchSchemaError": "schema", "load_rows": "schema", "save_rows": "schema"}
__all__ = ["BenchOptions", "BenchRow", "BenchSchemaError", "Reporter", "load_rows", "run_bench", "save_rows"]

if TYPE_CHECKING:
    from edge_jepa.bench.run import BenchOptions, Reporter, run_bench
    from edge_jepa.bench.schema import BenchRow, BenchSchemaError, load_rows, save_rows


def __getattr__(name: str) -> Any:
    # imported on first use: the submodules (schema, device, ...) are used on their own without torch
    if name not in _LAZY:
        raise AttributeError(f"module 'edge_jepa.bench' has no attribute {name!r}")
    return getattr(importlib.import_module(f"edge_jepa.bench.{_LAZY[name]}"), name)


def bench(sources: str | Sequence[str], options: BenchOptions | None = None,
          reporter: Reporter | None = None) -> list[BenchRow]:
    """`edge_jepa.bench(...)`: `run_bench` on one source (a model, a registered geometry, a bundle) or several."""
    from edge_jepa.bench.run import run_bench

    return run_bench([sources] if isinstance(sources, str) else list(sources), options, reporter)


callable_module(__name__, bench)  # see edge_jepa._verbs
