"""Spatio-temporal masks for V-JEPA training, as flat token indices (time, row, column order).

- future: context = the first `context_tubelets` time steps, target = the rest (the surprise layout).
- multi-block: targets are the union of a few random spatial blocks spanning every time step (a tube
  per block, as V-JEPA), context is everything else.
Each mask is used for a whole batch, so index tensors are [N] and every sample shares them.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def future_mask(grid: tuple[int, int, int], context_tubelets: int) -> tuple[Tensor, Tensor]:
    gt, gh, gw = grid
    if not 0 < context_tubelets < gt:
        raise ValueError(f"context of {context_tubelets} tubelets does not fit a grid of {gt} time steps")
    n_ctx = context_tubelets * gh * gw
    return torch.arange(n_ctx), torch.arange(n_ctx, gt * gh * gw)


def multiblock_mask(grid: tuple[int, int, int], rng: np.random.Generator, *, num_blocks: int = 4,
                    scale: tuple[float, float] = (0.1, 0.25), aspect: tuple[float, float] = (0.75, 1.5),
                    min_context: float = 0.25) -> tuple[Tensor, Tensor]:
    """Targets: union of `num_blocks` spatial blocks (each `scale` of the frame area), on every time step."""
    gt, gh, gw = grid
    hit = np.zeros((gh, gw), dtype=bool)
    for _ in range(num_blocks):
        area = rng.uniform(*scale) * gh * gw
        ar = np.exp(rng.uniform(np.log(aspect[0]), np.log(aspect[1])))
        bh = int(np.clip(round(np.sqrt(area * ar)), 1, gh))
        bw = int(np.clip(round(np.sqrt(area / ar)), 1, gw))
        top, left = rng.integers(0, gh - bh + 1), rng.integers(0, gw - bw + 1)
        candidate = hit.copy()
        candidate[top : top + bh, left : left + bw] = True
        if (~candidate).sum() >= max(1, min_context * gh * gw):
            hit = candidate
    if not hit.any():  # a grid too small for blocks: predict one cell
        hit[rng.integers(gh), rng.integers(gw)] = True
    spatial = np.broadcast_to(hit, (gt, gh, gw)).reshape(-1)
    return torch.from_numpy(np.flatnonzero(~spatial)), torch.from_numpy(np.flatnonzero(spatial))
