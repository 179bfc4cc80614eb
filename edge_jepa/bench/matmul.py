"""This machine's fp32 matmul throughput: the yardstick for "what fraction of the CPU does a model use"."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from edge_jepa.timing import time_calls, torch_threads


@dataclass(frozen=True)
class MatmulThroughput:
    """The fastest of the timed runs: the machine's attainable throughput (a shared machine's load only ever
    slows a run down, so the best run is the stable estimate; the median is kept for reference)."""

    n: int  # square matrices n x n
    threads: int
    best_ms: float
    median_ms: float

    @property
    def gflops_per_s(self) -> float:
        return 2 * self.n**3 / (self.best_ms * 1e-3) / 1e9


def matmul_throughput(threads: int | None = None, n: int = 1024, runs: int = 10, warmup: int = 2) -> MatmulThroughput:
    """Best time of an fp32 n x n @ n x n matmul (torch, `threads` intra-op threads) -> GFLOP/s."""
    if n < 16:
        raise ValueError(f"matmul size must be >= 16, got {n}")
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen)
    b = torch.randn(n, n, generator=gen)
    out = torch.empty(n, n)
    with torch_threads(threads), torch.inference_mode():
        timing = time_calls(lambda: torch.mm(a, b, out=out), warmup=warmup, runs=runs)
        used = torch.get_num_threads()
    return MatmulThroughput(n=n, threads=used, best_ms=min(timing.samples_ms), median_ms=timing.p50)
