"""The bench JSON schema, timing percentiles, memory and the matmul yardstick."""

from __future__ import annotations

import json
import math

import pytest

from edge_jepa.bench.matmul import matmul_throughput
from edge_jepa.bench.memory import current_rss_mb, peak_rss_mb
from edge_jepa.bench.schema import REQUIRED, BenchRow, BenchSchemaError, load_rows, save_rows
from edge_jepa.timing import Timing, time_calls, time_round_robin


def _row(**kw) -> BenchRow:
    base = dict(format="executorch", precision="int8", model="vit_pico", frames=8, size=64, p50_ms=2.5, p90_ms=3.0,
                p99_ms=3.5, fps=400.0, peak_rss_mb=500.0, size_mb=2.16, cosine=0.9999,
                parts={"step": {"p50_ms": 2.5, "p90_ms": 3.0, "p99_ms": 3.5}})
    return BenchRow(**{**base, **kw})


def test_rows_round_trip_and_nan_becomes_null(tmp_path):
    rows = [_row(), _row(format="coreml", status="skipped", reason="needs macOS", p50_ms=None, p90_ms=None,
                         p99_ms=None, fps=None, peak_rss_mb=None, size_mb=None, cosine=None, parts={}),
            _row(auroc=float("nan"), extra={"from_a_newer_tool": 1})]
    path = save_rows(rows, tmp_path / "out" / "bench.json")
    data = json.loads(path.read_text())
    assert isinstance(data, list) and all(set(REQUIRED) <= set(d) for d in data)
    assert data[2]["auroc"] is None and data[2]["from_a_newer_tool"] == 1
    back = load_rows(path)
    assert back[0] == rows[0] and back[1].status == "skipped" and back[1].reason == "needs macOS"
    assert back[2].extra == {"from_a_newer_tool": 1} and back[2].auroc is None
    assert not list(tmp_path.glob("out/.*.tmp"))  # atomic write leaves no temp file


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d.pop("cosine"), "row 0: missing required field(s) cosine"),
    (lambda d: d.update(p50_ms="fast"), "row 0: field 'p50_ms' must be a number or null, got 'fast'"),
    (lambda d: d.update(frames=8.5), "row 0: field 'frames' must be an integer or null"),
    (lambda d: d.update(status="great"), "field 'status' must be one of ok, skipped, failed"),
    (lambda d: d.update(parts={"step": {"p50_ms": "x"}}), "parts['step']['p50_ms'] must be a number"),
    (lambda d: d.update(format=""), "'format' and 'precision' must not be empty"),
    (lambda d: d.update(p50_ms=None, parts={}), "an 'ok' row needs p50_ms or at least one timed part"),
    (lambda d: d.update(cosine=True), "field 'cosine' must be a number or null, got True"),
])
def test_bad_rows_name_the_file_and_the_field(tmp_path, mutate, message):
    d = _row().to_dict()
    mutate(d)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([d]))
    with pytest.raises(BenchSchemaError) as e:
        load_rows(path)
    assert str(path) in str(e.value) and message in str(e.value)


def test_bad_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json: no such benchmark file"):
        load_rows(tmp_path / "nope.json")
    (tmp_path / "a.json").write_text("{not json")
    with pytest.raises(BenchSchemaError, match=r"a.json: invalid JSON"):
        load_rows(tmp_path / "a.json")
    (tmp_path / "b.json").write_text(json.dumps({"format": "eager"}))
    with pytest.raises(BenchSchemaError, match=r"b.json: expected a JSON list of benchmark rows, got dict"):
        load_rows(tmp_path / "b.json")
    (tmp_path / "c.json").write_text(json.dumps([3]))
    with pytest.raises(BenchSchemaError, match=r"c.json: row 0: a row must be a JSON object, got int"):
        load_rows(tmp_path / "c.json")


def test_timing_percentiles_and_call_counts():
    t = Timing(tuple(float(x) for x in range(1, 101)))  # 1..100 ms
    assert t.p50 == pytest.approx(50.5) and t.p90 == pytest.approx(90.1) and t.p99 == pytest.approx(99.01)
    assert t.fps == pytest.approx(1000 / 50.5)
    assert t.summary() == {"p50_ms": t.p50, "p90_ms": t.p90, "p99_ms": t.p99, "runs": 100}
    calls, seen = [], []
    timing = time_calls(lambda: calls.append(1), warmup=3, runs=5, on_run=lambda i, n: seen.append((i, n)))
    assert len(calls) == 8 and len(timing.samples_ms) == 5 and seen[-1] == (5, 5)
    assert all(s >= 0 for s in timing.samples_ms)
    with pytest.raises(ValueError, match="runs must be >= 1"):
        time_calls(lambda: None, warmup=0, runs=0)
    with pytest.raises(ValueError, match="at least one timed run"):
        Timing(())
    order = []
    rr = time_round_robin({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, warmup=1, runs=2)
    assert order == ["a", "b", "a", "b", "a", "b"] and len(rr["a"].samples_ms) == 2


def test_memory_and_matmul_are_measured(one_inference_thread):
    assert 10 < current_rss_mb() <= peak_rss_mb() + 1
    m = matmul_throughput(threads=1, n=256, runs=3)
    assert m.threads == 1 and 0 < m.best_ms <= m.median_ms
    assert m.gflops_per_s == pytest.approx(2 * 256**3 / (m.best_ms * 1e-3) / 1e9)
    assert math.isfinite(m.gflops_per_s) and m.gflops_per_s > 0.1
    with pytest.raises(ValueError, match="matmul size must be >= 16"):
        matmul_throughput(n=4)
