"""CoreML exporter: one multifunction `model.mlpackage` (mlprogram, iOS 18 / macOS 15) with functions
encode_context, encode_window and predict, sharing the encoder's weights.

Each graph ("fused" op set: CoreML keeps scaled_dot_product_attention and layer_norm as single ops on iOS 18)
goes through `torch.export(...).run_decompositions({})` and `coremltools.convert`, is compressed with
`coremltools.optimize.coreml` (int8: per-channel symmetric linear weights; int4: 4-bit k-means palettization,
one 16-entry table per weight), and the three are merged with `save_multifunction`, which deduplicates
identical weights. On Linux coremltools converts, compresses and validates the spec (tested); prediction
needs macOS.
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
    details = {"minimum_deployment_target": "iOS18", "model_type": "mlprogram", "op_set": "fused",
               "compute_precision": "fp32" if req.precision == "fp32" else "fp16", "functions": spec}
    if req.precision == "int8":
        details["quantization"] = {"method": "coremltools.optimize.coreml.linear_quantize_weights",
                                   "weights": "int8 per-channel symmetric"}
    elif req.precision == "int4":
        details["quantization"] = {"method": "coremltools.optimize.coreml.palettize_weights",
                                   "weights": "4-bit k-means palettization, one table per weight"}
    return Artifacts({m: {"file": PACKAGE, "entry": m} for m in METHODS}, details)


def _multifunction_descriptor() -> Any:
    import coremltools as ct

    return ct.utils.MultiFunctionDescriptor()


def convert(module: torch.nn.Module, example: tuple[torch.Tensor, ...], method: str, precision: str) -> Any:
    """One graph -> an mlprogram MLModel with float32 input/output named as in the manifest."""
    import coremltools as ct

    in_name, out_name = IO_NAMES[method]
    program = torch.export.export(module, example).run_decompositions({})
    return ct.convert(
        program,
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS18,
        compute_precision=ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16,
        inputs=[ct.TensorType(name=in_name, shape=tuple(example[0].shape), dtype=np.float32)],
        outputs=[ct.TensorType(name=out_name, dtype=np.float32)],
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
    import coremltools as ct

    spec = ct.utils.load_spec(str(package))
    described = {f.name: f for f in spec.description.functions}
    missing = [m for m in METHODS if m not in described or m not in spec.mlProgram.functions]
    if missing:
        raise ValueError(f"{package.name} lacks functions {missing}; it has {sorted(described)}")
    inputs, outputs = layout.input_shapes(), layout.output_shapes()
    float32 = ct.proto.FeatureTypes_pb2.ArrayFeatureType.FLOAT32
    report = {}
    for method in METHODS:
        fn = described[method]
        in_name, out_name = IO_NAMES[method]
        got_in = [(f.name, tuple(f.type.multiArrayType.shape), f.type.multiArrayType.dataType) for f in fn.input]
        got_out = [(f.name, tuple(f.type.multiArrayType.shape), f.type.multiArrayType.dataType) for f in fn.output]
        want_in, want_out = [(in_name, inputs[method], float32)], [(out_name, outputs[method], float32)]
        if got_in != want_in or got_out != want_out:
            raise ValueError(f"{method}: CoreML IO {got_in} -> {got_out}, expected {want_in} -> {want_out} (float32)")
        ops = collections.Counter(
            op.type for block in spec.mlProgram.functions[method].block_specializations.values()
            for op in block.operations
        )
        needed = COMPRESSION_OPS.get(precision)
        if needed and not ops.get(needed):
            raise ValueError(f"{method}: {precision} weights should leave {needed} ops; found none ({dict(ops)})")
        report[method] = {"inputs": [{"name": in_name, "shape": list(inputs[method]), "dtype": "float32"}],
                          "outputs": [{"name": out_name, "shape": list(outputs[method]), "dtype": "float32"}],
                          "ops": dict(sorted(ops.items()))}
    return report
