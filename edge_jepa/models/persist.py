"""The edge-jepa model directory: `model.safetensors` + `edge_jepa.json` (format, version, config) [+ card.json]."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

from torch import nn

CONFIG_FILE = "edge_jepa.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT_VERSION = 1
PRIOR_KEY = "surprise_prior"  # the model's surprise prior (edge_jepa.stream.prior) inside edge_jepa.json


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


def weights_sha256(model_dir: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(Path(model_dir) / WEIGHTS_FILE, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def stored_prior(model_dir: str | os.PathLike, meta: dict | None = None) -> dict | None:
    """The surprise prior stored in a model directory's edge_jepa.json (`meta`: its parsed content), if it was
    measured with these weights; a prior of other weights is ignored with a warning."""
    path = Path(model_dir)
    try:
        meta = meta if meta is not None else json.loads((path / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return None
    record = meta.get(PRIOR_KEY) if isinstance(meta, dict) else None
    if not isinstance(record, dict):
        return None
    if record.get("weights_sha256") not in (None, weights_sha256(path)):
        warnings.warn(f"{path / CONFIG_FILE}: its surprise prior was measured with other weights (the model was "
                      "changed since): ignored; recompute it with `edge-jepa calibrate`", RuntimeWarning, stacklevel=3)
        return None
    return record
