"""edge-jepa: V-JEPA 2 video world models on phones, Jetsons and laptops.

    import edge_jepa
    result = edge_jepa.surprise_scores("default", frames)   # frames [T, H, W, 3] uint8 RGB

Verbs: load, create, save, preprocess, surprise_scores (SurpriseScorer for streams), pretrain, fit, distill,
export, watch, bench.

The names below are imported on first use (module `__getattr__`), so `import edge_jepa` and `edge-jepa --help`
do not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> "module:attribute" (imported on first access); "module:" is a module that is also its verb
# (callable: see edge_jepa._verbs), because a submodule's name cannot stay bound to a function
_LAZY = {
    "CONFIGS": "edge_jepa.models.config:CONFIGS",
    "ModelConfig": "edge_jepa.models.config:ModelConfig",
    "get_config": "edge_jepa.models.config:get_config",
    "CheckpointError": "edge_jepa.checkpoints:CheckpointError",
    "load": "edge_jepa.checkpoints:load",
    "VJEPA2": "edge_jepa.models.vjepa2:VJEPA2",
    "create": "edge_jepa.models.vjepa2:create",
    "save": "edge_jepa.models.vjepa2:save",
    "preprocess": "edge_jepa.preprocess:",
    "SurpriseResult": "edge_jepa.surprise:SurpriseResult",
    "SurpriseScorer": "edge_jepa.surprise:SurpriseScorer",
    "surprise_scores": "edge_jepa.surprise:surprise_scores",
    # the verbs behind the commands (each takes progress callbacks; the CLI only parses and prints)
    "pretrain": "edge_jepa.train.api:pretrain",
    "fit": "edge_jepa.train.api:fit",
    "distill": "edge_jepa.distill:",  # edge_jepa.distill(teacher, student, data, out_dir, cfg)
    "export": "edge_jepa.export:",  # edge_jepa.export(model, format, quant, out=...)
    "watch": "edge_jepa.stream.watcher:watch",
    "bench": "edge_jepa.bench:",  # edge_jepa.bench(sources, options, reporter)
}

__all__ = ["CONFIGS", "VJEPA2", "CheckpointError", "ModelConfig", "SurpriseResult", "SurpriseScorer", "bench",
           "create", "distill", "export", "fit", "get_config", "load", "preprocess", "pretrain", "save",
           "surprise_scores", "watch", "__version__"]

if TYPE_CHECKING:
    from edge_jepa.checkpoints import CheckpointError, load
    from edge_jepa.models.config import CONFIGS, ModelConfig, get_config
    from edge_jepa.models.vjepa2 import VJEPA2, create, save
    from edge_jepa.preprocess import preprocess
    from edge_jepa.stream.watcher import watch
    from edge_jepa.surprise import SurpriseResult, SurpriseScorer, surprise_scores
    from edge_jepa.train.api import fit, pretrain


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'edge_jepa' has no attribute {name!r}")
    module, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module), attr) if attr else importlib.import_module(module)
    globals()[name] = value  # later accesses skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
