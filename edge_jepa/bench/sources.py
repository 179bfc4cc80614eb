"""What `edge-jepa bench` accepts: a model source, a registered geometry (random weights), or an export bundle."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from edge_jepa.models.config import CONFIGS
from edge_jepa.models.vjepa2 import VJEPA2
from edge_jepa.runtime.manifest import is_bundle  # noqa: F401  (re-exported: bench sources)


def is_geometry(source: str) -> bool:
    """A registered config name that is not also a path: benchmarked with random weights (seed 0).

    Latency does not depend on the weights, so the released V-JEPA 2 sizes can be measured without them."""
    return source in CONFIGS and not Path(source).exists()


def load_any(source: str) -> torch.nn.Module:
    """The fp32 eval model of a source, window or frame-causal: random weights for a registered geometry, else
    `edge_jepa.load`."""
    import edge_jepa

    model = edge_jepa.create(source, seed=0) if is_geometry(source) else edge_jepa.load(source)
    return model.float().eval().requires_grad_(False)


def load_model(source: str) -> VJEPA2:
    """The fp32 eval window model of a source (ValueError for a frame-causal one, which is timed by its stream
    step: `load_any`)."""
    model = load_any(source)
    if model.config.kind != "window":
        raise ValueError(f"{source}: a {model.config.kind} model ({model.config.name}); the bench times it through "
                         f"its bundle: edge-jepa export {source} --format executorch --quant int8 --out BUNDLE, then "
                         "edge-jepa bench BUNDLE (benchmarks/world_step_cost.py compares it with the window step)")
    return model


def describe(source: str) -> str:
    return f"{source} (random weights)" if is_geometry(source) else source


def weights_digest(model: VJEPA2) -> str:
    """Short sha256 of the config and every tensor: the cache key of bundles exported from this model."""
    h = hashlib.sha256(repr(sorted(model.config.to_dict().items())).encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]
