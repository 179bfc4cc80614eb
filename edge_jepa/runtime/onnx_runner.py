"""ONNX Runtime runner: the bundle's encode_context.onnx, encode_window.onnx and predict.onnx."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from edge_jepa.runtime.bundle import BundleRunner


class OnnxRunner(BundleRunner):
    """One InferenceSession per graph. `providers` picks execution providers (default: CPU), e.g.
    ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"] on a Jetson."""

    def __init__(self, path: Any, manifest: dict[str, Any], *, providers: Sequence[str | tuple] | None = None,
                 threads: int | None = None):
        self._providers = list(providers) if providers else ["CPUExecutionProvider"]
        self._threads = threads
        super().__init__(path, manifest)

    def _load(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if self._threads:
            options.intra_op_num_threads = self._threads
        self._sessions = {}
        for name, spec in self.methods.items():
            self._loading = spec["file"]
            self._sessions[name] = ort.InferenceSession(str(self.path / spec["file"]), sess_options=options,
                                                        providers=self._providers)

    def _execute(self, method: str, inputs: list[Tensor]) -> list[Tensor]:
        spec = self.methods[method]
        feed = {s["name"]: x.numpy() for s, x in zip(spec["inputs"], inputs, strict=True)}
        outputs = self._sessions[method].run([s["name"] for s in spec["outputs"]], feed)
        return [torch.from_numpy(y) for y in outputs]
