"""The format table, bundle atomicity and export errors (real failing ops, real failed verification)."""

from __future__ import annotations

import importlib
import json

import pytest
import torch

import edge_jepa
from edge_jepa.export import FORMATS, MIN_COSINE, PRECISIONS, ExportError, export_bundle, get_format
from edge_jepa.export.bundle import failing_op
from edge_jepa.quantize import quantize
from edge_jepa.runtime.base import Runner
from edge_jepa.stream.prior import compute_prior, prior_for
from tests.conftest import TINY


class ErfinvNorm(torch.nn.Module):
    """A final 'norm' built on erfinv: core ATen has no erfinv, CoreML and ONNX converters neither."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.erfinv(torch.tanh(x))


@pytest.fixture
def odd_model():
    model = edge_jepa.create(TINY, seed=0).eval()
    model.encoder.norm = ErfinvNorm()
    return model


def test_format_table_is_consistent():
    assert {"executorch", "executorch-coreml", "onnx", "coreml"} <= set(FORMATS)
    for fmt in FORMATS.values():
        assert set(fmt.precisions) <= set(PRECISIONS) and fmt.precisions[0] == "fp32"
        assert set(fmt.precision_notes) == set(fmt.precisions)
        exporter, runner = fmt.resolve("exporter"), fmt.resolve("runner")
        assert callable(exporter) and issubclass(runner, Runner)
        assert fmt.export_unavailable() is None, fmt.name  # every toolkit is installed here
        importlib.import_module(fmt.runner.partition(":")[0])
    assert MIN_COSINE == {"fp32": 0.999, "fp16": 0.999, "int8": 0.99, "int4": 0.98}
    with pytest.raises(ValueError, match="unknown export format 'tflite'; choose one of executorch"):
        get_format("tflite")
    with pytest.raises(ValueError, match="format onnx supports precisions fp32, int8, not 'int4'"):
        get_format("onnx").check_precision("int4")


@pytest.mark.parametrize("fmt, op", [("coreml", "erfinv"), ("onnx", "erf_inv"), ("executorch", "aten.erfinv")])
def test_failing_op_leaves_nothing_and_names_op_format_and_fix(odd_model, tmp_path, fmt, op):
    out = tmp_path / "bundle"
    with pytest.raises(ExportError) as info:
        export_bundle(odd_model, fmt, out=out)
    message = str(info.value)
    assert message.startswith(f"{fmt} export failed at ") and op in message and "Try: " in message
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no temp directory left beside it either


def test_failed_verification_keeps_the_previous_bundle(tmp_path):
    good = edge_jepa.create(TINY, seed=0).eval()
    good.surprise_prior = compute_prior(good, seeds=(900,), seconds=2.0)  # as `edge_jepa.load` attaches it
    out = export_bundle(good, "onnx", out=tmp_path / "bundle", verify_clips=1)
    before = (out / "manifest.json").read_text()
    assert json.loads(before)["surprise_prior"] == good.surprise_prior  # a bundle runner has the model's prior
    assert prior_for(Runner.open(out)).baseline == good.surprise_prior["entries"][0]["baseline"]
    broken = edge_jepa.create(TINY, seed=0).eval()
    with torch.no_grad():
        broken.encoder.blocks[0].mlp.fc1.weight[0, 0] = float("nan")
    with pytest.raises(ExportError, match=r"onnx fp32 export failed verification .* cosine vs eager encode_context "
                                          r"nan.* Try check the model weights for NaN"):
        export_bundle(broken, "onnx", out=out, verify_clips=1)
    assert (out / "manifest.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_bad_requests_fail_before_writing(tmp_path):
    model = edge_jepa.create(TINY, seed=0)
    with pytest.raises(ValueError, match="supports precisions fp32, int8, int4, not 'fp16'"):
        export_bundle(model, "executorch", "fp16", out=tmp_path / "a")
    with pytest.raises(ExportError, match=r"clip 5 frames x 32 px does not fit test-tiny: .*multiples of the tubelet"):
        export_bundle(model, "onnx", frames=5, out=tmp_path / "b")
    with pytest.raises(ValueError, match="static int8 activations apply to --format executorch --quant int8"):
        export_bundle(model, "onnx", "int8", int8_activations="static", out=tmp_path / "d")
    with pytest.raises(ValueError, match="int8_activations must be one of"):
        export_bundle(model, "executorch", "int8", int8_activations="per-token", out=tmp_path / "e")
    with pytest.raises(ExportError, match=r"export takes the fp32 model, not an eager-quantized copy \(fp16\)"):
        export_bundle(quantize(model, "fp16"), "onnx", out=tmp_path / "f")
    with pytest.raises(FileNotFoundError, match="no such file"):
        export_bundle(tmp_path / "missing.pt", "onnx", out=tmp_path / "c")
    assert list(tmp_path.iterdir()) == []


def test_exported_from_a_saved_model_dir_records_source_and_hashes(tiny_model_dir, tmp_path):
    out = export_bundle(str(tiny_model_dir), "onnx", out=tmp_path / "b", verify_clips=1)
    m = json.loads((out / "manifest.json").read_text())
    assert m["model"]["source"] == str(tiny_model_dir) and m["model"]["name"] == "test-tiny"
    assert m["total_bytes"] == sum(f["bytes"] for f in m["files"].values()) > 0
    assert (out / "encode_window.onnx").stat().st_size == m["files"]["encode_window.onnx"]["bytes"]


def test_failing_op_parser():
    assert failing_op("Unsupported fx node erfinv, kind erfinv") == "erfinv"
    assert failing_op("Operator torch._ops.aten.cummax.default is not in Core ATen opset") == "aten.cummax.default"
    assert failing_op("PyTorch convert function for op 'i0' not implemented.") == "i0"
    assert failing_op("disk full") is None
