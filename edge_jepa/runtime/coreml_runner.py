"""CoreML runner (macOS): the functions of the bundle's multifunction model.mlpackage through coremltools."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from edge_jepa.runtime.bundle import BundleRunner


class CoreMLRunner(BundleRunner):
    """One MLModel per function. `compute_units`: a coremltools.ComputeUnit name ("ALL", "CPU_ONLY",
    "CPU_AND_GPU", "CPU_AND_NE"); default ALL."""

    def __init__(self, path: Any, manifest: dict[str, Any], *, compute_units: str = "ALL"):
        self._compute_units = compute_units
        super().__init__(path, manifest)

    def _load(self) -> None:
        import coremltools as ct

        units = getattr(ct.ComputeUnit, self._compute_units)
        self._models = {
            name: ct.models.MLModel(str(self.path / spec["file"]), function_name=spec["entry"], compute_units=units)
            for name, spec in self.methods.items()
        }

    def _execute(self, method: str, inputs: list[Tensor]) -> list[Tensor]:
        spec = self.methods[method]
        out = self._models[method].predict({s["name"]: x.numpy() for s, x in zip(spec["inputs"], inputs, strict=True)})
        return [torch.from_numpy(np.asarray(out[s["name"]], dtype=np.float32)) for s in spec["outputs"]]
