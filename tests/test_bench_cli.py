"""`edge-jepa bench SOURCE...` and `edge-jepa bench compare A.json B.json` through the real typer app."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from edge_jepa.bench.schema import BenchRow, load_rows, save_rows
from edge_jepa.cli import app

runner = CliRunner()
FAST = ["--runs", "2", "--warmup", "0", "--fidelity-clips", "1", "--auroc-pairs", "0", "--matmul-size", "128",
        "--no-isolate"]


def test_bench_source_writes_json_and_markdown(tiny_model_dir, tmp_path, one_inference_thread):
    out, md = tmp_path / "a.json", tmp_path / "a.md"
    res = runner.invoke(app, ["bench", str(tiny_model_dir), "--formats", "eager,coreml", "--quant", "fp32",
                              *FAST, "--json", str(out), "--markdown", str(md)])
    assert res.exit_code == 0, res.output
    rows = load_rows(out)
    assert [(r.format, r.status) for r in rows] == [("eager", "ok"), ("coreml", "skipped")]
    assert rows[0].p50_ms > 0 and rows[0].cosine > 0.9999
    text = md.read_text()
    assert text.startswith("| model | clip | format | precision | step ms p50 / p90 / p99 |")
    assert "| test-tiny | 4x32 | eager | fp32 |" in text and "skipped: CoreML prediction needs macOS" in text
    # the explicit subcommand is the same command
    res = runner.invoke(app, ["bench", "run", str(tiny_model_dir), "--formats", "eager", "--quant", "fp32",
                              "--parts", "predict", *FAST])
    assert res.exit_code == 0, res.output


def test_bench_runs_on_the_embedded_default(tmp_path, one_inference_thread):
    """`bench default`: the frame-causal default, timed by its eager KV stream update (the export cells of its
    stream step are covered on a tiny model in test_bench_run)."""
    out = tmp_path / "d.json"
    res = runner.invoke(app, ["bench", "default", "--formats", "eager", "--quant", "fp32", *FAST, "--json", str(out)])
    assert res.exit_code == 0, res.output
    row, = load_rows(out)
    assert (row.model, row.status, row.frames, row.size) == ("world_pico", "ok", 8, 64)
    assert set(row.parts) == {"step"} and row.p50_ms > 0 and "stream step" in row.notes


def test_bench_compare_side_by_side(tmp_path):
    def row(fmt: str, p50: float | None, status: str = "ok") -> BenchRow:
        return BenchRow(format=fmt, precision="int8", model="vit_pico", frames=8, size=64, p50_ms=p50, p90_ms=p50,
                        p99_ms=p50, fps=1e3 / p50 if p50 else None, status=status,
                        parts={"step": {"p50_ms": p50}} if p50 else {})

    save_rows([row("executorch", 2.0), row("onnx", 4.0)], tmp_path / "laptop.json")
    save_rows([row("executorch", 8.0), row("coreml", None, "skipped")], tmp_path / "phone.json")
    res = runner.invoke(app, ["bench", "compare", str(tmp_path / "laptop.json"), str(tmp_path / "phone.json"),
                              "--markdown", str(tmp_path / "cmp.md")])
    assert res.exit_code == 0, res.output
    lines = (tmp_path / "cmp.md").read_text().splitlines()
    assert lines[0] == "| model | clip | format | precision | laptop | phone | phone / laptop |"
    assert "| vit_pico | 8x64 | executorch | int8 | 2.00 | 8.00 | 4.00x |" in lines
    assert "| vit_pico | 8x64 | onnx | int8 | 4.00 | absent | - |" in lines
    assert "| vit_pico | 8x64 | coreml | int8 | absent | skipped | - |" in lines
    res = runner.invoke(app, ["bench", "compare", str(tmp_path / "laptop.json"), "--metric", "encode_window.speed"])
    assert res.exit_code == 2 and "unknown metric 'encode_window.speed'" in res.output


def test_bench_errors_are_one_line(tiny_model_dir, tmp_path):
    res = runner.invoke(app, ["bench", str(tiny_model_dir), "--formats", "eager,tflite"])
    assert res.exit_code == 2 and "unknown format(s) tflite; choose from eager, compile, executorch" in res.output
    res = runner.invoke(app, ["bench", str(tmp_path / "nope.pt"), *FAST, "--formats", "eager"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"format": "eager", "precision": "fp32"}]))
    res = runner.invoke(app, ["bench", "compare", str(bad)])
    assert res.exit_code == 2 and "bad.json: row 0: missing required field(s) p50_ms" in res.output
    res = runner.invoke(app, ["bench", "compare", str(tmp_path / "absent.json")])
    assert res.exit_code == 2 and "absent.json: no such benchmark file" in res.output
    res = runner.invoke(app, ["bench", "--help"])
    assert res.exit_code == 0 and "compare" in res.output and "run" in res.output
