"""3-D rotary position embedding (RoPE) over (t, h, w), exactly as V-JEPA 2 applies it.

The head dimension is split into three equal even parts, one per axis (t, h, w); leftover dims at the
end are not rotated. Within a part of size d the release uses the frequencies
    omega_j = 10000 ** (-j / (d / 2)),  j = 0 .. d/2 - 1
*tiled* end to end (``.repeat(..., 2)``): dim i of the part uses omega_(i mod d/2), while the rotation
pairs neighbouring dims (2k, 2k+1). We keep that layout bit for bit for checkpoint compatibility.

Export-friendly form: the per-token tables `cos`, `sin` ([..., N, head_dim]) are computed once for a
token grid (or precomputed as buffers by an exporter), and the pair rotation is a constant
[head_dim, head_dim] matrix, so applying RoPE is two multiplies, one matmul and an add.
"""

from __future__ import annotations

import torch
from torch import Tensor


def axis_dim(head_dim: int) -> int:
    """Dims rotated per axis: the largest even number <= head_dim / 3."""
    return 2 * ((head_dim // 3) // 2)


def rotation_matrix(head_dim: int) -> Tensor:
    """R with (x @ R)[2k] = -x[2k+1], (x @ R)[2k+1] = x[2k]: the release's pair rotation."""
    r = torch.zeros(head_dim, head_dim)
    k = torch.arange(0, head_dim - 1, 2)
    r[k + 1, k] = -1.0
    r[k, k + 1] = 1.0
    return r


def rope_tables(t: Tensor, h: Tensor, w: Tensor, head_dim: int, *,
                relative: bool = False) -> tuple[Tensor, Tensor]:
    """cos/sin tables [..., N, head_dim] for token positions t, h, w (each [..., N], any numeric dtype).

    relative=False: the release's tiled frequencies (a rotated pair mixes two frequencies, so attention also
    sees absolute positions). relative=True: each pair (2k, 2k+1) shares omega_k, a true rotation, so q.k
    depends on position differences only (the frame-causal predictor: its KV cache re-bases positions).
    """
    d = axis_dim(head_dim)
    omega = 1.0 / 10000 ** (torch.arange(d // 2, dtype=torch.float32, device=t.device) / (d / 2))  # [d/2]
    omega = omega.repeat_interleave(2) if relative else omega.repeat(2)  # [d]
    angles = [pos.to(torch.float32).unsqueeze(-1) * omega for pos in (t, h, w)]  # 3 x [..., N, d]
    rest = head_dim - 3 * d
    cos = [a.cos() for a in angles]
    sin = [a.sin() for a in angles]
    if rest:
        cos.append(torch.ones(*t.shape, rest, device=t.device))
        sin.append(torch.zeros(*t.shape, rest, device=t.device))
    return torch.cat(cos, dim=-1), torch.cat(sin, dim=-1)


def grid_positions(index: Tensor, grid_hw: tuple[int, int]) -> tuple[Tensor, Tensor, Tensor]:
    """Flat token index (time, then row, then column) -> (t, h, w) positions on a grid of h x w patches."""
    gh, gw = grid_hw
    t = index // (gh * gw)
    rem = index - t * (gh * gw)
    h = rem // gw
    return t, h, rem - h * gw


def grid_tables(grid: tuple[int, int, int], head_dim: int, device: torch.device | None = None) -> tuple[Tensor, Tensor]:
    """cos/sin [N, head_dim] for every token of a (T', H', W') grid, in encoder token order."""
    gt, gh, gw = grid
    index = torch.arange(gt * gh * gw, device=device)
    return rope_tables(*grid_positions(index, (gh, gw)), head_dim)


def index_tables(index: Tensor, grid_hw: tuple[int, int], head_dim: int) -> tuple[Tensor, Tensor]:
    """cos/sin [B, 1, N, head_dim] for flat token indices [B, N] (broadcast over heads)."""
    cos, sin = rope_tables(*grid_positions(index, grid_hw), head_dim)
    return cos.unsqueeze(1), sin.unsqueeze(1)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor, rot: Tensor) -> Tensor:
    """x [B, heads, N, head_dim] -> rotated x; cos/sin broadcast to x, rot from `rotation_matrix`."""
    return x * cos + (x @ rot) * sin
