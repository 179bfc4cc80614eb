"""Modules that are also the verb they are named after: `edge_jepa.preprocess(frames, size)`.

Some public verbs share their name with the module that holds them (`edge_jepa.preprocess`,
`edge_jepa.export`, `edge_jepa.distill`, `edge_jepa.bench`). The package imports its names lazily, and once a
submodule is imported Python binds the package attribute to the module, so the attribute cannot reliably be
the function. Instead the module itself is callable (a ModuleType subclass, Python's supported way to give a
module behaviour): `edge_jepa.preprocess(...)` calls the verb and `edge_jepa.preprocess.resize_frame` is still
the module's attribute.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any


def callable_module(name: str, verb: Callable[..., Any]) -> None:
    """Make the module `name` callable: calling it calls `verb`."""

    class VerbModule(types.ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return verb(*args, **kwargs)

    module = sys.modules[name]
    VerbModule.__name__ = f"{verb.__name__}_module"
    module.__class__ = VerbModule
