"""ONNX bundles verified in onnxruntime: graph shape for TensorRT, fp32/int8 fidelity (runner = eager for every
format: test_runner_matches_eager.py)."""

from __future__ import annotations

import json

import onnx
import pytest
import torch

import edge_jepa
from edge_jepa.export import export_bundle
from edge_jepa.runtime import Runner
from tests.conftest import TINY


@pytest.fixture(scope="module")
def model():
    return edge_jepa.create(TINY, seed=0).eval()


@pytest.fixture(scope="module")
def bundles(tiny_bundles):
    return {q: tiny_bundles("onnx", q) for q in ("fp32", "int8")}


def test_files_are_opset_18_with_single_node_layernorm(bundles):
    path = bundles["fp32"]
    manifest = json.loads((path / "manifest.json").read_text())
    assert set(manifest["files"]) == {"encode_context.onnx", "encode_window.onnx", "encoder.weights", "predict.onnx"}
    for method in ("encode_context", "encode_window", "predict"):
        graph = onnx.load(str(path / f"{method}.onnx"))
        assert max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) == 18
        ops = {n.op_type for n in graph.graph.node}
        assert "LayerNormalization" in ops  # one node: TensorRT fp16 overflows a decomposed LayerNorm
        assert "ReduceMean" not in ops and "Attention" not in ops  # no opset-23 Attention for TensorRT 10.3
        assert [i.name for i in graph.graph.input] == [manifest["methods"][method]["inputs"][0]["name"]]
        assert manifest["export"]["graphs"][method]["ops"]["LayerNormalization"] >= 1


def test_encoder_weights_are_stored_once(bundles, model):
    manifest = json.loads((bundles["fp32"] / "manifest.json").read_text())
    shared = manifest["export"]["shared_weights"]
    assert shared["file"] == "encoder.weights" and shared["references"] == 2 * shared["tensors"] > 0
    fp32_encoder = 4 * model.num_params("encoder")
    assert 0.9 * fp32_encoder < manifest["files"]["encoder.weights"]["bytes"] < 1.1 * fp32_encoder
    for graph in ("encode_context.onnx", "encode_window.onnx"):
        assert manifest["files"][graph]["bytes"] < 0.5 * fp32_encoder


def test_int8_is_quantized_smaller_and_verified(bundles):
    fp32 = json.loads((bundles["fp32"] / "manifest.json").read_text())
    int8 = json.loads((bundles["int8"] / "manifest.json").read_text())
    assert int8["fidelity"]["passed"] and int8["fidelity"]["threshold"] == 0.99
    assert all(int8["fidelity"][m]["cosine"] >= 0.99 for m in ("encode_context", "encode_window", "predict"))
    assert fp32["fidelity"]["encode_window"]["cosine"] >= 0.999
    assert "MatMulInteger" in int8["export"]["graphs"]["encode_window"]["ops"]
    assert int8["total_bytes"] < 0.5 * fp32["total_bytes"]


def test_custom_clip_shape_changes_the_fixed_layout(model, tmp_path):
    path = export_bundle(model, "onnx", frames=6, size=48, out=tmp_path / "b", verify_clips=1)
    m = json.loads((path / "manifest.json").read_text())
    # 6 frames keep the model's context share (2 of 4) on whole tubelets: round(6 * 2 / 4 / 2) * 2 = 4 frames
    assert m["clip"]["frames"] == 6 and m["clip"]["size"] == 48 and m["clip"]["context_frames"] == 4
    assert m["methods"]["encode_window"]["inputs"][0]["shape"] == [1, 3, 6, 48, 48]
    assert m["surprise"]["grid"] == [3, 3, 3] and m["surprise"]["target_idx"] == {"start": 18, "stop": 27}
    runner = Runner.open(path)
    assert (runner.frames, runner.size, runner.context_frames) == (6, 48, 4)
    assert runner.run(torch.zeros(1, 3, 6, 48, 48)).predicted.shape == (1, 9, 32)
