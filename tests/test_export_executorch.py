"""ExecuTorch bundles on the real ExecuTorch runtime: delegation, fidelity, sizes, runner = eager, scores."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import edge_jepa
from edge_jepa.data import WorldConfig, generate_clip, write_mp4
from edge_jepa.export.executorch import delegation_report
from edge_jepa.quantize import calibration_clips
from edge_jepa.runtime import Runner
from edge_jepa.video import read_video
from tests.conftest import TINY


@pytest.fixture(scope="module")
def model():
    return edge_jepa.create(TINY, seed=0).eval()


@pytest.fixture(scope="module")
def fp32_bundle(tiny_bundles):
    return tiny_bundles("executorch", "fp32")


def _manifest(path):
    return json.loads((path / "manifest.json").read_text())


def test_fp32_manifest_describes_the_bundle(fp32_bundle, model):
    m = _manifest(fp32_bundle)
    assert m["format"] == "executorch" and m["precision"] == "fp32"
    assert set(m["files"]) == {"model.pte"} and len(m["files"]["model.pte"]["sha256"]) == 64
    assert m["model"]["config"] == model.config.to_dict()
    assert m["clip"] == {"frames": 4, "size": 32, "fps": 10.0, "context_frames": 2, "target_frames": 2}
    # grid 2 x 2 x 2 tokens of width 32: context = first tubelet (4 tokens), targets = second (4 tokens)
    assert m["surprise"]["context_idx"] == {"start": 0, "stop": 4}
    assert m["surprise"]["target_idx"] == {"start": 4, "stop": 8}
    assert m["methods"]["encode_context"]["inputs"] == [{"name": "clip", "shape": [1, 3, 2, 32, 32],
                                                         "dtype": "float32"}]
    assert m["methods"]["encode_window"]["outputs"][0]["shape"] == [1, 8, 32]
    assert m["methods"]["predict"]["inputs"][0]["shape"] == [1, 4, 32]
    assert m["methods"]["predict"]["outputs"][0]["shape"] == [1, 4, 32]
    assert m["preprocessing"]["resize"]["mode"] == "resize" and m["preprocessing"]["mean"][0] == 0.485
    assert {"torch", "executorch", "edge_jepa"} <= set(m["versions"])
    fid = m["fidelity"]
    assert fid["verified"] and fid["passed"] and fid["threshold"] == 0.999
    assert all(fid[k]["cosine"] >= 0.999 for k in ("encode_context", "encode_window", "predict"))


def test_fp32_every_hot_path_op_is_delegated(fp32_bundle):
    delegation = _manifest(fp32_bundle)["export"]["delegation"]
    assert set(delegation) == {"encode_context", "encode_window", "predict"}
    for method, d in delegation.items():
        assert d["non_delegated_ops"] == {}, method
        assert d["delegated_subgraphs"] == 1 and d["delegated_ops"] > 30, method


def test_delegation_report_names_ops_left_on_portable_kernels(model):
    """The model's own plain op set (set_op_set) still leaves ops outside XNNPACK: the report must say which."""
    import copy

    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

    from edge_jepa.export.executorch import lower
    from edge_jepa.export.wrappers import EncoderGraph
    from edge_jepa.models import set_op_set

    plain = set_op_set(copy.deepcopy(model), plain_attention=True, decomposed_layernorm=True)
    graph = EncoderGraph(plain.encoder, 2, 32).eval()
    program = torch.export.export(graph, (torch.randn(1, 3, 2, 32, 32),))
    report = delegation_report(lower({"forward": program}, [XnnpackPartitioner()]))["forward"]
    assert not report["fully_delegated"]
    assert "aten_mean_dim" in report["non_delegated_ops"]  # 3-D LayerNorm means are not XNNPACK's mean form


def test_runner_reads_the_manifest_and_returns_copies(fp32_bundle, model):
    """(That it matches eager is test_runner_matches_eager.py, for every format.)"""
    runner = Runner.open(fp32_bundle)
    assert (runner.backend, runner.precision, runner.max_batch) == ("executorch", "fp32", 1)
    assert runner.config == model.config and runner.size_bytes == (fp32_bundle / "model.pte").stat().st_size
    clip = calibration_clips(model.config, 1, seed_base=7)[0]
    got = runner.run(clip)
    again = runner.run(clip)  # outputs are copies, not views of the runtime's memory
    assert torch.equal(again.window_tokens, got.window_tokens)


def test_wrong_input_states_the_manifest_shape(fp32_bundle):
    runner = Runner.open(fp32_bundle)
    with pytest.raises(ValueError, match=r"\[B, 3, 4, 32, 32\].*got \(1, 3, 8, 32, 32\)"):
        runner.run(torch.zeros(1, 3, 8, 32, 32))
    with pytest.raises(ValueError, match="float32 clip, got torch.float64"):
        runner.run(torch.zeros(1, 3, 4, 32, 32, dtype=torch.float64))
    with pytest.raises(ValueError, match="at most 1"):
        runner.run(torch.zeros(2, 3, 4, 32, 32))
    with pytest.raises(ValueError, match=r"predict expects context float32 \[1, 4, 32\] \(from .*manifest.json\)"):
        runner.call("predict", torch.zeros(1, 8, 32))


def test_surprise_scores_of_the_bundle_match_eager_on_a_video(fp32_bundle, model, tmp_path):
    clip = generate_clip(11, WorldConfig(size=64, num_frames=14, fps=10.0), violation="teleport")
    path = write_mp4(clip.frames, tmp_path / "scene.mp4", fps=10.0)
    frames = read_video(path, fps=10.0).frames
    eager = edge_jepa.surprise_scores(model, frames)
    bundle = edge_jepa.surprise_scores(Runner.open(fp32_bundle), frames)
    assert np.isnan(bundle[:3]).all() and np.isfinite(bundle[3:]).all()
    np.testing.assert_allclose(bundle, eager, rtol=1e-4, equal_nan=True)


@pytest.mark.slow
def test_int8_and_int4_are_verified_smaller_and_fully_delegated(fp32_bundle, tiny_bundles):
    fp32_size = _manifest(fp32_bundle)["total_bytes"]
    # (static int8 activations are checked in eager in test_quantize; lowering them costs ~25 s more here)
    for quant, threshold in (("int8", 0.99), ("int4", 0.98)):
        m = _manifest(tiny_bundles("executorch", quant))
        assert m["precision"] == quant and m["fidelity"]["threshold"] == threshold
        assert all(m["fidelity"][k]["cosine"] >= threshold for k in ("encode_context", "encode_window", "predict"))
        assert all(d["fully_delegated"] for d in m["export"]["delegation"].values()), m["export"]["delegation"]
        assert m["export"]["quantization"]["activations"] == "int8 dynamic per token"
        # the tiny test model is dominated by fixed per-method overhead; the size targets are benchmarked
        assert m["total_bytes"] < fp32_size * 0.6
