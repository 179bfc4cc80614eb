"""Teacher/student compatibility and the explicit mapping between their clips and token grids.

One source clip feeds both models:

    teacher view: uint8 [B, Tt, St, St, 3]   Tt = stride * Ts frames at stride * fps, St px (>= Ss)
    student view: teacher view[:, ::stride] resized to Ss px  -> [B, Ts, Ss, Ss, 3]

so both see the same time span and the same field of view. With equal patch and tubelet sizes, student
tubelet j (student frames 2j, 2j+1 = teacher frames 2j*stride .. (2j+2)*stride - 1) covers exactly teacher
tubelets j*stride .. (j+1)*stride - 1, and student patch (r, c) covers the teacher patches of the same area.
Teacher tokens are brought onto the student grid explicitly, by one of:

- "pool": adaptive average pooling over (t, h, w) (an exact block mean when the teacher grid is an integer
  multiple of the student grid, overlapping windows otherwise);
- "interpolate": trilinear interpolation at the student token centres (align_corners=False).

Masks are drawn on the student grid and mapped to the teacher grid by token centre: a teacher token is a
target when its centre lies in a student target token. Values defined only on teacher targets (predictor
outputs, surprise errors) are aligned with a masked mean: align(values * m) / align(m).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from edge_jepa.models.config import ClipConfig, ModelConfig
from edge_jepa.preprocess import resize_frame

ALIGN_MODES = ("pool", "interpolate")


class DistillError(ValueError):
    """A teacher/student pair or a distillation setting that cannot work (the message says why)."""


Grid = tuple[int, int, int]


@dataclass(frozen=True)
class Alignment:
    """How one source clip feeds the teacher and the student, and how their token grids correspond."""

    teacher_clip: ClipConfig  # the clip the teacher sees during distillation (its "view")
    student_clip: ClipConfig
    stride: int  # teacher frames per student frame
    teacher_grid: Grid
    student_grid: Grid
    mode: str = "pool"

    @property
    def identity(self) -> bool:
        return self.teacher_grid == self.student_grid

    @property
    def student_context_tubelets(self) -> int:
        return self.student_clip.context_frames // (self.student_clip.frames // self.student_grid[0])

    # ------------------------------------------------------------------ clips
    def student_view(self, teacher_frames: np.ndarray) -> np.ndarray:
        """uint8 teacher view [B, Tt, St, St, 3] -> student view [B, Ts, Ss, Ss, 3] (every stride-th frame)."""
        expected = (self.teacher_clip.frames, self.teacher_clip.size, self.teacher_clip.size, 3)
        if teacher_frames.ndim != 5 or teacher_frames.shape[1:] != expected:
            raise DistillError(f"teacher view must be [B, {', '.join(map(str, expected))}], "
                               f"got {tuple(teacher_frames.shape)}")
        picked = teacher_frames[:, :: self.stride]
        size = self.student_clip.size
        if size == self.teacher_clip.size:
            return np.ascontiguousarray(picked)
        return np.stack([[resize_frame(f, size, "resize") for f in clip] for clip in picked])

    # ------------------------------------------------------------------ masks
    def teacher_mask(self, student_target: Tensor) -> tuple[Tensor, Tensor]:
        """Student target indices [Nt] -> teacher (context, target) flat indices, mapped by token centre."""
        is_target = torch.zeros(int(np.prod(self.student_grid)), dtype=torch.bool)
        is_target[student_target] = True
        owner = self._owner_index()  # [N_teacher]: the student token each teacher token centre falls in
        hit = is_target[owner]
        return torch.nonzero(~hit).flatten(), torch.nonzero(hit).flatten()

    def _owner_index(self) -> Tensor:
        axes = []
        for n_t, n_s in zip(self.teacher_grid, self.student_grid, strict=True):
            centres = (torch.arange(n_t, dtype=torch.float64) + 0.5) * n_s / n_t
            axes.append(centres.floor().long().clamp_(0, n_s - 1))
        t, h, w = torch.meshgrid(*axes, indexing="ij")
        _, gh, gw = self.student_grid
        return (t * gh * gw + h * gw + w).flatten()

    # ------------------------------------------------------------------ tokens
    def tokens(self, teacher_tokens: Tensor) -> Tensor:
        """Teacher tokens on the whole teacher grid [B, Nt, D] -> on the student grid [B, Ns, D]."""
        if self.identity:
            return teacher_tokens
        return self._resample(teacher_tokens)

    def targets(self, values: Tensor, teacher_target: Tensor, student_target: Tensor) -> Tensor:
        """Values at teacher target tokens [B, Ntt, C] -> at student target tokens [B, Nst, C] (masked mean)."""
        if self.identity:
            if not torch.equal(teacher_target, student_target):
                raise DistillError("identical grids need identical teacher and student masks")
            return values
        B, _, C = values.shape
        n_teacher = int(np.prod(self.teacher_grid))
        dense = values.new_zeros(B, n_teacher, C + 1)
        dense[:, teacher_target, :C] = values
        dense[:, teacher_target, C] = 1.0
        pooled = self._resample(dense)[:, student_target]  # [B, Nst, C + 1]
        weight = pooled[..., C:]
        if bool((weight <= 0).any()):
            raise DistillError("a student target token has no teacher target token under it (mask mapping bug)")
        return pooled[..., :C] / weight

    def _resample(self, tokens: Tensor) -> Tensor:
        B, N, D = tokens.shape
        if int(np.prod(self.teacher_grid)) != N:
            raise DistillError(f"expected {int(np.prod(self.teacher_grid))} teacher tokens (grid "
                               f"{self.teacher_grid}), got {N}")
        x = tokens.transpose(1, 2).reshape(B, D, *self.teacher_grid)
        if self.mode == "pool":
            x = F.adaptive_avg_pool3d(x, self.student_grid)
        else:
            x = F.interpolate(x, size=self.student_grid, mode="trilinear", align_corners=False)
        return x.reshape(B, D, -1).transpose(1, 2)


def plan(teacher: ModelConfig, student: ModelConfig, *, teacher_size: int | None = None, stride: int = 1,
         mode: str = "pool") -> Alignment:
    """Check that `student` can learn from `teacher` and fix how their clips and grids correspond.

    teacher_size: the teacher's frame size (default: the larger of its own clip size and the student's);
    stride: teacher frames per student frame (the teacher sees the same span at stride x the student's fps).
    """
    te, se = teacher.encoder, student.encoder
    for what, t_val, s_val in (("patch size", te.patch_size, se.patch_size),
                               ("tubelet size", te.tubelet_size, se.tubelet_size),
                               ("input channels", te.in_chans, se.in_chans)):
        if t_val != s_val:
            raise DistillError(
                f"teacher {teacher.name} and student {student.name} have incompatible {what}s: {t_val} vs "
                f"{s_val}; their tokens cover different pixels, so distillation needs the same {what} "
                f"(pick a student config with {what} {t_val})"
            )
    if mode not in ALIGN_MODES:
        raise DistillError(f"unknown alignment mode {mode!r}; choose from {', '.join(ALIGN_MODES)}")
    if stride < 1:
        raise DistillError(f"frame stride must be >= 1, got {stride}")
    sc = student.clip
    size = teacher_size if teacher_size is not None else max(teacher.clip.size, sc.size)
    if size % te.patch_size:
        raise DistillError(f"teacher size {size} is not a multiple of the patch size {te.patch_size}")
    if size < sc.size:
        raise DistillError(f"teacher size {size} px is smaller than the student's clip ({sc.size} px): the "
                           "teacher must see at least the student's resolution")
    tclip = ClipConfig(frames=sc.frames * stride, size=size, fps=sc.fps * stride,
                       context_frames=sc.context_frames * stride, preprocess=sc.preprocess)
    t = te.tubelet_size
    teacher_grid = (tclip.frames // t, size // te.patch_size, size // te.patch_size)
    student_grid = (sc.frames // t, sc.size // se.patch_size, sc.size // se.patch_size)
    return Alignment(tclip, sc, stride, teacher_grid, student_grid, mode)
