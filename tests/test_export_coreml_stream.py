"""CoreML bundles of a frame-causal model's stream step (--format coreml and executorch-coreml).

On Linux: real conversion, compression and spec checks (coremltools), real lowering to the CoreML delegate, and the
refusal to run. CoreML prediction exists only on macOS: there the bundles are verified numerically at export (the
macOS-only test). One test here stands a mock in for coremltools' MLModel (it cannot predict off macOS) to check
edge-jepa's side of a CoreML stream bundle: the names and shapes it feeds the package's real spec, the outputs it
reads back by name, and the caches it carries from frame to frame.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import edge_jepa
from edge_jepa.export import export_bundle
from edge_jepa.export.coreml import COMPRESSION_OPS
from edge_jepa.export.stream_bundle import verify_stream_bundle
from edge_jepa.export.stream_step import stream_step_graph
from edge_jepa.formats import STREAM_INPUTS, STREAM_METHOD, STREAM_OUTPUTS, get_format
from edge_jepa.runtime.stream_step import StreamStepRunner
from edge_jepa.surprise import FrameCausalScorer, surprise_scores
from tests.test_world_model import WORLD_TINY

ON_MAC = sys.platform == "darwin"
FPS = 15.0  # not the model's 30: the tables are built for the bundle's rate
WEIGHTS = "model.mlpackage/Data/com.apple.CoreML/weights/weight.bin"


@pytest.fixture(scope="module")
def world():
    return edge_jepa.create(WORLD_TINY, seed=0).eval()


@pytest.fixture(scope="module")
def graph(world):
    """The eager stream-step graph the CoreML exports convert ("fused" op set, at FPS)."""
    return stream_step_graph(world, FPS, "fused")


@pytest.fixture(scope="module")
def fp16_bundle(world, tmp_path_factory):
    """Written by the CLI, as a user would: `edge-jepa export MODEL --format coreml --quant fp16 --fps 15`."""
    from edge_jepa.cli.main import app

    root = tmp_path_factory.mktemp("coreml-stream")
    world.save(root / "world")
    result = CliRunner().invoke(app, ["export", str(root / "world"), "--format", "coreml", "--quant", "fp16",
                                      "--fps", str(FPS), "--out", str(root / "bundle")])
    assert result.exit_code == 0, result.output
    assert "stream_step" in result.output and ("not verified here" in result.output) != ON_MAC
    return root / "bundle"


def _manifest(path):
    return json.loads((path / "manifest.json").read_text())


def _spec_io(package, function):
    import coremltools as ct

    spec = ct.utils.load_spec(str(package))
    fn = {f.name: f for f in spec.description.functions}[function]
    shapes = lambda features: [(f.name, list(f.type.multiArrayType.shape)) for f in features]  # noqa: E731
    return spec, shapes(fn.input), shapes(fn.output)


def test_the_package_holds_the_stream_step_with_the_graph_s_io(fp16_bundle, graph):
    m = _manifest(fp16_bundle)
    assert m["kind"] == "frame_causal" and m["format"] == "coreml" and m["precision"] == "fp16"
    stream = m["stream"]
    assert stream["method"] == STREAM_METHOD and stream["fps"] == FPS and stream["window"] == 4
    assert stream["cache_shape"] == list(graph.cache_shape())
    method = m["methods"][STREAM_METHOD]
    assert (method["file"], method["entry"]) == ("model.mlpackage", STREAM_METHOD)
    example = graph.example_inputs()
    with torch.no_grad():
        outputs = graph(*example)
    want_in = [(n, list(x.shape)) for n, x in zip(STREAM_INPUTS, example, strict=True)]
    want_out = [(n, list(y.shape)) for n, y in zip(STREAM_OUTPUTS, outputs, strict=True)]
    spec, got_in, got_out = _spec_io(fp16_bundle / "model.mlpackage", STREAM_METHOD)  # read back from disk
    assert (got_in, got_out) == (want_in, want_out)
    assert spec.description.defaultFunctionName == STREAM_METHOD  # what Xcode's generated class calls
    assert [(i["name"], i["shape"]) for i in method["inputs"]] == want_in
    assert [(o["name"], o["shape"]) for o in method["outputs"]] == want_out
    ops = m["export"]["functions"][STREAM_METHOD]["ops"]
    blocks = WORLD_TINY.encoder.depth + WORLD_TINY.predictor.depth
    assert ops.get("scaled_dot_product_attention") == blocks and ops.get("layer_norm")  # fused ops on iOS 18
    assert m["export"]["compute_precision"] == "fp16" and "quantization" not in m["export"]
    assert all(name.startswith("model.mlpackage/") for name in m["files"])


@pytest.mark.skipif(ON_MAC, reason="on macOS the bundle is verified numerically instead (next test)")
def test_linux_exports_but_states_why_it_is_not_verified_and_refuses_to_run(fp16_bundle):
    fid = _manifest(fp16_bundle)["fidelity"]
    assert fid["verified"] is False and fid["reason"] == get_format("coreml").run_unavailable()
    assert "CoreML prediction needs macOS" in fid["reason"]
    for open_it in (StreamStepRunner.open, lambda p: FrameCausalScorer(str(p))):
        with pytest.raises(RuntimeError, match=r"^cannot run .* here: CoreML prediction needs macOS") as err:
            open_it(fp16_bundle)
        assert "\n" not in str(err.value)


@pytest.mark.skipif(not ON_MAC, reason="CoreML prediction needs macOS: coremltools has no Linux runtime")
def test_macos_verifies_the_stream_step_and_scores_like_the_eager_kv_step(fp16_bundle, world):
    from edge_jepa.data.synthetic import WorldConfig, generate_clip

    fid = _manifest(fp16_bundle)["fidelity"]
    assert fid["verified"] and fid["passed"] and fid["threshold"] == 0.999 and fid["steps"] > 2 * 4
    frames = generate_clip(5, WorldConfig(size=32, num_frames=12, fps=FPS)).frames
    eager = surprise_scores(FrameCausalScorer(world, fps=FPS, cache="kv"), frames)
    got = surprise_scores(str(fp16_bundle), frames)
    np.testing.assert_allclose(got[3:], eager[3:], rtol=0.02)


def test_edge_jepa_s_side_of_a_coreml_stream_bundle_with_a_mocked_prediction(fp16_bundle, world, graph,
                                                                             monkeypatch):
    """MOCK: coremltools.models.MLModel cannot predict off macOS, so a stand-in takes its place. It reads the
    package's real spec, refuses a function, input name, shape or dtype the spec lacks, and computes the outputs
    with the eager graph the package was converted from, returned by name in the reverse order. What this checks
    is edge-jepa's plumbing (CoreMLRunner's named IO, StreamStepRunner's cache feedback, the export's verification
    path as it runs on macOS), not CoreML's numerics."""
    import coremltools

    calls = []

    class StandInMLModel:
        def __init__(self, path, function_name=None, compute_units=None):
            _, self.inputs, self.outputs = _spec_io(path, function_name)
            calls.append((function_name, compute_units))

        def predict(self, data):
            assert [(k, list(v.shape)) for k, v in data.items()] == self.inputs
            assert all(v.dtype == np.float32 for v in data.values())
            with torch.no_grad():
                out = graph(*(torch.from_numpy(data[name]) for name, _ in self.inputs))
            return {name: y.numpy() for (name, _), y in reversed(list(zip(self.outputs, out, strict=True)))}

    monkeypatch.setattr(coremltools.models, "MLModel", StandInMLModel)
    monkeypatch.setattr("edge_jepa.formats.coreml_prediction_unavailable", lambda: None)  # "this is a Mac"
    fid = verify_stream_bundle(fp16_bundle, world, get_format("coreml"), "fp16", FPS, 1)
    assert fid["verified"] and fid["passed"] and fid["runtime"] == "coreml" and fid["steps"] == 2 * 4 + 2
    assert fid["tokens"]["cosine"] > 0.99999 and fid["predicted"]["cosine"] > 0.99999  # fp32 eager behind the mock

    runner = StreamStepRunner.open(fp16_bundle, compute_units="CPU_ONLY")
    assert calls[-1] == (STREAM_METHOD, coremltools.ComputeUnit.CPU_ONLY)
    x = torch.randn(6, 1, 3, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    first = [runner.step(f)[1] for f in x]
    assert runner.cache_mask.eq(0).all()  # 6 frames > 3 cache slots: all filled
    runner.reset()
    torch.testing.assert_close([runner.step(f)[1] for f in x], first)
    assert not torch.allclose(first[0], first[5])  # the carried cache changed the predictions


@pytest.fixture(scope="module")
def embedded_int8(tmp_path_factory):
    """The embedded frame-causal model `world` (world_pico), int8 weights."""
    return export_bundle("world", "coreml", "int8", out=tmp_path_factory.mktemp("world") / "int8")


def test_the_embedded_world_model_converts_with_int8_weights(embedded_int8):
    m = _manifest(embedded_int8)
    assert m["model"]["config"]["kind"] == "frame_causal" and m["stream"]["tokens_per_frame"] == 16
    ops = m["export"]["functions"][STREAM_METHOD]["ops"]
    assert ops.get(COMPRESSION_OPS["int8"], 0) >= 4 * 5  # qkv, proj, 2 mlp in each of >= 5 blocks (4 + encoder)
    assert m["export"]["quantization"]["weights"] == "int8 per-channel symmetric"
    fp16_bytes = 2 * m["model"]["params"]  # what fp16 weights take
    assert m["files"][WEIGHTS]["bytes"] < 0.6 * fp16_bytes
    _, got_in, got_out = _spec_io(embedded_int8 / "model.mlpackage", STREAM_METHOD)
    method = m["methods"][STREAM_METHOD]
    assert got_in == [(i["name"], i["shape"]) for i in method["inputs"]]
    assert got_out == [(o["name"], o["shape"]) for o in method["outputs"]]
    assert [n for n, _ in got_in] == list(STREAM_INPUTS) and [n for n, _ in got_out] == list(STREAM_OUTPUTS)


def test_the_stream_step_lowers_whole_to_the_coreml_delegate(world, tmp_path):
    path = export_bundle(world, "executorch-coreml", "fp16", out=tmp_path / "pte", fps=FPS)
    m = _manifest(path)
    assert set(m["files"]) == {"model.pte"} and m["kind"] == "frame_causal"
    assert m["export"]["delegate"] == "CoreMLBackend" and m["export"]["compute_precision"] == "fp16"
    delegation = m["export"]["delegation"][STREAM_METHOD]
    assert delegation["fully_delegated"] and delegation["delegated_subgraphs"] == 1
    assert [i["name"] for i in m["methods"][STREAM_METHOD]["inputs"]] == list(STREAM_INPUTS)
    if get_format("executorch-coreml").run_unavailable():  # every ExecuTorch build but Apple's
        assert m["fidelity"]["verified"] is False and "CoreMLBackend" in m["fidelity"]["reason"]
        with pytest.raises(RuntimeError, match="no CoreMLBackend"):
            StreamStepRunner.open(path)
    else:
        assert m["fidelity"]["passed"] and m["fidelity"]["predicted"]["cosine"] >= 0.999
