"""The benchmark row: one (model, clip, format, precision) cell, and its JSON file (a list of rows).

Every producer writes this schema: `edge-jepa bench`, the scripts in `benchmarks/` and the device scripts
(`export/{android,ios,jetson}/`: executor_runner over adb, coremltools on macOS, trtexec / ONNX Runtime on a Jetson), so
`edge-jepa bench compare A.json B.json` can put any of them side by side. Times are milliseconds of one call
at batch 1; `fps` is 1000 / p50; sizes and memory are MB (10^6 bytes for files, 2^20 for RSS). A field that
was not measured is null, never a made-up number; `status` says whether the cell ran ("ok"), could not run
on this machine ("skipped", with the reason) or failed ("failed", with the error).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_jepa.io import atomic_file

SCHEMA_VERSION = 1
STATUSES = ("ok", "skipped", "failed")
PARTS = ("step", "encode_context", "encode_window", "predict")  # the full surprise step and its three calls
REQUIRED = ("format", "precision", "p50_ms", "p90_ms", "p99_ms", "fps", "peak_rss_mb", "size_mb", "cosine")
_NUMBERS = ("p50_ms", "p90_ms", "p99_ms", "fps", "peak_rss_mb", "rss_before_load_mb", "size_mb", "cosine", "auroc",
            "gflops", "gflops_per_s", "matmul_gflops_per_s", "matmul_fraction")
_INTS = ("frames", "size", "tokens", "threads", "runs", "warmup", "auroc_pairs", "schema_version")
_STRINGS = ("format", "precision", "status", "reason", "model", "source", "cosine_from", "tool", "device", "notes")


class BenchSchemaError(ValueError):
    """A benchmark JSON file (or row) that does not follow the schema; the message names the file and field."""


@dataclass
class BenchRow:
    format: str  # eager | compile | executorch | executorch-coreml | onnx | coreml | tensorrt | ...
    precision: str  # fp32 | fp16 | int8 | int4
    status: str = "ok"
    reason: str = ""  # why skipped / failed
    model: str = ""  # config name (vit_pico, vit_large, ...)
    source: str = ""  # what was benchmarked: a model source or a bundle path
    frames: int | None = None
    size: int | None = None
    tokens: int | None = None  # tokens of the whole window
    threads: int | None = None
    runs: int | None = None
    warmup: int | None = None
    p50_ms: float | None = None  # the full surprise step (context encoder + window encoder + predictor)
    p90_ms: float | None = None
    p99_ms: float | None = None
    fps: float | None = None  # surprise steps per second at p50
    parts: dict[str, dict[str, float | None]] = field(default_factory=dict)  # part -> p50_ms, p90_ms, p99_ms, ...
    peak_rss_mb: float | None = None  # peak resident memory of the process that ran this cell alone
    rss_before_load_mb: float | None = None  # the same process before the model was loaded (runtime imports)
    size_mb: float | None = None  # artifact size: bundle files, or the serialized state dict for eager
    cosine: float | None = None  # worst of context / window / predicted mean token cosine vs fp32 eager
    cosine_parts: dict[str, float] = field(default_factory=dict)
    cosine_from: str = ""  # how the cosine was obtained
    auroc: float | None = None  # violation-of-expectation AUROC (edge_jepa.evaluation) on auroc_pairs per type
    auroc_pairs: int | None = None
    gflops: float | None = None  # analytic GFLOPs of the step (VJEPA2.flops)
    gflops_per_s: float | None = None  # achieved, at p50
    matmul_gflops_per_s: float | None = None  # this machine's fp32 matmul, same threads, same run
    matmul_fraction: float | None = None  # gflops_per_s / matmul_gflops_per_s
    tool: str = "edge-jepa bench"  # what measured it
    device: str = ""  # where it was measured
    notes: str = ""
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)  # fields of newer producers, kept as they are

    def key(self) -> tuple[str, int | None, int | None, str, str]:
        """What makes two rows (from different machines) comparable."""
        return self.model, self.frames, self.size, self.format, self.precision

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        extra = d.pop("extra")
        return {**{k: _finite(v) for k, v in d.items()}, **extra}

    @classmethod
    def from_dict(cls, d: Any, where: str = "row") -> BenchRow:
        """Validate one row (a JSON object); raise BenchSchemaError naming `where` and the bad field."""
        if not isinstance(d, dict):
            raise BenchSchemaError(f"{where}: a row must be a JSON object, got {type(d).__name__}")
        missing = [k for k in REQUIRED if k not in d]
        if missing:
            raise BenchSchemaError(f"{where}: missing required field(s) {', '.join(missing)} "
                                   f"(required: {', '.join(REQUIRED)})")
        for k in _NUMBERS:
            v = d.get(k)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
                raise BenchSchemaError(f"{where}: field {k!r} must be a number or null, got {v!r}")
        for k in _INTS:
            v = d.get(k)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                raise BenchSchemaError(f"{where}: field {k!r} must be an integer or null, got {v!r}")
        for k in _STRINGS:
            if k in d and not isinstance(d[k], str):
                raise BenchSchemaError(f"{where}: field {k!r} must be a string, got {d[k]!r}")
        if not d["format"] or not d["precision"]:
            raise BenchSchemaError(f"{where}: fields 'format' and 'precision' must not be empty")
        status = d.get("status", "ok")
        if status not in STATUSES:
            raise BenchSchemaError(f"{where}: field 'status' must be one of {', '.join(STATUSES)}, got {status!r}")
        if status == "ok" and d["p50_ms"] is None and not d.get("parts"):
            raise BenchSchemaError(f"{where}: an 'ok' row needs p50_ms or at least one timed part")
        _check_parts(d.get("parts", {}), where)
        cos = d.get("cosine_parts", {})
        if not isinstance(cos, dict) or not all(_is_number(v) for v in cos.values()):
            raise BenchSchemaError(f"{where}: field 'cosine_parts' must map names to numbers, got {cos!r}")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in d.items() if k in names}
        return cls(**known, extra={k: v for k, v in d.items() if k not in names})


def _check_parts(parts: Any, where: str) -> None:
    if not isinstance(parts, dict):
        raise BenchSchemaError(f"{where}: field 'parts' must be an object (part -> timings), got {parts!r}")
    for name, t in parts.items():
        if not isinstance(t, dict):
            raise BenchSchemaError(f"{where}: parts[{name!r}] must be an object, got {t!r}")
        for k, v in t.items():
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
                raise BenchSchemaError(f"{where}: parts[{name!r}][{k!r}] must be a number or null, got {v!r}")


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _finite(value: Any) -> Any:
    """NaN/inf are not JSON: they become null (not measured / not defined)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def rows_from_json(data: Any, where: str) -> list[BenchRow]:
    if not isinstance(data, list):
        raise BenchSchemaError(f"{where}: expected a JSON list of benchmark rows, got {type(data).__name__}")
    return [BenchRow.from_dict(d, f"{where}: row {i}") for i, d in enumerate(data)]


def load_rows(path: str | os.PathLike) -> list[BenchRow]:
    """Read and validate a benchmark JSON file (a list of rows)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such benchmark file")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise BenchSchemaError(f"{path}: invalid JSON ({e})") from None
    return rows_from_json(data, str(path))


def save_rows(rows: list[BenchRow], path: str | os.PathLike) -> Path:
    """Write rows as a JSON list, atomically (validated on the way out, so what we write we can read)."""
    data = [r.to_dict() for r in rows]
    rows_from_json(data, str(path))
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
    return Path(path)
