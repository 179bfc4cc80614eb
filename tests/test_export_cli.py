"""`edge-jepa export` and `edge-jepa quantize-report` through the real typer app."""

from __future__ import annotations

import json

from typer.testing import CliRunner

import edge_jepa.cli.export_commands  # noqa: F401  (registers the commands on the app)
from edge_jepa.cli import app
from edge_jepa.runtime import Runner

runner = CliRunner()


def test_export_writes_a_verified_bundle(tiny_model_dir, tmp_path):
    out = tmp_path / "bundle"
    res = runner.invoke(app, ["export", str(tiny_model_dir), "--format", "onnx", "--quant", "int8",
                              "--frames", "6", "--out", str(out), "--verify-clips", "1"])
    assert res.exit_code == 0, res.output
    assert "verified" in res.output and "encode_window.onnx" in res.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["precision"] == "int8" and manifest["clip"]["frames"] == 6
    assert Runner.open(out).frames == 6


def test_export_errors_are_one_line(tiny_model_dir, tmp_path):
    cases = [
        (["--format", "tflite"], "unknown export format 'tflite'"),
        (["--format", "onnx", "--quant", "int4"], "format onnx supports precisions fp32, int8, not 'int4'"),
        (["--format", "onnx", "--frames", "5"], "does not fit test-tiny"),
    ]
    for extra, message in cases:
        res = runner.invoke(app, ["export", str(tiny_model_dir), "--out", str(tmp_path / "b"), *extra])
        assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output, res.output
    res = runner.invoke(app, ["export", str(tmp_path / "nope.pt"), "--format", "onnx", "--out", str(tmp_path / "b")])
    assert res.exit_code == 2 and "no such file" in res.output
    assert not (tmp_path / "b").exists()


def test_quantize_report_table_and_json(tiny_model_dir, tmp_path):
    out = tmp_path / "report.json"
    res = runner.invoke(app, ["quantize-report", str(tiny_model_dir), "--schemes", "int8-weight", "--clips", "1",
                              "--pairs-per-type", "0", "--video-seconds", "3", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "int8-weight" in res.output and "Spearman rank correlation" in res.output
    rows = json.loads(out.read_text())
    assert [r["scheme"] for r in rows] == ["fp32", "int8-weight"] and rows[1]["window_cosine"] > 0.99
    res = runner.invoke(app, ["quantize-report", str(tiny_model_dir), "--schemes", "int2"])
    assert res.exit_code == 2 and "unknown schemes ['int2']" in res.output


def test_quantize_report_of_the_frame_causal_world_model(tmp_path):
    out = tmp_path / "world.json"
    res = runner.invoke(app, ["quantize-report", "world", "--schemes", "int8-dynamic", "--clips", "1",
                              "--pairs-per-type", "1", "--video-seconds", "1.5", "--json", str(out)])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "(frame-causal) vs fp32" in text and "prediction of the next frame's tokens" in text
    rows = json.loads(out.read_text())
    assert [r["scheme"] for r in rows] == ["fp32", "int8-dynamic"]
    fp32, int8 = rows
    assert all(r["kind"] == "frame_causal" and "window_cosine" not in r and r["extra"]["step"] == "rerun"
               for r in rows)  # the window model's cosines do not apply: not in the rows
    assert fp32["frame_tokens_cosine"] > 0.99999 and fp32["surprise_spearman"] > 0.99999
    assert 0.99 < int8["frame_tokens_cosine"] < 1.0 and 0.99 < int8["next_frame_cosine"] < 1.0
    assert 0.95 < int8["next_frame_worst"] <= int8["next_frame_cosine"] and int8["surprise_spearman"] > 0.95
    assert int8["size_bytes"] < 0.35 * fp32["size_bytes"] and int8["latency_ms"] > 0
    assert 0.6 < fp32["surprise_auroc"] <= 1.0 and abs(int8["surprise_auroc"] - fp32["surprise_auroc"]) < 0.1
