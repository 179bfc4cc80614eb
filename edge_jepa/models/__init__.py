"""The V-JEPA 2 architecture: config, encoder, predictor, RoPE and blocks.

The configs import eagerly (no torch); the modules on first use, so reading a config does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from edge_jepa.models.config import (
    CONFIGS,
    ClipConfig,
    EncoderConfig,
    ModelConfig,
    PredictorConfig,
    get_config,
)

__all__ = ["CONFIGS", "ClipConfig", "Encoder", "EncoderConfig", "FlopCount", "ModelConfig", "Predictor",
           "PredictorConfig", "VJEPA2", "get_config", "set_op_set"]

_LAZY = {"Encoder": "encoder", "set_op_set": "layers", "Predictor": "predictor", "VJEPA2": "vjepa2",
         "FlopCount": "vjepa2"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'edge_jepa.models' has no attribute {name!r}")
    return getattr(importlib.import_module(f"edge_jepa.models.{_LAZY[name]}"), name)
