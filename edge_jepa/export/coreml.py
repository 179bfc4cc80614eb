"""CoreML exporter: one multifunction `model.mlpackage` (mlprogram, iOS 18 / macOS 15) with functions
encode_context, encode_window and predict, sharing the encoder's weights.

Each graph ("fused" op set: CoreML keeps scaled_dot_product_attention and layer_norm as single ops on iOS 18)
goes through `torch.export(...).run_decompositions({})` and `coremltools.convert`, is compressed with
`coremltools.optimize.coreml` (int8: per-channel symmetric linear weights; int4: 4-bit k-means palettization,
one 16-entry table per weight), and the three are merged with `save_multifunction`, which deduplicates
identical weights. On Linux coremltools converts, compresses and validates the spec (tested); prediction
needs macOS.

A frame-causal model's stream step (`export_coreml_stream`, edge_jepa.export.stream_bundle writes the bundle) is
one function, `stream_step`, with the stream bundles' inputs/outputs (edge_jepa.formats STREAM_INPUTS/OUTPUTS:
frame and the key/value caches and cache mask in; tokens, prediction, log-scales and the shifted caches out),
converted and compressed the same way.
"""

from __future__ import annotations

import collections
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edge_jepa.export.bundle import Artifacts, ExportRequest, step
from edge_jepa.export.wrappers import surprise_graphs
from edge_jepa.formats import IO_NAMES, METHODS
from edge_jepa.models.layout import ClipLayout

PACKAGE = "model.mlpackage"
DEFAULT_FUNCTION = "encode_window"
# The op a compressed weight leaves in the program (iOS 18 opset), per precision.
COMPRESSION_OPS = {"int8": "constexpr_blockwise_shift_scale", "int4": "constexpr_lut_to_dense"}


def export_coreml(req: ExportRequest) -> Artifacts:
    """Write model.mlpackage at fp32, fp16, int8 (linear weights) or int4 (palettized weights)."""
    fmt = req.format.name
    graphs = surprise_graphs(req.model, "fused", req.layout)
    examples = req.layout.example_inputs()
    scratch = req.out_dir / ".functions"
    scratch.mkdir()
    desc = _multifunction_descriptor()
    for method in METHODS:
        req.progress(f"converting {method} to CoreML")
        with step(fmt, f"coremltools.convert of {method}", "replace the op named above, or use --format onnx"):
            mlmodel = convert(graphs[method], examples[method], method, req.precision)
        if req.precision in COMPRESSION_OPS:
            req.progress(f"compressing {method} weights ({req.precision})")
            with step(fmt, f"{req.precision} weight compression of {method}", "--quant fp16"):
                mlmodel = compress(mlmodel, req.precision)
        path = scratch / f"{method}.mlpackage"
        mlmodel.save(str(path))
        desc.add_function(str(path), src_function_name="main", target_function_name=method)
    desc.default_function_name = DEFAULT_FUNCTION
    req.progress("merging the functions into model.mlpackage")
    with step(fmt, "save_multifunction", "check free disk space"):
        import coremltools as ct

        ct.utils.save_multifunction(desc, str(req.out_dir / PACKAGE))
    shutil.rmtree(scratch)
    with step(fmt, "validating the CoreML spec", "re-export; report the mismatch above"):
        spec = validate_spec(req.out_dir / PACKAGE, req.layout, req.precision)
    return Artifacts({m: {"file": PACKAGE, "entry": m} for m in METHODS}, export_details(req.precision, spec))


def export_coreml_stream(req: Any) -> Artifacts:
    """A frame-causal model's stream step (edge_jepa.export.stream_step, "fused" op set) as function `stream_step`
    of model.mlpackage (also its default function), at fp32, fp16, int8 (linear weights) or int4 (palettized)."""
    import coremltools as ct

    from edge_jepa.export.stream_step import stream_step_graph
    from edge_jepa.formats import STREAM_INPUTS, STREAM_METHOD, STREAM_OUTPUTS

    fmt = req.format.name
    graph = stream_step_graph(req.model, req.fps, "fused")
    example = graph.example_inputs()
    with torch.no_grad():
        shapes_out = [tuple(y.shape) for y in graph(*example)]
    req.progress(f"converting {STREAM_METHOD} to CoreML")
    with step(fmt, f"coremltools.convert of {STREAM_METHOD}", "replace the op named above, or use --format onnx"):
        mlmodel = convert_graph(graph, example, STREAM_INPUTS, STREAM_OUTPUTS, req.precision)
    if req.precision in COMPRESSION_OPS:
        req.progress(f"compressing {STREAM_METHOD} weights ({req.precision})")
        with step(fmt, f"{req.precision} weight compression of {STREAM_METHOD}", "--quant fp16"):
            mlmodel = compress(mlmodel, req.precision)
    scratch = req.out_dir / ".functions"
    scratch.mkdir()
    mlmodel.save(str(scratch / f"{STREAM_METHOD}.mlpackage"))
    desc = _multifunction_descriptor()  # the function named as the method, like the window bundles' functions
    desc.add_function(str(scratch / f"{STREAM_METHOD}.mlpackage"), src_function_name="main",
                      target_function_name=STREAM_METHOD)
    desc.default_function_name = STREAM_METHOD
    with step(fmt, "save_multifunction", "check free disk space"):
        ct.utils.save_multifunction(desc, str(req.out_dir / PACKAGE))
    shutil.rmtree(scratch)
    with step(fmt, "validating the CoreML spec", "re-export; report the mismatch above"):
        spec = _load_spec(req.out_dir / PACKAGE, (STREAM_METHOD,))
        report = check_function(spec, STREAM_METHOD, dict(zip(STREAM_INPUTS, (tuple(x.shape) for x in example),
                                                              strict=True)),
                                dict(zip(STREAM_OUTPUTS, shapes_out, strict=True)), req.precision)
    return Artifacts({STREAM_METHOD: {"file": PACKAGE, "entry": STREAM_METHOD}},
                     export_details(req.precision, {STREAM_METHOD: report}))


def export_details(precision: str, functions: dict[str, Any]) -> dict[str, Any]:
    """The manifest's "export" section of a CoreML package: target, compute precision, functions, compression."""
    details = {"minimum_deployment_target": "iOS18", "model_type": "mlprogram", "op_set": "fused",
               "compute_precision": "fp32" if precision == "fp32" else "fp16", "functions": functions}
    if precision == "int8":
        details["quantization"] = {"method": "coremltools.optimize.coreml.linear_quantize_weights",
                                   "weights": "int8 per-channel symmetric"}
    elif precision == "int4":
        details["quantization"] = {"method": "coremltools.optimize.coreml.palettize_weights",
                                   "weights": "4-bit k-means palettization, one table per weight"}
    return details


def _multifunction_descriptor() -> Any:
    import coremltools as ct

    return ct.utils.MultiFunctionDescriptor()


def convert(module: torch.nn.Module, example: tuple[torch.Tensor, ...], method: str, precision: str) -> Any:
    """One graph -> an mlprogram MLModel with float32 input/output named as in the manifest."""
    in_name, out_name = IO_NAMES[method]
    return convert_graph(module, example, (in_name,), (out_name,), precision)


def convert_graph(module: torch.nn.Module, example: tuple[torch.Tensor, ...], input_names: tuple[str, ...],
                  output_names: tuple[str, ...], precision: str) -> Any:
    """A fixed-shape graph -> an mlprogram MLModel (iOS 18) with these float32 input and output names, in order."""
    import coremltools as ct

    program = torch.export.export(module, example).run_decompositions({})
    return ct.convert(
        program,
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS18,
        compute_precision=ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16,
        inputs=[ct.TensorType(name=name, shape=tuple(x.shape), dtype=np.float32)
                for name, x in zip(input_names, example, strict=True)],
        outputs=[ct.TensorType(name=name, dtype=np.float32) for name in output_names],
        skip_model_load=True,
    )


def compress(mlmodel: Any, precision: str) -> Any:
    """int8: per-channel symmetric linear weight quantization; int4: 4-bit k-means palettization."""
    from coremltools.optimize.coreml import (
        OpLinearQuantizerConfig,
        OpPalettizerConfig,
        OptimizationConfig,
        linear_quantize_weights,
        palettize_weights,
    )

    if precision == "int8":
        op = OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel")
        return linear_quantize_weights(mlmodel, OptimizationConfig(global_config=op))
    op = OpPalettizerConfig(nbits=4, mode="kmeans", granularity="per_tensor")
    return palettize_weights(mlmodel, OptimizationConfig(global_config=op))


def validate_spec(package: Path, layout: ClipLayout, precision: str) -> dict[str, Any]:
    """Check the saved package: every function with the manifest's input/output names, shapes and dtypes,
    and compressed weights where the precision asks for them. Returns per-function IO and op counts."""
    spec = _load_spec(package, METHODS)
    inputs, outputs = layout.input_shapes(), layout.output_shapes()
    report = {}
    for method in METHODS:
        in_name, out_name = IO_NAMES[method]
        report[method] = check_function(spec, method, {in_name: inputs[method]}, {out_name: outputs[method]},
                                        precision)
    return report


def _load_spec(package: Path, functions: tuple[str, ...]) -> Any:
    import coremltools as ct

    spec = ct.utils.load_spec(str(package))
    described = {f.name for f in spec.description.functions}
    missing = [m for m in functions if m not in described or m not in spec.mlProgram.functions]
    if missing:
        raise ValueError(f"{package.name} lacks functions {missing}; it has {sorted(described)}")
    return spec


def check_function(spec: Any, name: str, inputs: dict[str, tuple[int, ...]], outputs: dict[str, tuple[int, ...]],
                   precision: str) -> dict[str, Any]:
    """One function of a loaded spec: exactly these float32 inputs/outputs (names, order, shapes), and the
    compression op where the precision asks for one. Returns its IO and op counts for the manifest."""
    import coremltools as ct

    fn = next(f for f in spec.description.functions if f.name == name)
    float32 = ct.proto.FeatureTypes_pb2.ArrayFeatureType.FLOAT32

    def io(features: Any) -> list[tuple[str, tuple[int, ...], int]]:
        return [(f.name, tuple(f.type.multiArrayType.shape), f.type.multiArrayType.dataType) for f in features]

    got_in, got_out = io(fn.input), io(fn.output)
    want_in = [(k, tuple(v), float32) for k, v in inputs.items()]
    want_out = [(k, tuple(v), float32) for k, v in outputs.items()]
    if got_in != want_in or got_out != want_out:
        raise ValueError(f"{name}: CoreML IO {got_in} -> {got_out}, expected {want_in} -> {want_out} (float32)")
    ops = collections.Counter(
        op.type for block in spec.mlProgram.functions[name].block_specializations.values() for op in block.operations
    )
    needed = COMPRESSION_OPS.get(precision)
    if needed and not ops.get(needed):
        raise ValueError(f"{name}: {precision} weights should leave {needed} ops; found none ({dict(ops)})")
    return {"inputs": [{"name": k, "shape": list(v), "dtype": "float32"} for k, v in inputs.items()],
            "outputs": [{"name": k, "shape": list(v), "dtype": "float32"} for k, v in outputs.items()],
            "ops": dict(sorted(ops.items()))}
