"""The edge-jepa model directory: `model.safetensors` + `edge_jepa.json` (format, version, config) [+ card.json]."""

from __future__ import annotations

import json
import os
from pathlib import Path

from torch import nn

CONFIG_FILE = "edge_jepa.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT_VERSION = 1


def write_model_dir(model: nn.Module, path: str | os.PathLike, card: dict | None = None, *,
                    force: bool = False) -> Path:
    """Write `model` (with a `.config` ModelConfig) in the edge-jepa format, atomically. An existing `path` is
    replaced only if it is an edge-jepa model or bundle (or empty), else OutputError; `force` replaces it anyway."""
    from edge_jepa.io import atomic_dir, save_safetensors

    path = Path(path)
    with atomic_dir(path, what="model directory", force=force) as tmp:
        save_safetensors({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                         tmp / WEIGHTS_FILE)
        meta = {"format": "edge-jepa", "format_version": FORMAT_VERSION, "config": model.config.to_dict()}
        (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=2))
        if card is not None:
            (tmp / "card.json").write_text(json.dumps(card, indent=2))
    return path
