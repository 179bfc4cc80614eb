"""Distillation losses: what the student is asked to copy from the teacher.

- feature: the student's window tokens, through a learned projection to the teacher width, against the
  teacher's tokens aligned onto the student grid (L1 and/or 1 - cosine per token);
- predictor: the student predictor's outputs at the target tokens (student context, same mask as the
  teacher), through a second projection, against the teacher predictor's aligned outputs (L1);
- surprise: the student's per-token surprise |pred - LayerNorm(window)| (exactly what scoring computes)
  against the teacher's, token by token (L1): the behaviour the student is distilled for;
- jepa (optional): the student's own V-JEPA loss, its predictor against its (stop-gradient, LayerNorm-ed)
  window tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edge_jepa.models.vjepa2 import VJEPA2
from edge_jepa.runtime.base import StepOutput
from edge_jepa.surprise import step_errors

LOSS_NAMES = ("feature_l1", "feature_cos", "predictor", "surprise", "jepa")


@dataclass(frozen=True)
class LossWeights:
    feature_l1: float = 1.0
    feature_cos: float = 1.0
    predictor: float = 1.0
    surprise: float = 1.0
    jepa: float = 0.0

    def __post_init__(self) -> None:
        bad = {k: v for k, v in self.as_dict().items() if not v >= 0}
        if bad:
            raise ValueError(f"loss weights must be >= 0, got {bad}")
        if not any(self.as_dict().values()):
            raise ValueError("all loss weights are 0: nothing to train")

    def as_dict(self) -> dict[str, float]:
        return {k: float(getattr(self, k)) for k in LOSS_NAMES}


@dataclass
class StudentOutputs:
    window: Tensor  # [B, Ns, Ds] the student's tokens of the whole clip
    predicted: Tensor  # [B, Nt, Ds] its predictor at the target tokens
    window_proj: Tensor  # [B, Ns, Dt] window through the feature projection
    predicted_proj: Tensor  # [B, Nt, Dt] predicted through the predictor projection


class StudentWithHeads(nn.Module):
    """The student and its two projections to the teacher width: one module, so DDP syncs all gradients."""

    def __init__(self, student: VJEPA2, teacher_width: int, seed: int = 0):
        super().__init__()
        self.student = student
        width = student.config.encoder.width
        with torch.random.fork_rng(devices=[]):  # seeded: the same run always starts from the same heads
            torch.manual_seed(seed)
            self.feature_proj = nn.Linear(width, teacher_width)
            self.predictor_proj = nn.Linear(width, teacher_width)

    def forward(self, clip: Tensor, ctx: Tensor, tgt: Tensor, mask_index: int) -> StudentOutputs:
        B = clip.shape[0]
        window = self.student.encoder(clip)  # [B, Ns, Ds]
        context = self.student.encoder(clip, keep=ctx)  # the context tokens alone, as in training and scoring
        grid = self.student.encoder.grid(clip.shape)
        predicted = self.student.predictor(context, ctx.expand(B, -1), tgt.expand(B, -1), grid=grid[1:],
                                           mask_index=mask_index)
        return StudentOutputs(window, predicted, self.feature_proj(window), self.predictor_proj(predicted))


def token_surprise(window: Tensor, predicted: Tensor, tgt: Tensor) -> Tensor:
    """Per-token surprise [B, Nt], the scorer's own formula (edge_jepa.surprise.step_errors)."""
    return step_errors(StepOutput(window[:, :0], window, predicted), tgt)


def cosine(a: Tensor, b: Tensor) -> Tensor:
    """Per-token cosine similarity [B, N]."""
    return F.cosine_similarity(a, b, dim=-1, eps=1e-6)


def distill_losses(out: StudentOutputs, tgt: Tensor, teacher_tokens: Tensor, teacher_pred: Tensor,
                   teacher_surprise: Tensor, weights: LossWeights) -> tuple[Tensor, dict[str, float]]:
    """Weighted total and each term (unweighted, for logging). Zero-weight terms are not computed."""
    parts: dict[str, Tensor] = {}
    w = weights.as_dict()
    if w["feature_l1"]:
        parts["feature_l1"] = (out.window_proj - teacher_tokens).abs().mean()
    if w["feature_cos"]:
        parts["feature_cos"] = 1.0 - cosine(out.window_proj, teacher_tokens).mean()
    if w["predictor"]:
        parts["predictor"] = (out.predicted_proj - teacher_pred).abs().mean()
    if w["surprise"]:
        parts["surprise"] = (token_surprise(out.window, out.predicted, tgt) - teacher_surprise).abs().mean()
    if w["jepa"]:
        target = F.layer_norm(out.window.detach(), out.window.shape[-1:])[:, tgt]
        parts["jepa"] = (out.predicted - target).abs().mean()
    total = torch.stack([w[k] * v for k, v in parts.items()]).sum()
    return total, {k: float(v.detach()) for k, v in parts.items()}

