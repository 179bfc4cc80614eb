"""CoreML bundles: conversion, compression and spec validation (Linux); prediction only on macOS."""

from __future__ import annotations

import json
import sys

import pytest

import edge_jepa
from edge_jepa.export import export_bundle
from edge_jepa.export.coreml import COMPRESSION_OPS, validate_spec
from edge_jepa.formats import get_format
from edge_jepa.models.layout import ClipLayout
from edge_jepa.runtime import Runner
from tests.conftest import TINY

ON_MAC = sys.platform == "darwin"


@pytest.fixture(scope="module")
def model():
    return edge_jepa.create(TINY, seed=0).eval()


@pytest.fixture(scope="module")
def bundles(tiny_bundles):
    return {q: tiny_bundles("coreml", q) for q in ("fp16", "int8", "int4")}


def _manifest(path):
    return json.loads((path / "manifest.json").read_text())


def test_one_multifunction_package_with_the_manifest_io(bundles, model):
    for quant, path in bundles.items():
        m = _manifest(path)
        assert (path / "model.mlpackage" / "Manifest.json").is_file()
        assert all(name.startswith("model.mlpackage/") for name in m["files"])
        assert {spec["entry"] for spec in m["methods"].values()} == {"encode_context", "encode_window", "predict"}
        functions = m["export"]["functions"]
        for method, spec in m["methods"].items():
            assert functions[method]["inputs"] == spec["inputs"] and functions[method]["outputs"] == spec["outputs"]
            ops = functions[method]["ops"]
            assert ops.get("linear", 0) >= 4, (quant, method, ops)
            if quant in COMPRESSION_OPS:  # weights under coremltools' 2048-element threshold stay fp16
                assert ops.get(COMPRESSION_OPS[quant], 0) >= 3, (quant, method, ops)
            assert ops.get("scaled_dot_product_attention") and ops.get("layer_norm")  # fused ops on iOS 18
        # the spec re-validates from disk against the layout of the model's clip
        validate_spec(path / "model.mlpackage", ClipLayout.of(model), quant)


def test_compression_shrinks_the_weights(bundles):
    def weights(path):
        return _manifest(path)["files"]["model.mlpackage/Data/com.apple.CoreML/weights/weight.bin"]["bytes"]

    fp16, int8, int4 = (weights(bundles[q]) for q in ("fp16", "int8", "int4"))
    assert int8 < 0.7 * fp16 and int4 < 0.75 * int8


def test_shared_encoder_weights_are_stored_once(bundles, model):
    # fp16 encoder weights alone are 2 bytes/param; two separate encoder copies would exceed this bound
    encoder_bytes = 2 * model.num_params("encoder")
    weights = _manifest(bundles["fp16"])["files"]["model.mlpackage/Data/com.apple.CoreML/weights/weight.bin"]
    assert weights["bytes"] < 1.5 * encoder_bytes + 2 * model.num_params("predictor") + 20_000


@pytest.mark.skipif(ON_MAC, reason="on macOS the bundle is verified numerically instead (next test)")
def test_linux_states_why_it_is_not_verified(bundles):
    fid = _manifest(bundles["fp16"])["fidelity"]
    assert fid["verified"] is False and "macOS" in fid["reason"]
    reason = get_format("coreml").run_unavailable()
    with pytest.raises(RuntimeError, match="CoreML prediction needs macOS"):
        Runner.open(bundles["fp16"])
    assert reason and "macOS" in reason


@pytest.mark.skipif(not ON_MAC, reason="CoreML prediction needs macOS: coremltools has no Linux runtime")
def test_macos_bundles_are_verified_at_export(bundles):
    """(That the runner matches eager is test_runner_matches_eager.py, for every format and precision.)"""
    for quant, threshold in (("fp16", 0.999), ("int8", 0.99), ("int4", 0.98)):
        fid = _manifest(bundles[quant])["fidelity"]
        assert fid["verified"] and fid["passed"] and fid["threshold"] == threshold, quant


def test_executorch_coreml_delegate_lowers_everything(model, tmp_path):
    path = export_bundle(model, "executorch-coreml", "fp16", out=tmp_path / "pte")
    m = _manifest(path)
    assert set(m["files"]) == {"model.pte"} and m["export"]["delegate"] == "CoreMLBackend"
    assert all(d["fully_delegated"] and d["delegated_subgraphs"] == 1 for d in m["export"]["delegation"].values())
    if get_format("executorch-coreml").run_unavailable():  # every ExecuTorch build but Apple's
        assert m["fidelity"]["verified"] is False and "CoreMLBackend" in m["fidelity"]["reason"]
        with pytest.raises(RuntimeError, match="no CoreMLBackend"):
            Runner.open(path)
    else:
        assert m["fidelity"]["passed"] and m["fidelity"]["encode_window"]["cosine"] >= 0.999
