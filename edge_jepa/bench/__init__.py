"""`edge-jepa bench`: latency, memory, size and fidelity of every format x precision, side by side.

    from edge_jepa.bench import BenchOptions, run_bench, save_rows
    rows = run_bench(["default"], BenchOptions(formats=("eager", "executorch"), precisions=("fp32", "int8")))
    save_rows(rows, "bench.json")

Modules: schema (the row and its JSON file), timing (warm-up, timed runs, percentiles), memory (RSS), matmul
(this machine's fp32 throughput), parts (the calls timed on a Runner), cell (one cell, in its own process),
run (sources x formats x precisions), report (tables, Markdown, compare), targets (verdicts), device
(parsers of executor_runner / trtexec / time -v output for export/{android,ios,jetson}/).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {"BenchOptions": "run", "Reporter": "run", "run_bench": "run", "BenchRow": "schema",
         "BenchSchemaError": "schema", "load_rows": "schema", "save_rows": "schema"}
__all__ = ["BenchOptions", "BenchRow", "BenchSchemaError", "Reporter", "load_rows", "run_bench", "save_rows"]

if TYPE_CHECKING:
    from edge_jepa.bench.run import BenchOptions, Reporter, run_bench
    from edge_jepa.bench.schema import BenchRow, BenchSchemaError, load_rows, save_rows


def __getattr__(name: str) -> Any:
    # imported on first use: the submodules (timing, device, ...) are used on their own without torch
    if name not in _LAZY:
        raise AttributeError(f"module 'edge_jepa.bench' has no attribute {name!r}")
    return getattr(importlib.import_module(f"edge_jepa.bench.{_LAZY[name]}"), name)
