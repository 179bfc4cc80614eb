"""The frame-causal stream step as an export graph and as bundles (real ExecuTorch runtime, real onnxruntime)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import edge_jepa
from edge_jepa.data.synthetic import WorldConfig, generate_clip
from edge_jepa.export import export_bundle
from edge_jepa.export.stream_step import stream_step_graph
from edge_jepa.formats import CACHE_MASKED, FORMATS, STREAM_INPUTS, STREAM_METHOD, STREAM_OUTPUTS
from edge_jepa.models.world import DEFAULT_SCORING, TIME_UNIT
from edge_jepa.runtime import Runner
from edge_jepa.runtime.stream_step import StreamStepRunner
from edge_jepa.stream.prior import compute_prior, prior_for
from edge_jepa.surprise import FrameCausalScorer, SurpriseScorer, frame_to_input, surprise_scores
from tests.test_world_model import WORLD_TINY

STREAM_BUNDLES = [("executorch", "fp32"), ("executorch", "int8"), ("executorch", "int4"), ("onnx", "fp32"),
                  ("onnx", "int8")]
FPS = 15.0  # not the model's 30: the bundle's tables are built for the rate it is exported for


@pytest.fixture(scope="module")
def world():
    model = edge_jepa.create(WORLD_TINY, seed=0).eval()
    model.surprise_prior = compute_prior(model, rates=[FPS], seeds=(900,), seconds=1.0)  # as `load` attaches it
    return model


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    """A real stream, 3x longer than the window (4 frames): the caches fill, then slide."""
    return generate_clip(5, WorldConfig(size=32, num_frames=12, fps=FPS)).frames


@pytest.fixture(scope="module")
def stream_bundles(world, tmp_path_factory):
    root = tmp_path_factory.mktemp("stream-bundles")
    return {(f, q): export_bundle(world, f, q, out=root / f"{f}-{q}", fps=FPS) for f, q in STREAM_BUNDLES}


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("op_set", ["fused", "xnnpack"])
def test_the_stream_step_graph_equals_the_eager_kv_step_through_warm_up_and_a_sliding_cache(world, frames, op_set,
                                                                                             residual):
    if residual:  # the residual predictor (world_pico_res's layout) adds this frame's normalized tokens
        world = edge_jepa.create(WORLD_TINY.replace(predictor={"residual": True}), seed=0).eval()
    graph = stream_step_graph(world, FPS, op_set)
    inputs = list(graph.example_inputs())
    assert inputs[3].eq(CACHE_MASKED).all()  # the first step: every cache slot empty
    kv, step = None, 1.0 / (FPS * TIME_UNIT)
    with torch.no_grad():
        for frame in frames:
            x = torch.from_numpy(frame_to_input(frame, 32, "resize"))[None, :, None]
            z = world.encode_frames(x)[0, 0]
            pred, log_b, kv = world.predictor.step(z[None], step, world.token_grid(), kv)
            out = graph(x, *inputs[1:])
            torch.testing.assert_close(out[0][0], z, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(out[1], pred, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(out[2], log_b, rtol=1e-5, atol=1e-5)
            inputs = [x, *out[3:]]
    n = int(np.prod(world.token_grid()))  # tokens per frame: after the stream, every slot holds a frame
    assert inputs[3].eq(0).all() and inputs[1].shape == (2, 2, 3 * n, 16)
    torch.testing.assert_close(inputs[1], torch.cat([k for k, _ in kv]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("fmt", "quant"), STREAM_BUNDLES)
def test_a_frame_causal_bundle_names_its_stream_step_and_passed_verification(stream_bundles, fmt, quant):
    manifest = json.loads((stream_bundles[fmt, quant] / "manifest.json").read_text())
    assert manifest["kind"] == "frame_causal" and manifest["stream"]["method"] == STREAM_METHOD
    assert manifest["stream"]["fps"] == FPS and manifest["stream"]["window"] == 4
    method = manifest["methods"][STREAM_METHOD]
    assert [i["name"] for i in method["inputs"]] == list(STREAM_INPUTS)
    assert [o["name"] for o in method["outputs"]] == list(STREAM_OUTPUTS)
    fid = manifest["fidelity"]
    assert fid["passed"] and fid["steps"] > 2 * 4  # longer than the window: the cache wrapped around
    assert manifest["surprise_prior"]["entries"][0]["fps"] == FPS  # the model's prior, for the bundle's runners
    assert prior_for(FrameCausalScorer(stream_bundles[fmt, quant])).fps == FPS
    assert fid["predicted"]["cosine"] >= fid["threshold"] and fid["tokens"]["cosine"] >= fid["threshold"]
    if quant == "int4":  # torchao 8da4w, as the window .pte's int4, verified at int4's threshold
        assert manifest["export"]["quantization"]["method"] == "torchao Int8DynamicActivationIntxWeightConfig"
        assert fid["threshold"] == 0.98
    if fmt == "executorch":  # the whole stream step runs inside one XNNPACK delegate
        assert manifest["export"]["delegation"][STREAM_METHOD]["fully_delegated"]
        assert manifest["export"]["delegation"][STREAM_METHOD]["delegated_subgraphs"] == 1


@pytest.mark.parametrize(("fmt", "quant"), STREAM_BUNDLES)
def test_surprise_scores_of_a_stream_bundle_match_the_eager_kv_scorer(stream_bundles, world, frames, fmt, quant):
    eager = surprise_scores(FrameCausalScorer(world, fps=FPS, cache="kv"), frames)
    got = surprise_scores(str(stream_bundles[fmt, quant]), frames)
    assert np.isnan(got[:3]).all() and np.isfinite(got[3:]).all()
    if quant == "fp32":
        np.testing.assert_allclose(got, eager, rtol=1e-4, atol=1e-6)
    else:
        np.testing.assert_allclose(got[3:], eager[3:], rtol=0.05)
    scorer = SurpriseScorer(str(stream_bundles[fmt, quant]))  # the same scorer the stream loop gets
    assert isinstance(scorer, FrameCausalScorer) and scorer.backend == f"{fmt}/{quant}" and scorer.fps == FPS


def test_the_stream_runner_keeps_the_cache_and_reset_starts_over(stream_bundles, frames):
    runner = StreamStepRunner.open(stream_bundles["onnx", "fp32"])
    x = [torch.from_numpy(frame_to_input(f, 32, "resize"))[None, :, None] for f in frames[:6]]
    first = [runner.step(f)[1] for f in x]
    runner.reset()
    again = [runner.step(f)[1] for f in x]
    torch.testing.assert_close(first, again)
    assert not torch.allclose(first[0], first[5])  # the cache changed the predictions
    assert runner.cache_mask.eq(0).all()  # 6 frames > 3 slots: all filled
    with pytest.raises(ValueError, match="expects frame float32"):
        runner.step(torch.zeros(1, 3, 1, 64, 64))


def test_a_stream_bundle_refuses_the_window_step_and_other_rates(stream_bundles):
    path = stream_bundles["onnx", "fp32"]
    bundle = Runner.open(path)
    with pytest.raises(ValueError, match="stream step, not the window surprise step"):
        bundle.run(torch.zeros(1, 3, 4, 32, 32))
    with pytest.raises(ValueError, match="exported for frames at 15 fps, got fps=30"):
        FrameCausalScorer(str(path), fps=30.0)
    with pytest.raises(ValueError, match="cache='kv' only"):
        FrameCausalScorer(str(path), cache="rerun")


def test_unsupported_rows_give_their_own_reason(world, tmp_path):
    row = dataclasses.replace(FORMATS["onnx"], stream_exporter=None, stream_note="a test row has no stream step")
    assert row.stream_unavailable("fp32") == ("onnx bundles of frame-causal models are unavailable because a test "
                                              "row has no stream step")
    with pytest.raises(ValueError, match="exports a frame-causal model's stream step at fp32, fp16, not 'int8'"):
        export_bundle(world, "executorch-coreml", "int8", out=tmp_path / "coreml-int8")
    with pytest.raises(ValueError, match="exports a frame-causal model's stream step at fp32, int8, not 'int4'"):
        export_bundle(world, "onnx", "int4", out=tmp_path / "int4")
    with pytest.raises(ValueError, match="drop frames"):
        export_bundle(world, "onnx", "fp32", frames=8, out=tmp_path / "frames")
    assert not any(tmp_path.iterdir())  # nothing written


def test_export_cli_writes_a_frame_causal_bundle(world, tmp_path):
    from edge_jepa.cli.main import app

    world.save(tmp_path / "world")
    result = CliRunner().invoke(app, ["export", str(tmp_path / "world"), "--format", "onnx", "--out",
                                      str(tmp_path / "bundle"), "--fps", "10"])
    assert result.exit_code == 0, result.output
    assert "stream_step" in result.output and "verified" in result.output
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert manifest["kind"] == "frame_causal" and manifest["stream"]["fps"] == 10.0


def test_watch_scores_a_video_file_through_a_stream_bundle(stream_bundles, world, tmp_path):
    from edge_jepa.data.synthetic import render_long_video, write_mp4
    from edge_jepa.stream import StreamLoop, open_source
    from edge_jepa.video import read_video

    path = write_mp4(render_long_video(11, 2.0, WorldConfig(size=64, fps=FPS)).frames, tmp_path / "scene.mp4", FPS)
    video = read_video(path).frames
    loop = StreamLoop(str(stream_bundles["executorch", "fp32"]), open_source(str(path), realtime=False))
    assert loop.causal and loop.fps == FPS and loop.scorer.backend == "executorch/fp32"
    with loop:
        list(loop)
    trace = loop.trace()
    offline = surprise_scores(FrameCausalScorer(world, fps=FPS, cache="kv"), video)
    np.testing.assert_allclose(trace["score"], offline[3:], rtol=1e-4, atol=1e-6)


def test_bench_times_a_stream_bundle_s_step(stream_bundles, world, one_inference_thread):
    from edge_jepa.bench.run import BenchOptions, run_bench

    path = stream_bundles["executorch", "int8"]
    row, = run_bench([str(path)], BenchOptions(runs=3, warmup=1, fidelity_clips=1, auroc_pairs=0, matmul_size=128,
                                               isolate=False))
    assert row.status == "ok", row.reason
    assert set(row.parts) == {"step"} and 0 < row.p50_ms <= row.p90_ms
    assert row.gflops == pytest.approx(world.flops_per_update()["kv"] / 1e9)
    assert row.cosine_from.startswith("manifest") and row.cosine > 0.99 and "stream step" in row.notes


def test_export_leaves_the_caller_s_model_as_it_was(stream_bundles, world):
    assert all(p.requires_grad for p in world.parameters())  # exported from a copy (eval, no grad)


def test_quantize_report_measures_stream_bundles_against_fp32_on_the_kv_step(stream_bundles, world, tmp_path):
    from edge_jepa.cli import app

    model_dir, out = tmp_path / "world", tmp_path / "report.json"
    world.save(model_dir)
    pte, int4, onnx = (stream_bundles[k] for k in (("executorch", "int8"), ("executorch", "int4"), ("onnx", "int8")))
    res = CliRunner().invoke(app, ["quantize-report", str(model_dir), "--schemes", "int8-weight", "--bundle", str(pte),
                                   "--bundle", str(int4), "--bundle", str(onnx), "--clips", "1",
                                   "--pairs-per-type", "1", "--video-seconds", "2", "--json", str(out)])
    assert res.exit_code == 0, res.output
    rows = {r["scheme"]: r for r in json.loads(out.read_text())}
    assert list(rows) == ["fp32", "int8-weight", "fp32 kv", str(pte), str(int4), str(onnx)]
    assert rows["fp32 kv"]["backend"] == "eager/fp32 kv" and rows["fp32 kv"]["next_frame_cosine"] > 0.9999
    for path, fmt, quant in ((pte, "executorch", "int8"), (int4, "executorch", "int4"), (onnx, "onnx", "int8")):
        row, threshold = rows[str(path)], {"int8": 0.99, "int4": 0.98}[quant]
        assert row["backend"] == f"{fmt}/{quant} kv" and row["extra"] == {
            "step": "kv", "fps": FPS, "scoring": DEFAULT_SCORING, "spearman_reference": "fp32 eager, kv step"}
        assert row["size_bytes"] == json.loads((path / "manifest.json").read_text())["total_bytes"]
        assert threshold < row["frame_tokens_cosine"] < 1.0 and threshold < row["next_frame_cosine"] < 1.0
        assert row["surprise_spearman"] > 0.9 and 0.0 <= row["surprise_auroc"] <= 1.0 and row["latency_ms"] > 0
    res = CliRunner().invoke(app, ["quantize-report", "world", "--bundle", str(pte)])  # another model's bundle
    assert res.exit_code == 2 and "holds test-world-tiny, not world's world_pico" in res.output, res.output
    from edge_jepa.quantize import fidelity_report

    with pytest.raises(ValueError, match="exported for frames at 15 fps; this report streams at 30 fps"):
        fidelity_report(world, [], runners={"pte": StreamStepRunner.open(pte)})  # the model's own 30 fps
    with pytest.raises(ValueError, match="compared with its stream-step bundles"):
        fidelity_report(world, [], runners={"window step": Runner.open(pte)})
