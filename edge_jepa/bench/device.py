"""Device benchmarks with each platform's own tools, parsed into bench rows.

Parsers for the output of
  - ExecuTorch's `executor_runner` (examples/portable/executor_runner): per-iteration lines
    "Iteration 3 of 20: 4.1 ms" (recent releases) and the closing "Model executed successfully 20 time(s) in
    82.0 ms." (every release; the mean only);
  - TensorRT's `trtexec --exportTimes=FILE`: a JSON list with one object per timed query ("latencyMs" = H2D +
    GPU compute + D2H, "computeMs", ...), and its "=== Performance summary ===" lines
    ("Latency: min = ..., max = ..., mean = ..., median = ..., percentile(90%) = ... ms");
  - GNU time's `-v` report ("Maximum resident set size (kbytes): N") for the peak RSS of a command.
The scripts in export/{android,ios,jetson}/ run the tools (adb, trtexec) and build rows with `row_from_parts`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from edge_jepa.bench.schema import BenchRow
from edge_jepa.formats import MANIFEST, METHODS
from edge_jepa.timing import Timing

BUNDLE_METHODS = METHODS  # the device scripts' name for them
_ITERATION = re.compile(r"Iteration\s+(\d+)\s+of\s+(\d+):\s+([0-9.eE+-]+)\s*ms")
_EXECUTED = re.compile(r"Model executed successfully\s+(\d+)\s+time\(s\)\s+in\s+([0-9.eE+-]+)\s*ms")
_MAX_RSS = re.compile(r"Maximum resident set size \(kbytes\):\s*(\d+)")
_SUMMARY = re.compile(r"^\s*(?:\[[^\]]*\]\s*)*(Latency|GPU Compute Time|Enqueue Time|H2D Latency|D2H Latency):"
                      r"\s*(.*)$", re.MULTILINE)  # lines may start with "[date-time] [I] "


class ToolOutputError(ValueError):
    """A tool's output that does not contain what the parser needs (the message says what was expected)."""


@dataclass(frozen=True)
class RunnerTimes:
    samples_ms: tuple[float, ...]
    per_iteration: bool  # False: only the mean of each launch was printed (one sample per launch)


def parse_executor_runner(outputs: str | Sequence[str]) -> RunnerTimes:
    """Timed executions from one or more executor_runner outputs (one per launch)."""
    texts = [outputs] if isinstance(outputs, str) else list(outputs)
    per_iteration = [float(m.group(3)) for t in texts for m in _ITERATION.finditer(t)]
    if per_iteration:
        return RunnerTimes(tuple(per_iteration), True)
    means = []
    for t in texts:
        m = _EXECUTED.search(t)
        if m is None:
            raise ToolOutputError("executor_runner output has neither 'Iteration i of n: X ms' nor 'Model executed "
                                  f"successfully N time(s) in X ms.' lines; got: {t.strip()[-300:]!r}")
        means.append(float(m.group(2)) / int(m.group(1)))
    if not means:
        raise ToolOutputError("no executor_runner output to parse")
    return RunnerTimes(tuple(means), False)


def parse_trtexec_times(text: str) -> tuple[float, ...]:
    """Host latency (H2D + compute + D2H) of each query in a trtexec --exportTimes JSON file."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ToolOutputError(f"trtexec --exportTimes file is not JSON ({e})") from None
    if not isinstance(data, list) or not data:
        raise ToolOutputError("trtexec --exportTimes file should be a non-empty JSON list of queries")
    try:
        return tuple(float(q["latencyMs"]) for q in data)
    except (KeyError, TypeError, ValueError):
        raise ToolOutputError("trtexec --exportTimes entries need a numeric 'latencyMs'") from None


def parse_trtexec_summary(stdout: str) -> dict[str, dict[str, float]]:
    """The "=== Performance summary ===" of trtexec: metric -> {min, max, mean, median, p<N>} in ms."""
    out: dict[str, dict[str, float]] = {}
    for m in _SUMMARY.finditer(stdout):
        stats: dict[str, float] = {}
        for name, value in re.findall(r"(min|max|mean|median|percentile\([0-9.]+%\))\s*=\s*([0-9.eE+-]+)\s*ms",
                                      m.group(2)):
            key = f"p{name[len('percentile('):-2]}" if name.startswith("percentile") else name
            stats[key] = float(value)
        if stats:
            out[m.group(1)] = stats
    if "Latency" not in out:
        raise ToolOutputError("trtexec output has no 'Latency: min = ..., median = ...' line in its performance "
                              "summary (did the run finish?)")
    return out


def parse_max_rss_mb(time_report: str) -> float | None:
    """Peak RSS (MiB) from GNU `time -v` output, or None when absent."""
    m = _MAX_RSS.search(time_report)
    return int(m.group(1)) / 1024 if m else None


def step_samples(per_method: Mapping[str, Sequence[float]]) -> tuple[float, ...]:
    """The surprise step as the three methods' i-th runs added up (they were timed in separate launches)."""
    missing = [m for m in BUNDLE_METHODS if m not in per_method]
    if missing:
        raise ValueError(f"step needs timings of {', '.join(BUNDLE_METHODS)}; missing {', '.join(missing)}")
    n = min(len(per_method[m]) for m in BUNDLE_METHODS)
    return tuple(sum(per_method[m][i] for m in BUNDLE_METHODS) for i in range(n))


def row_from_parts(per_method: Mapping[str, Sequence[float]], *, format: str, precision: str,
                   **fields: object) -> BenchRow:
    """A bench row from per-method samples (ms): each part's percentiles, the step from their sums."""
    parts = {m: Timing(tuple(v)).summary() for m, v in per_method.items() if v}
    row = BenchRow(format=format, precision=precision, parts=parts, **fields)  # type: ignore[arg-type]
    if all(m in parts for m in BUNDLE_METHODS):
        step = Timing(step_samples(per_method))
        row.parts = {"step": step.summary(), **parts}
        row.p50_ms, row.p90_ms, row.p99_ms, row.fps = step.p50, step.p90, step.p99, step.fps
    return row


def bundle_manifest(bundle: Path, formats: Sequence[str], hint: str) -> dict:
    """The manifest of a bundle the device script can run (its format in `formats`), else ValueError + hint."""
    path = Path(bundle) / MANIFEST
    if not path.is_file():
        raise ValueError(f"{bundle}: not an export bundle (no manifest.json)")
    manifest = json.loads(path.read_text())
    if manifest.get("format") not in formats:
        raise ValueError(f"{bundle}: is a {manifest.get('format')}/{manifest.get('precision')} bundle; {hint}")
    return manifest


def emit(rows: Sequence[BenchRow], json_path: str | Path | None) -> None:
    """Print the rows as JSON and write them (bench schema, atomically) when a path is given."""
    from edge_jepa.bench.schema import save_rows

    print(json.dumps([r.to_dict() for r in rows], indent=2))
    if json_path:
        save_rows(list(rows), json_path)
