"""THE table of export formats and the names a bundle is made of.

One row drives the exporter (edge_jepa.export), the runner that opens a bundle (edge_jepa.runtime) and the
benchmark. Each row names its exporter and runner as "module:attribute" strings, so reading the table imports
no heavy toolkit (executorch, coremltools, onnxruntime are imported only by the functions that use them) and
the runtime never imports an exporter.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PRECISIONS = ("fp32", "fp16", "int8", "int4")

# A bundle: a directory with MANIFEST and the artifacts of the three METHODS of the surprise step.
MANIFEST = "manifest.json"
BUNDLE_FORMAT_VERSION = 1  # written by this edge-jepa
SUPPORTED_BUNDLE_VERSIONS = (1,)  # read by this edge-jepa
METHODS = ("encode_context", "encode_window", "predict")
IO_NAMES = {"encode_context": ("clip", "tokens"), "encode_window": ("clip", "tokens"),
            "predict": ("context", "predicted")}  # method -> (input name, output name)

# A frame-causal model's bundle (manifest "kind": "frame_causal") has one method, the KV-cache stream step
# (edge_jepa.export.stream_step): the new frame and the predictor's caches in, tokens, prediction and caches out.
KINDS = ("window", "frame_causal")
STREAM_METHOD = "stream_step"
STREAM_INPUTS = ("frame", "k_cache", "v_cache", "cache_mask")
STREAM_OUTPUTS = ("tokens", "predicted", "log_scale", "k_cache_out", "v_cache_out", "cache_mask_out")
CACHE_MASKED = -1.0e4  # cache_mask of an empty slot (added to its attention logits; finite for quantizers)


def bundle_methods(kind: str) -> tuple[str, ...]:
    """The methods a bundle of this model kind holds."""
    return (STREAM_METHOD,) if kind == "frame_causal" else METHODS


# Verification at export and in tests: mean token cosine of every graph vs eager fp32 on real clips.
MIN_COSINE = {"fp32": 0.999, "fp16": 0.999, "int8": 0.99, "int4": 0.98}


@dataclass(frozen=True)
class Format:
    """One export format: what it writes, at which precisions, and how it is exported, run and checked."""

    name: str
    description: str
    suffix: str  # suffix of its artifacts
    precisions: tuple[str, ...]
    precision_notes: dict[str, str]  # how each precision is produced
    exporter: str  # "module:function" (see edge_jepa.export.bundle.Exporter)
    runner: str  # "module:class", a edge_jepa.runtime.base.Runner subclass
    export_modules: tuple[str, ...]  # Python packages the exporter needs
    run_modules: tuple[str, ...]  # Python packages the runner needs
    run_check: str | None = None  # "module:function" -> reason this machine cannot run the artifacts, or None
    stream_exporter: str | None = None  # "module:function" exporting a frame-causal model's stream step
    stream_precisions: tuple[str, ...] = ()  # the precisions of that export
    stream_note: str = ""  # why frame-causal models cannot use this format (when stream_exporter is None)

    def resolve(self, attr: str) -> Callable[..., Any]:
        module, _, name = getattr(self, attr).partition(":")
        return getattr(importlib.import_module(module), name)

    def missing(self, modules: tuple[str, ...]) -> list[str]:
        return [m for m in modules if importlib.util.find_spec(m) is None]

    def export_unavailable(self) -> str | None:
        """Why this format cannot be exported here (None if it can)."""
        missing = self.missing(self.export_modules)
        return f"{self.name} export needs {', '.join(missing)} (pip install {' '.join(missing)})" if missing else None

    def run_unavailable(self) -> str | None:
        """Why this machine cannot run this format's artifacts (None if it can)."""
        missing = self.missing(self.run_modules)
        if missing:
            return f"running {self.name} bundles needs {', '.join(missing)} (pip install {' '.join(missing)})"
        return self.resolve("run_check")() if self.run_check else None

    def check_precision(self, precision: str, kind: str = "window") -> None:
        if kind == "frame_causal":
            reason = self.stream_unavailable(precision)
            if reason:
                raise ValueError(reason)
        elif precision not in self.precisions:
            raise ValueError(
                f"format {self.name} supports precisions {', '.join(self.precisions)}, not {precision!r}"
            )

    def stream_unavailable(self, precision: str) -> str | None:
        """Why a frame-causal model's stream step cannot be exported to this format at `precision` (or None)."""
        if self.stream_exporter is None:
            return f"{self.name} bundles of frame-causal models are unavailable because {self.stream_note}"
        if precision not in self.stream_precisions:
            return (f"format {self.name} exports a frame-causal model's stream step at "
                    f"{', '.join(self.stream_precisions)}, not {precision!r}")
        return None


def coreml_prediction_unavailable() -> str | None:
    """CoreML models run only on macOS (coremltools has no Linux/Windows runtime)."""
    if sys.platform != "darwin":
        return f"CoreML prediction needs macOS (coremltools cannot run CoreML models on {sys.platform})"
    return None


def executorch_coreml_unavailable() -> str | None:
    """The CoreML ExecuTorch delegate runs only where the runtime registers CoreMLBackend (Apple builds)."""
    from executorch.runtime import Runtime

    if "CoreMLBackend" not in Runtime.get().backend_registry.registered_backend_names:
        return ("this ExecuTorch runtime has no CoreMLBackend (only Apple builds of ExecuTorch register it); "
                "run the .pte on macOS/iOS")
    return None


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format(
            name="executorch",
            description="ExecuTorch .pte (XNNPACK delegate): one program, methods encode_context, encode_window, "
                        "predict sharing weights",
            suffix=".pte",
            precisions=("fp32", "int8", "int4"),
            precision_notes={
                "fp32": "XNNPACK fp32, whole graph delegated",
                "int8": "PT2E int8 on every Linear (XNNPACKQuantizer): per-channel weights, dynamic per-token "
                        "activations (or static ones calibrated on real clips)",
                "int4": "torchao 8da4w: int8 dynamic per-token activations, int4 weights in groups of 32 "
                        "(int8 for the predictor's input/output projections)",
            },
            exporter="edge_jepa.export.executorch:export_xnnpack",
            runner="edge_jepa.runtime.executorch_runner:ExecuTorchRunner",
            export_modules=("executorch", "torchao"),
            run_modules=("executorch",),
            stream_exporter="edge_jepa.export.executorch:export_xnnpack_stream",
            stream_precisions=("fp32", "int8", "int4"),
        ),
        Format(
            name="executorch-coreml",
            description="ExecuTorch .pte (CoreML delegate, mlprogram) for Apple devices",
            suffix=".pte",
            precisions=("fp32", "fp16"),
            precision_notes={"fp32": "CoreML compute precision fp32", "fp16": "CoreML compute precision fp16"},
            exporter="edge_jepa.export.executorch:export_coreml_delegate",
            runner="edge_jepa.runtime.executorch_runner:ExecuTorchRunner",
            export_modules=("executorch", "coremltools"),
            run_modules=("executorch",),
            run_check="edge_jepa.formats:executorch_coreml_unavailable",
            stream_exporter="edge_jepa.export.executorch:export_coreml_delegate_stream",
            stream_precisions=("fp32", "fp16"),
        ),
        Format(
            name="onnx",
            description="ONNX (opset 18) for ONNX Runtime and TensorRT: encode_context.onnx, encode_window.onnx, "
                        "predict.onnx",
            suffix=".onnx",
            precisions=("fp32", "int8"),
            precision_notes={
                "fp32": "fp32 graph, fused LayerNorm and attention (TensorRT builds fp16/int8 engines from it)",
                "int8": "ONNX Runtime dynamic quantization: int8 per-channel weights, int8 dynamic activations",
            },
            exporter="edge_jepa.export.onnx:export_onnx",
            runner="edge_jepa.runtime.onnx_runner:OnnxRunner",
            export_modules=("onnx", "onnxscript", "onnxruntime"),
            run_modules=("onnxruntime",),
            stream_exporter="edge_jepa.export.onnx:export_onnx_stream",
            stream_precisions=("fp32", "int8"),
        ),
        Format(
            name="coreml",
            description="CoreML mlprogram: one multifunction model.mlpackage (encode_context, encode_window, "
                        "predict) sharing weights, iOS 18 / macOS 15",
            suffix=".mlpackage",
            precisions=("fp32", "fp16", "int8", "int4"),
            precision_notes={
                "fp32": "fp32 compute",
                "fp16": "fp16 compute",
                "int8": "fp16 compute, int8 per-channel symmetric linear weights (coremltools.optimize)",
                "int4": "fp16 compute, 4-bit k-means palettized weights (coremltools.optimize)",
            },
            exporter="edge_jepa.export.coreml:export_coreml",
            runner="edge_jepa.runtime.coreml_runner:CoreMLRunner",
            export_modules=("coremltools",),
            run_modules=("coremltools",),
            run_check="edge_jepa.formats:coreml_prediction_unavailable",
            stream_exporter="edge_jepa.export.coreml:export_coreml_stream",
            stream_precisions=("fp32", "fp16", "int8", "int4"),
        ),
    )
}


def get_format(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown export format {name!r}; choose one of {', '.join(FORMATS)}") from None
