"""ExecuTorch exporters: one `model.pte` holding three methods (encode_context, encode_window, predict).

XNNPACK (`export_xnnpack`):
    fp32  the "xnnpack" op set (edge_jepa.export.wrappers) lowers completely: one delegate per method, nothing on
          portable kernels (checked with get_delegation_info; the counts go into the manifest).
    int8  PT2E int8 on every Linear (edge_jepa.quantize.pt2e_quantize): per-channel weights, dynamic per-token
          activations (default) or static ones calibrated on real clips (int8_activations="static").
    int4  torchao 8da4w (Int8DynamicActivationIntxWeightConfig): int4 weights in groups of 32 on every Linear
          but the predictor's input/output projections (int8 weights); int8 dynamic activations.
The methods share weights: XNNPACK stores constants by content hash in the program's named data, so the
encoder appears once although two methods use it.

CoreML delegate (`export_coreml_delegate`): the "fused" op set through CoreMLPartitioner (mlprogram,
iOS 18). It exports on Linux; only Apple builds of the ExecuTorch runtime can run it. A frame-causal model's
stream step goes the same two ways (`export_xnnpack_stream`, `export_coreml_delegate_stream`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from edge_jepa.export.bundle import Artifacts, ExportRequest, step
from edge_jepa.export.wrappers import PairRotation, surprise_graphs
from edge_jepa.formats import METHODS

PROGRAM = "model.pte"
INT4_GROUP = 32
INT8_IN_INT4 = ("predictor.embed", "predictor.proj")  # int4 export: these Linears keep int8 weights
DYNAMIC_INT8 = "encoder.patch_embed.proj"  # static PT2E: this Linear keeps dynamic activations (see quantize.py)
HINT_LOWER = ("express the op named above with core ATen ops XNNPACK supports (edge_jepa.export.wrappers shows how), "
              "or use --format onnx")


def export_xnnpack(req: ExportRequest) -> Artifacts:
    """Write model.pte (XNNPACK delegate) at fp32, int8 (PT2E) or int4 (8da4w)."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

    fmt = req.format.name
    graphs = surprise_graphs(req.model, "xnnpack", req.layout)
    examples = req.layout.example_inputs()
    details: dict[str, Any] = {"delegate": "XnnpackBackend", "op_set": "xnnpack"}
    if req.precision == "int8":
        from edge_jepa.quantize import pt2e_quantize

        static = req.int8_activations == "static"
        req.progress("calibrating PT2E int8 on real clips" if static else "quantizing PT2E int8")
        with step(fmt, "PT2E int8 quantization", "--quant int4 or --quant fp32"):
            graphs = {m: pt2e_quantize(graphs[m], examples[m], req.calibration[m] if static else None,
                                       exclude=(PairRotation,), dynamic=(DYNAMIC_INT8,)) for m in METHODS}
        details["quantization"] = {
            "method": "pt2e (XNNPACKQuantizer)", "weights": "int8 per-channel symmetric", "ops": "linear",
            "activations": ("int8 per-tensor static, calibrated on real clips; the tubelet embedding's inputs int8 "
                            "dynamic per token") if static else "int8 dynamic per token",
            **({"calibration_clips": req.calibration_count} if static else {}),
        }
    elif req.precision == "int4":
        req.progress("quantizing weights to int4 (8da4w)")
        with step(fmt, "int4 (8da4w) quantization", "--quant int8"):
            _quantize_8da4w(graphs)
        details["quantization"] = {"method": "torchao Int8DynamicActivationIntxWeightConfig",
                                   "weights": f"int4 symmetric, groups of {INT4_GROUP}; int8 per-channel for "
                                              f"{', '.join(INT8_IN_INT4)}",
                                   "activations": "int8 dynamic per token", "ops": "linear"}
    req.progress("tracing with torch.export")
    with step(fmt, "torch.export", "check that the model runs in eager on the clip shape"):
        programs = {m: torch.export.export(graphs[m], examples[m]) for m in METHODS}
    req.progress("lowering to XNNPACK")
    with step(fmt, "lowering to XNNPACK", HINT_LOWER):
        edge = lower(programs, [XnnpackPartitioner()])
    details["delegation"] = delegation_report(edge)
    req.progress("serializing the program")
    with step(fmt, "serializing the .pte", "check free disk space"):
        (req.out_dir / PROGRAM).write_bytes(edge.to_executorch().buffer)
    return Artifacts({m: {"file": PROGRAM, "entry": m} for m in METHODS}, details)


def export_coreml_delegate(req: ExportRequest) -> Artifacts:
    """Write model.pte with the CoreML delegate (compute precision fp32 or fp16, iOS 18)."""
    fmt = req.format.name
    graphs = surprise_graphs(req.model, "fused", req.layout)
    examples = req.layout.example_inputs()
    with step(fmt, "torch.export", "check that the model runs in eager on the clip shape"):
        programs = {m: torch.export.export(graphs[m], examples[m]) for m in METHODS}
    req.progress("lowering to the CoreML delegate")
    with step(fmt, "lowering to CoreML", "--format coreml, or --format executorch (XNNPACK)"):
        edge = lower(programs, [coreml_partitioner(req.precision)])
    details = {"delegate": "CoreMLBackend", "op_set": "fused", "minimum_deployment_target": "iOS18",
               "compute_precision": req.precision, "delegation": delegation_report(edge)}
    with step(fmt, "serializing the .pte", "check free disk space"):
        (req.out_dir / PROGRAM).write_bytes(edge.to_executorch().buffer)
    return Artifacts({m: {"file": PROGRAM, "entry": m} for m in METHODS}, details)


def coreml_partitioner(precision: str) -> Any:
    """ExecuTorch's CoreMLPartitioner for mlprogram, iOS 18, compute precision fp16 or fp32."""
    import coremltools as ct
    from executorch.backends.apple.coreml.compiler import CoreMLBackend
    from executorch.backends.apple.coreml.partition import CoreMLPartitioner

    specs = CoreMLBackend.generate_compile_specs(
        compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32,
        minimum_deployment_target=ct.target.iOS18)
    return CoreMLPartitioner(compile_specs=specs)


def lower(programs: dict[str, torch.export.ExportedProgram], partitioners: list) -> Any:
    """to_edge_transform_and_lower over all methods at once (one program, shared constants)."""
    from executorch.exir import to_edge_transform_and_lower

    return to_edge_transform_and_lower(programs, partitioner=partitioners)


def delegation_report(edge: Any) -> dict[str, dict[str, Any]]:
    """Per method: delegated subgraphs, delegated op count, and every op left on portable kernels.

    `getitem` (unpacking a delegate's outputs) is bookkeeping, not compute, and is not listed.
    """
    from executorch.devtools.backend_debug import get_delegation_info

    report = {}
    for method in sorted(edge.methods):
        info = get_delegation_info(edge.exported_program(method).graph_module)
        non_delegated = {}
        delegated = 0
        for row in info.delegation_by_operator.values():
            delegated += row.delegated
            if row.non_delegated and row.op_type != "getitem":
                non_delegated[row.op_type] = row.non_delegated
        report[method] = {"delegated_subgraphs": info.num_delegated_subgraphs, "delegated_ops": delegated,
                          "non_delegated_ops": non_delegated, "fully_delegated": not non_delegated}
    return report


def _quantize_8da4w(graphs: dict[str, nn.Module]) -> None:
    """int8 dynamic activations on every Linear; int4 weights (groups of 32) except the predictor's input and
    output projections, which keep int8 per-channel weights (shared modules are quantized once).

    Measured on vit_pico: all-int4 predictor outputs reach cosine 0.972 vs fp32; int8 embed/proj bring it to
    0.982 for +0.5% of the predictor's weights (the errors otherwise spread evenly over the layers).
    """
    from torchao.quantization import Int8DynamicActivationIntxWeightConfig, PerAxis, PerGroup, quantize_

    def fresh_linear(names: tuple[str, ...] | None) -> Callable[[nn.Module, str], bool]:
        def fn(module: nn.Module, fqn: str) -> bool:
            if type(module) is not nn.Linear or type(module.weight.data) is not torch.Tensor:
                return False
            return fqn.split(".", 1)[-1] in names if names else module.in_features % INT4_GROUP == 0

        return fn

    int8 = Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int8, weight_granularity=PerAxis(0))
    int4 = Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4, weight_granularity=PerGroup(INT4_GROUP),
                                                 weight_scale_dtype=torch.bfloat16)
    container = nn.ModuleDict(graphs)
    quantize_(container, int8, filter_fn=fresh_linear(INT8_IN_INT4))
    quantize_(container, int4, filter_fn=fresh_linear(None))


def export_xnnpack_stream(req: Any) -> Artifacts:
    """A frame-causal model's stream step (edge_jepa.export.stream_step) as method `stream_step` of model.pte:
    the "xnnpack" op set (whole graph delegated), fp32, PT2E int8 (per-channel weights, dynamic per-token
    activations on every Linear; attention, LayerNorm and the cache updates stay fp32) or int4 (8da4w, as the
    window program: int4 weights in groups of 32, int8 for the predictor's input/output projections)."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

    from edge_jepa.export.stream_step import stream_step_graph
    from edge_jepa.formats import STREAM_METHOD

    fmt = req.format.name
    graph = stream_step_graph(req.model, req.fps, "xnnpack")
    example = graph.example_inputs()
    details: dict[str, Any] = {"delegate": "XnnpackBackend", "op_set": "xnnpack"}
    if req.precision == "int8":
        from edge_jepa.quantize import pt2e_quantize

        req.progress("quantizing PT2E int8")
        with step(fmt, "PT2E int8 quantization", "--quant fp32"):
            graph = pt2e_quantize(graph, example, exclude=(PairRotation,))
        details["quantization"] = {"method": "pt2e (XNNPACKQuantizer)", "weights": "int8 per-channel symmetric",
                                   "ops": "linear", "activations": "int8 dynamic per token"}
    elif req.precision == "int4":  # as the window .pte's int4 (same Linears kept int8: predictor embed and proj)
        req.progress("quantizing weights to int4 (8da4w)")
        with step(fmt, "int4 (8da4w) quantization", "--quant int8"):
            _quantize_8da4w({STREAM_METHOD: graph})
        details["quantization"] = {"method": "torchao Int8DynamicActivationIntxWeightConfig",
                                   "weights": f"int4 symmetric, groups of {INT4_GROUP}; int8 per-channel for "
                                              f"{', '.join(INT8_IN_INT4)}",
                                   "activations": "int8 dynamic per token", "ops": "linear"}
    req.progress("tracing with torch.export")
    with step(fmt, "torch.export", "check that the model runs in eager"):
        program = torch.export.export(graph, example)
    req.progress("lowering to XNNPACK")
    with step(fmt, "lowering to XNNPACK", HINT_LOWER):
        edge = lower({STREAM_METHOD: program}, [XnnpackPartitioner()])
    details["delegation"] = delegation_report(edge)
    req.progress("serializing the program")
    with step(fmt, "serializing the .pte", "check free disk space"):
        (req.out_dir / PROGRAM).write_bytes(edge.to_executorch().buffer)
    return Artifacts({STREAM_METHOD: {"file": PROGRAM, "entry": STREAM_METHOD}}, details)


def export_coreml_delegate_stream(req: Any) -> Artifacts:
    """A frame-causal model's stream step as method `stream_step` of model.pte with the CoreML delegate (the
    "fused" op set, compute precision fp32 or fp16, iOS 18). It lowers on Linux; only Apple builds of the
    ExecuTorch runtime (CoreMLBackend registered) can run it."""
    from edge_jepa.export.stream_step import stream_step_graph
    from edge_jepa.formats import STREAM_METHOD

    fmt = req.format.name
    graph = stream_step_graph(req.model, req.fps, "fused")
    req.progress("tracing with torch.export")
    with step(fmt, "torch.export", "check that the model runs in eager"):
        program = torch.export.export(graph, graph.example_inputs())
    req.progress("lowering to the CoreML delegate")
    with step(fmt, "lowering to CoreML", "--format coreml, or --format executorch (XNNPACK)"):
        edge = lower({STREAM_METHOD: program}, [coreml_partitioner(req.precision)])
    details = {"delegate": "CoreMLBackend", "op_set": "fused", "minimum_deployment_target": "iOS18",
               "compute_precision": req.precision, "delegation": delegation_report(edge)}
    req.progress("serializing the program")
    with step(fmt, "serializing the .pte", "check free disk space"):
        (req.out_dir / PROGRAM).write_bytes(edge.to_executorch().buffer)
    return Artifacts({STREAM_METHOD: {"file": PROGRAM, "entry": STREAM_METHOD}}, details)
