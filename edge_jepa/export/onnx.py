"""ONNX exporter: encode_context.onnx, encode_window.onnx, predict.onnx (opset 18) for ONNX Runtime and TensorRT.

The two encoder graphs share one external weight file, encoder.weights (each graph alone would carry a copy
of the encoder). The "fused" op set keeps LayerNorm one `LayerNormalization` node (TensorRT's fp16 engines overflow a
decomposed LayerNorm after attention) and attention as MatMul/Softmax (opset 18: JetPack 6's TensorRT 10.3
has no opset-23 Attention op). RoPE tables are constants. int8 is ONNX Runtime's dynamic quantization
(int8 per-channel weights, int8 dynamic activations) after its shape-inference pre-processing.

Jetson: build engines from the fp32 files, e.g.
    trtexec --onnx=encode_window.onnx --saveEngine=encode_window.plan --fp16
or run them in ONNX Runtime with the TensorRT execution provider (`OnnxRunner(..., providers=[...])`).
"""

from __future__ import annotations

import collections
import shutil
from pathlib import Path
from typing import Any

import torch

from edge_jepa.export.bundle import Artifacts, ExportRequest, step
from edge_jepa.export.wrappers import surprise_graphs
from edge_jepa.formats import IO_NAMES, METHODS

OPSET = 18
SHARED_WEIGHTS = "encoder.weights"  # external data file both encoder graphs point into
SHARE_MIN_BYTES = 1024  # smaller initializers stay inside each graph
EXTERNAL_DATA_BYTES = 1_500_000_000  # protobuf's 2 GB limit: larger graphs keep weights in <file>.data


def export_onnx(req: ExportRequest) -> Artifacts:
    """Write the three .onnx files at fp32 or int8 (ONNX Runtime dynamic quantization)."""
    fmt = req.format.name
    graphs = surprise_graphs(req.model, "fused", req.layout)
    examples = req.layout.example_inputs()
    external = sum(p.numel() * 4 for p in req.model.parameters()) > EXTERNAL_DATA_BYTES
    details: dict[str, Any] = {"opset": OPSET, "op_set": "fused", "external_data": external, "graphs": {}}
    scratch = req.out_dir / ".fp32"  # fp32 graphs before int8 quantization (removed before the bundle appears)
    for method in METHODS:
        path = req.out_dir / f"{method}.onnx"
        fp32 = scratch / path.name if req.precision == "int8" else path
        fp32.parent.mkdir(exist_ok=True)
        in_name, out_name = IO_NAMES[method]
        req.progress(f"exporting {method}.onnx")
        with step(fmt, f"torch.onnx.export of {method}", "check that the model runs in eager; try opset 17"):
            torch.onnx.export(graphs[method], examples[method], str(fp32), dynamo=True, opset_version=OPSET,
                              input_names=[in_name], output_names=[out_name], external_data=external,
                              verbose=False)
        if req.precision == "int8":
            req.progress(f"quantizing {method}.onnx (ONNX Runtime int8)")
            with step(fmt, f"ONNX Runtime int8 quantization of {method}", "--quant fp32"):
                quantize_int8(fp32, path, external)
    shutil.rmtree(scratch, ignore_errors=True)
    req.progress("sharing the encoder weights between the two encoder graphs")
    with step(fmt, "sharing encoder weights", "check free disk space"):
        details["shared_weights"] = share_weights(req.out_dir, ["encode_window.onnx", "encode_context.onnx"],
                                                  SHARED_WEIGHTS)
    for method in METHODS:
        with step(fmt, f"checking {method}.onnx", "re-export; report the op named above"):
            details["graphs"][method] = check_onnx(req.out_dir / f"{method}.onnx")
    if req.precision == "int8":
        details["quantization"] = {"method": "onnxruntime.quantization.quantize_dynamic",
                                   "weights": "int8 per-channel", "activations": "int8 dynamic"}
    return Artifacts({m: {"file": f"{m}.onnx", "entry": ""} for m in METHODS}, details)


def quantize_int8(source: Path, target: Path, external: bool) -> None:
    """ONNX Runtime int8 of `source` into `target`: shape-inference pre-processing, then dynamic quantization
    (per-channel QInt8 weights, int8 dynamic activations)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = source.with_name(source.stem + ".pre.onnx")
    quant_pre_process(str(source), str(pre), save_as_external_data=external)
    quantize_dynamic(str(pre), str(target), weight_type=QuantType.QInt8, per_channel=True,
                     use_external_data_format=external)


def share_weights(root: Path, files: list[str], data_name: str) -> dict[str, Any]:
    """Store the large initializers of `files` once, in external data file `data_name`, and point every graph
    at it (graphs exported separately carry identical copies of the shared encoder). Old per-file external
    data is removed. ONNX Runtime and TensorRT's parser read external data beside the .onnx file."""
    import hashlib

    import onnx
    from onnx.external_data_helper import set_external_data

    models = {name: onnx.load(str(root / name), load_external_data=True) for name in files}
    offsets: dict[str, tuple[int, int]] = {}
    references = 0
    with open(root / data_name, "wb") as data:
        for model in models.values():
            for tensor in model.graph.initializer:
                raw = tensor.raw_data
                if len(raw) < SHARE_MIN_BYTES:
                    continue
                key = hashlib.sha256(raw).hexdigest()
                if key not in offsets:
                    data.write(b"\0" * (-data.tell() % 64))  # 64-byte aligned tensors
                    offsets[key] = (data.tell(), len(raw))
                    data.write(raw)
                offset, length = offsets[key]
                set_external_data(tensor, location=data_name, offset=offset, length=length)
                tensor.ClearField("raw_data")
                tensor.data_location = onnx.TensorProto.EXTERNAL
                references += 1
    for name, model in models.items():
        (root / f"{name}.data").unlink(missing_ok=True)
        onnx.save_model(model, str(root / name))
    return {"file": data_name, "tensors": len(offsets), "references": references,
            "bytes": (root / data_name).stat().st_size}


def check_onnx(path: Path) -> dict[str, Any]:
    """onnx.checker on the file; returns opset, IO and an op histogram for the manifest."""
    import onnx

    onnx.checker.check_model(str(path))
    model = onnx.load(str(path), load_external_data=False)

    def io(values: Any) -> list[dict[str, Any]]:
        return [{"name": v.name, "shape": [d.dim_value for d in v.type.tensor_type.shape.dim],
                 "elem_type": onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name}
                for v in values]

    ops = collections.Counter(node.op_type for node in model.graph.node)
    return {"opset": max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
            "inputs": io(model.graph.input), "outputs": io(model.graph.output), "ops": dict(sorted(ops.items()))}


def export_onnx_stream(req: Any) -> Artifacts:
    """A frame-causal model's stream step as stream_step.onnx (opset 18, "fused" op set: one LayerNormalization
    node per LayerNorm, attention with an additive cache mask), fp32 or ONNX Runtime dynamic int8."""
    from edge_jepa.export.stream_step import stream_step_graph
    from edge_jepa.formats import STREAM_INPUTS, STREAM_METHOD, STREAM_OUTPUTS

    fmt = req.format.name
    graph = stream_step_graph(req.model, req.fps, "fused")
    path = req.out_dir / f"{STREAM_METHOD}.onnx"
    scratch = req.out_dir / ".fp32"
    fp32 = scratch / path.name if req.precision == "int8" else path
    fp32.parent.mkdir(exist_ok=True)
    req.progress(f"exporting {path.name}")
    with step(fmt, f"torch.onnx.export of {STREAM_METHOD}", "check that the model runs in eager; try opset 17"):
        torch.onnx.export(graph, graph.example_inputs(), str(fp32), dynamo=True, opset_version=OPSET,
                          input_names=list(STREAM_INPUTS), output_names=list(STREAM_OUTPUTS), verbose=False)
    details: dict[str, Any] = {"opset": OPSET, "op_set": "fused"}
    if req.precision == "int8":
        req.progress(f"quantizing {path.name} (ONNX Runtime int8)")
        with step(fmt, f"ONNX Runtime int8 quantization of {STREAM_METHOD}", "--quant fp32"):
            quantize_int8(fp32, path, False)
        details["quantization"] = {"method": "onnxruntime.quantization.quantize_dynamic",
                                   "weights": "int8 per-channel", "activations": "int8 dynamic"}
    shutil.rmtree(scratch, ignore_errors=True)
    with step(fmt, f"checking {path.name}", "re-export; report the op named above"):
        details["graphs"] = {STREAM_METHOD: check_onnx(path)}
    return Artifacts({STREAM_METHOD: {"file": path.name, "entry": ""}}, details)
