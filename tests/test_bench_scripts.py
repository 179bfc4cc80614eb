"""The README-table scripts (benchmarks/bench_*.py) end to end on tiny inputs: rows, Markdown and verdicts."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import edge_jepa
from edge_jepa.bench.schema import load_rows

ROOT = Path(__file__).resolve().parents[1]


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _main(name: str):
    return _module(name).main


@pytest.mark.slow
def test_bench_backends_writes_rows_and_verdicts(tiny_model_dir, tmp_path):
    out, md = tmp_path / "b.json", tmp_path / "b.md"
    assert _main("bench_backends")(["--model", str(tiny_model_dir), "--formats", "eager", "--quant", "fp32",
                                    "--runs", "2", "--warmup", "0", "--auroc-pairs", "0", "--json", str(out),
                                    "--markdown", str(md)]) == 0
    row, = load_rows(out)
    assert row.status == "ok" and row.format == "eager" and row.parts["encode_window"]["matmul_fraction"] > 0
    text = md.read_text()
    assert text.startswith(f"### Backends on {tiny_model_dir}\n\n| model |")
    assert "- int8 .pte no slower than onnxruntime int8: not measured." in text
    assert "- fp32 encoder forward >= 60% of the measured fp32 matmul throughput: **" in text


@pytest.mark.slow
def test_bench_geometries_on_a_stand_in_teacher(tiny_model_dir, tmp_path):
    out, md = tmp_path / "g.json", tmp_path / "g.md"
    assert _main("bench_geometries")(["--clip", "stream", "--teachers", str(tiny_model_dir), "--students", "",
                                      "--default-cells", "eager/fp32", "--runs", "1", "--default-runs", "2",
                                      "--parts", "step,encode_window", "--json", str(out),
                                      "--markdown", str(md)]) == 0
    rows = load_rows(out)
    default = edge_jepa.load("default").config  # the stand-in teacher is timed on the default model's window
    frames, size = default.clip.frames, default.clip.size
    assert [(r.model, r.frames, r.size) for r in rows] == [("test-tiny", frames, size), (default.name, frames, size)]
    assert default.kind == "frame_causal" and rows[1].status == "ok" and set(rows[1].parts) == {"step"}  # its update
    text = md.read_text()
    assert "- default int8 .pte >= 200x faster than ViT-L fp32 eager on the same stream window: not measured" in text


@pytest.mark.slow
def test_stream_calibration_counts_every_violation_once(tiny_model_dir, tmp_path):
    import json

    out = tmp_path / "cal.json"
    result = _main("stream_calibration")(["--model", str(tiny_model_dir), "--seeds", "3", "--seconds", "20",
                                          "--violations", "3", "--warmup", "2", "--size", "64", "--json", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    totals = {v: x["total"] for v, x in result["detected"].items()}
    assert totals == {"teleport": 1, "vanish": 1, "appear": 1, "pass_through": 0, "reverse": 0,
                      "shape_change": 0, "color_change": 0}
    assert result["detected_total"][1] == 3 and 0 <= result["detected_total"][0] <= 3
    assert result["detector"]["warmup_s"] == 2.0
    assert result["false_events"]["minutes_each"] == pytest.approx(1 / 3, abs=0.01)
    with pytest.raises(SystemExit, match="too short"):
        _main("stream_calibration")(["--model", str(tiny_model_dir), "--seconds", "10", "--violations", "8",
                                     "--json", str(out)])


def test_stream_calibration_scores_a_frame_causal_model_at_the_given_rate_with_its_prior(tmp_path):
    result = _main("stream_calibration")(["--model", "world", "--fps", "10", "--seeds", "3", "--seconds", "16",
                                          "--violations", "2", "--warmup", "2", "--size", "64",
                                          "--json", str(tmp_path / "cal.json")])
    assert result["model"] == "world_pico" and result["model_fps"] == 10.0
    assert result["prior"]["fps"] == 10.0 and result["prior"]["spread"] > 0  # watch's prior for 10 fps
    assert result["detected_total"][1] == 2
    no_prior = _main("stream_calibration")(["--model", "world", "--fps", "10", "--seeds", "3", "--seconds", "16",
                                            "--violations", "2", "--warmup", "2", "--size", "64", "--no-prior",
                                            "--json", str(tmp_path / "cal2.json")])
    assert no_prior["prior"] is None and no_prior["detector"]["use_prior"] is False


def test_predictor_vs_copy_labels_tokens_from_the_scene_and_counts_every_one(tiny_model_dir, tmp_path):
    import json

    import numpy as np

    from edge_jepa.data import SyntheticClip

    module = _module("predictor_vs_copy")
    # object 0 crosses the top row and bounces in frame 3; object 1 moves through the bottom-left patch
    clip = SyntheticClip(np.zeros((4, 32, 32, 3), np.uint8), None, None, 0, 10.0, meta={
        "size": 32, "tracks_px": [[[5, 5], [8, 5], [12, 5], [20, 5]], [None, None, [5, 25], [6, 26]]],
        "contacts": [{"frame": 3, "object": 0, "speed": 0.5, "wall": "right"}]})
    assert module.token_kinds(clip, range(2, 4), (2, 2), 32, "resize").tolist() == [[2, 2], [1, 0]]
    assert module.token_kinds(clip, range(0, 2), (2, 2), 32, "resize").tolist() == [[1, 0], [0, 0]]  # no contact yet
    assert module.to_model_px([15.5, 15.5], 32, 32, "center_crop") == pytest.approx((16.0, 16.0))  # centre stays
    assert module.to_model_px([-0.5, 63.5], 64, 32, "resize") == pytest.approx((0.0, 32.0))

    out = tmp_path / "pvc.json"
    report = module.main(["--model", str(tiny_model_dir), "--pairs-per-type", "1", "--json", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    windows = report["clips"] * (12 - 4 + 1)  # validation scenes of 2 x 4 + 4 frames, windows of 4
    assert sum(k["tokens"] for k in report["kinds"].values()) == windows * 4  # one target step of 2 x 2 tokens
    static, moving = report["kinds"]["static"], report["kinds"]["moving"]
    assert static["tokens"] > moving["tokens"] > 0
    assert static["copy_l1"] < moving["copy_l1"]  # background barely changes from step to step; objects do
    assert static["ratio"] == pytest.approx(static["predictor_l1"] / static["copy_l1"])
