"""edge_jepa.bench.run on the tiny model: cells, skipped rows, fidelity, FLOPs, bundles and process isolation."""

from __future__ import annotations

import shutil

import pytest

import edge_jepa
from edge_jepa.bench.run import BenchOptions, run_bench
from edge_jepa.export import export_bundle

FAST = dict(runs=2, warmup=1, fidelity_clips=1, auroc_pairs=0, matmul_size=128, isolate=False)


def test_eager_cells_skipped_cells_and_flops(tiny_model_dir, one_inference_thread):
    rows = run_bench([str(tiny_model_dir)], BenchOptions(formats=("eager", "onnx", "coreml"),
                                                         precisions=("int4",), **FAST))
    rows += run_bench([str(tiny_model_dir)], BenchOptions(formats=("eager",), precisions=("fp32",), **FAST))
    cells = {(r.format, r.precision): r for r in rows}
    assert list(cells) == [("eager", "int4"), ("onnx", "int4"), ("coreml", "int4"), ("eager", "fp32")]
    assert cells["onnx", "int4"].status == "skipped" and "onnx has no int4 (its precisions: fp32, int8)" in \
        cells["onnx", "int4"].reason
    assert cells["coreml", "int4"].status == "skipped" and "macOS" in cells["coreml", "int4"].reason
    assert cells["coreml", "int4"].p50_ms is None and cells["coreml", "int4"].gflops > 0
    fp32 = cells["eager", "fp32"]
    for row in (fp32, cells["eager", "int4"]):
        assert row.status == "ok", row.reason
        assert set(row.parts) == {"step", "encode_context", "encode_window", "predict"}
        assert row.p50_ms <= row.p90_ms <= row.p99_ms and row.fps == pytest.approx(1e3 / row.p50_ms)
        assert row.size_mb > 0 and row.peak_rss_mb > 0 and "in-process" in row.notes
    flops = edge_jepa.load(tiny_model_dir).flops()
    assert fp32.gflops == pytest.approx(flops.total / 1e9)
    assert fp32.parts["encode_window"]["gflops"] == pytest.approx(flops.window_encoder / 1e9)
    assert fp32.matmul_fraction == pytest.approx(fp32.gflops_per_s / fp32.matmul_gflops_per_s)
    assert fp32.gflops_per_s == pytest.approx(fp32.gflops / (fp32.p50_ms / 1e3))
    assert fp32.cosine == pytest.approx(1.0, abs=1e-6)
    assert 0.9 < cells["eager", "int4"].cosine < 0.99999  # int4 really changes the numbers
    assert fp32.tokens == 2 * 2 * 2 and fp32.frames == 4 and fp32.size == 32


def test_a_frame_causal_model_is_timed_by_its_stream_update(tmp_path, one_inference_thread):
    """The default model is frame-causal: eager fp32 times its KV update, a bundle format exports its stream step
    (real onnxruntime) and takes the cosines of the export's verification; eager int8 and CoreML say why not."""
    from tests.test_world_model import WORLD_TINY

    world = edge_jepa.create(WORLD_TINY, seed=0).eval()
    world.save(tmp_path / "world")
    options = BenchOptions(formats=("eager", "onnx", "coreml"), precisions=("fp32", "int8"), **FAST)
    cells = {(r.format, r.precision): r for r in run_bench([str(tmp_path / "world")], options)}
    assert list(cells) == [(f, q) for f in ("eager", "onnx", "coreml") for q in ("fp32", "int8")]
    for key in (("eager", "fp32"), ("onnx", "fp32"), ("onnx", "int8")):
        row = cells[key]
        assert row.status == "ok", (key, row.reason)
        assert set(row.parts) == {"step"} and 0 < row.p50_ms <= row.p90_ms and "stream step" in row.notes
        assert row.gflops == pytest.approx(world.flops_per_update()["kv"] / 1e9)
        assert (row.frames, row.size, row.tokens) == (4, 32, 4)  # the window, frame size, tokens per frame
    assert cells["onnx", "int8"].cosine_from.startswith("manifest") and 0.99 < cells["onnx", "int8"].cosine < 1
    assert cells["onnx", "int8"].size_mb < cells["onnx", "fp32"].size_mb
    assert cells["eager", "int8"].status == "skipped" and "frame-causal" in cells["eager", "int8"].reason
    assert cells["coreml", "fp32"].status == "skipped"
    with pytest.raises(ValueError, match="frame-causal model .test-world-tiny.*omit --frames/--size"):
        run_bench([str(tmp_path / "world")], BenchOptions(frames=6, **FAST))


def test_bad_options_name_the_valid_choices():
    with pytest.raises(ValueError, match="unknown format.s. tflite; choose from eager, compile, executorch"):
        BenchOptions(formats="eager,tflite")
    with pytest.raises(ValueError, match="unknown precision.s. int3; choose from fp32, fp16, int8, int4"):
        BenchOptions(precisions="int3")
    with pytest.raises(ValueError, match="unknown part.s. .'decode'.; choose from step, encode_context"):
        BenchOptions(parts=("decode",))
    with pytest.raises(ValueError, match="runs must be >= 1"):
        BenchOptions(runs=0)
    with pytest.raises(ValueError, match="at least one model source"):
        run_bench([], BenchOptions())


def test_a_cell_runs_in_its_own_process(tiny_model_dir):
    options = BenchOptions(formats=("eager",), precisions=("fp32",), parts=("step",), runs=2, warmup=0,
                           fidelity_clips=0, auroc_pairs=1, matmul_size=128)
    messages = []
    from edge_jepa.bench.memory import current_rss_mb
    from edge_jepa.bench.run import Reporter

    ballast = bytearray(400 * 2**20)  # a parent much bigger than the cell: its memory must not count
    ballast[:: 4096] = b"x" * len(ballast[:: 4096])
    parent_mb = current_rss_mb()
    row, = run_bench([str(tiny_model_dir)], options, Reporter(message=messages.append))
    del ballast
    assert row.status == "ok", row.reason
    assert row.peak_rss_mb < parent_mb - 200, (row.peak_rss_mb, parent_mb)
    assert set(row.parts) == {"step"} and row.notes == "" and row.threads == 1
    assert row.peak_rss_mb >= row.rss_before_load_mb > 50  # the child's own peak, after importing torch
    assert 0 <= row.auroc <= 1 and row.auroc_pairs == 1 and row.cosine is None
    assert any("step: run 2/2" in m for m in messages)


@pytest.mark.slow
def test_bundles_as_sources_and_their_fidelity(tiny_model_dir, tiny_model, tmp_path, one_inference_thread):
    from_dir = export_bundle(str(tiny_model_dir), "onnx", "int8", out=tmp_path / "from-dir", verify_clips=1)
    in_memory = export_bundle(tiny_model, "onnx", "fp32", out=tmp_path / "in-memory", verify_clips=1)
    rows = run_bench([str(from_dir), str(in_memory)], BenchOptions(**FAST))
    a, b = rows
    assert (a.format, a.precision, b.format, b.precision) == ("onnx", "int8", "onnx", "fp32")
    assert a.status == b.status == "ok"
    assert a.cosine_from.startswith("measured vs fp32 eager") and 0.99 < a.cosine < 1
    assert b.cosine_from.startswith("manifest") and b.cosine > 0.999  # its source model is not on disk
    assert a.size_mb == pytest.approx(sum(p.stat().st_size for p in from_dir.iterdir()
                                          if p.name != "manifest.json") / 1e6)
    with pytest.raises(ValueError, match="exported for 4 frames x 32 px; --frames/--size 6xNone do not match"):
        run_bench([str(from_dir)], BenchOptions(frames=6, **FAST))
    broken = tmp_path / "broken"
    shutil.copytree(from_dir, broken)
    (broken / "predict.onnx").write_bytes(b"not a graph")
    row, = run_bench([str(broken)], BenchOptions(**FAST))
    assert row.status == "failed" and "does not match its sha256" in row.reason


@pytest.mark.slow
def test_model_source_exports_executorch_and_reuses_the_cache(tiny_model_dir, tmp_path, one_inference_thread):
    options = BenchOptions(formats=("executorch",), precisions=("fp32",), bundles_dir=tmp_path / "cache", **FAST)
    row, = run_bench([str(tiny_model_dir)], options)
    assert row.status == "ok", row.reason
    bundle = row.extra["bundle"]
    assert (tmp_path / "cache") in __import__("pathlib").Path(bundle).parents
    assert row.cosine > 0.999 and row.parts["predict"]["p50_ms"] > 0
    stamp = (tmp_path / "cache").stat().st_mtime_ns
    again, = run_bench([str(tiny_model_dir)], options)
    assert again.extra["bundle"] == bundle and again.status == "ok"
    assert (tmp_path / "cache").stat().st_mtime_ns == stamp  # nothing re-exported


def test_a_silent_cell_is_stopped_by_the_timeout(tmp_path):
    import os

    from edge_jepa.bench.cell import CellError, CellSpec, run_cell_isolated

    stuck = tmp_path / "model.pt"
    os.mkfifo(stuck)  # opening it blocks forever (no writer): the cell hangs after "loading"
    messages = []
    spec = CellSpec("eager", "fp32", str(stuck), runs=1, warmup=0, parts=("step",))
    with pytest.raises(CellError, match=r"no progress for 2 s \(--cell-timeout\); stopped"):
        run_cell_isolated(spec, messages.append, timeout_s=2)
    assert messages == ["loading"]
