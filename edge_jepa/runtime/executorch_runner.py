"""ExecuTorch runner: the bundle's model.pte through ExecuTorch's Python runtime (XNNPACK, or CoreML on Apple)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from edge_jepa.runtime.bundle import BundleError, BundleRunner


def check_pte(path: Path) -> None:
    """BundleError unless `path` starts like an ExecuTorch program (a flatbuffer with file identifier ET + two
    digits). The runtime logs a wrong identifier as raw bytes, which aborts the interpreter when they are not
    UTF-8: this check comes first so that garbage becomes an error, not an abort."""
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8 or head[4:6] != b"ET" or not head[6:8].isdigit():
        raise BundleError(f"{path}: not an ExecuTorch program (its header is {head[4:8]!r}, expected b'ET' and a "
                          "version); the file matches its sha256 in manifest.json, so it was written damaged (or the "
                          "manifest re-hashed): re-export the bundle")


class ExecuTorchRunner(BundleRunner):
    """Loads each method of the .pte once; outputs are copied out of the runtime's planned memory."""

    def _load(self) -> None:
        from executorch.runtime import Runtime

        runtime = Runtime.get()
        programs: dict[str, Any] = {}
        self._methods: dict[str, Any] = {}
        for name, spec in self.methods.items():
            file = spec["file"]
            self._loading = file
            if file not in programs:
                check_pte(self.path / file)
                programs[file] = runtime.load_program(self.path / file)
            self._methods[name] = programs[file].load_method(spec["entry"])
        self._programs = programs

    def _execute(self, method: str, inputs: list[Tensor]) -> list[Tensor]:
        return [y.clone() for y in self._methods[method].execute(inputs)]
