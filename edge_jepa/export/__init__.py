"""Export V-JEPA 2 models to ExecuTorch, CoreML and ONNX bundles (`edge-jepa export`).

    path = edge_jepa.export("window", "executorch", quant="int8", out="bundles/pico-int8")  # = export_bundle
    runner = edge_jepa.runtime.Runner.open(path)        # same call as the eager model
    stream = edge_jepa.export("default", "executorch", quant="int8", out="bundles/world-int8")  # frame-causal:
    scores = edge_jepa.surprise_scores(stream, frames)  # its stream step, one call per frame

The format table (edge_jepa.formats.FORMATS) drives the exporters, the runners and the benchmark.
"""

from edge_jepa._verbs import callable_module
from edge_jepa.export.bundle import ExportError, export_bundle
from edge_jepa.formats import FORMATS, MIN_COSINE, PRECISIONS, Format, get_format

__all__ = ["FORMATS", "MIN_COSINE", "PRECISIONS", "ExportError", "Format", "export_bundle", "get_format"]

callable_module(__name__, export_bundle)  # edge_jepa.export(model, format, quant, out=...) (see edge_jepa._verbs)
