"""THE timer: wall-clock timing of a call (warm-up, then timed runs or a time budget) and percentiles of the runs;
and `torch_threads`, the CPU threads a timed (or streamed) call runs with.

Used by the benchmark (edge_jepa.bench), the quantization report and the default model's speed measurement.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Timing:
    """Milliseconds of each timed run (warm-up excluded)."""

    samples_ms: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.samples_ms:
            raise ValueError("a Timing needs at least one timed run")

    def percentile(self, q: float) -> float:
        """Linear-interpolated percentile (numpy's default), q in [0, 100]."""
        return float(np.percentile(np.asarray(self.samples_ms, dtype=float), q))

    @property
    def p50(self) -> float:
        return self.percentile(50)

    @property
    def p90(self) -> float:
        return self.percentile(90)

    @property
    def p99(self) -> float:
        return self.percentile(99)

    @property
    def fps(self) -> float:
        """Calls per second at the median."""
        return 1e3 / self.p50 if self.p50 > 0 else float("inf")

    def summary(self) -> dict[str, float]:
        return {"p50_ms": self.p50, "p90_ms": self.p90, "p99_ms": self.p99, "runs": len(self.samples_ms)}


def time_calls(fn: Callable[[], Any], *, warmup: int, runs: int,
               on_run: Callable[[int, int], None] | None = None) -> Timing:
    """Call `fn` `warmup` times untimed, then `runs` times timed; on_run(i, runs) after each timed run."""
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    for _ in range(warmup):
        fn()
    samples = []
    for i in range(runs):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1e3)
        if on_run:
            on_run(i + 1, runs)
    return Timing(tuple(samples))


def time_for(fn: Callable[[], Any], *, warmup: int, seconds: float) -> Timing:
    """Call `fn` `warmup` times untimed, then timed until `seconds` have passed (at least once)."""
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    for _ in range(warmup):
        fn()
    samples, end = [], time.perf_counter() + seconds
    while not samples or time.perf_counter() < end:
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1e3)
    return Timing(tuple(samples))


def time_round_robin(fns: Mapping[str, Callable[[], Any]], *, warmup: int, runs: int,
                     clock: Callable[[], float] = time.perf_counter) -> dict[str, Timing]:
    """Time several calls interleaved (one run of each in turn), so that load from other processes hits them
    alike; each is warmed up `warmup` times first. `clock`: wall time by default; `time.process_time` gives the
    process's CPU time, which hardly counts the time a call waited for a core on a loaded machine."""
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            t = clock()
            fn()
            samples[name].append((clock() - t) * 1e3)
    return {k: Timing(tuple(v)) for k, v in samples.items()}


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """torch intra-op threads set to `n` inside the block and restored after it (None: unchanged).

    One thread is the default of `watch` and `surprise_scores`: on a shared 2-core machine a second intra-op thread
    waits for a core held by another process (or by capture and drawing), and inference collapses.
    """
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
