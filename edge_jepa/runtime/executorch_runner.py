"""ExecuTorch runner: the bundle's model.pte through ExecuTorch's Python runtime (XNNPACK, or CoreML on Apple)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from edge_jepa.runtime.bundle import BundleRunner


class ExecuTorchRunner(BundleRunner):
    """Loads each method of the .pte once; outputs are copied out of the runtime's planned memory."""

    def _load(self) -> None:
        from executorch.runtime import Runtime

        runtime = Runtime.get()
        programs: dict[str, Any] = {}
        self._methods: dict[str, Any] = {}
        for name, spec in self.methods.items():
            file = spec["file"]
            if file not in programs:
                programs[file] = runtime.load_program(self.path / file)
            self._methods[name] = programs[file].load_method(spec["entry"])
        self._programs = programs

    def _execute(self, method: str, inputs: list[Tensor]) -> list[Tensor]:
        return [y.clone() for y in self._methods[method].execute(inputs)]
