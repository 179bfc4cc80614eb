"""Fidelity report: how much of the teacher the student kept (written at each checkpoint and at the end).

- token cosine: the student's window tokens (through the learned feature projection) against the teacher's
  aligned tokens, per token, on held-out plain synthetic clips (seeds TOKEN_SEED_BASE + i, never trained on);
- surprise rank correlation: Spearman between teacher and student surprise, over every scored window of the
  held-out violation pairs (windows covering the same time span) and over clip scores (max over windows);
- surprise AUROC of the teacher and of the student on the held-out violation-of-expectation pairs
  (`edge_jepa.evaluation`: seeds from EVAL_SEED_BASE), and their ratio;
- parameters and GFLOPs (one surprise step on each model's own clip) of both.
The teacher is scored once on its distillation view (the clip it sees during training); the student on the
same scenes, every `stride`-th frame at its own size.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import asdict

import numpy as np
import torch
from rich.table import Table

from edge_jepa.data.synthetic import VIOLATIONS, SyntheticClip, WorldConfig, eval_set, generate_clip
from edge_jepa.distill.align import Alignment
from edge_jepa.distill.losses import StudentWithHeads, cosine
from edge_jepa.evaluation import EVAL_SEED_BASE, PairScores, spearman, summarize
from edge_jepa.models.vjepa2 import VJEPA2
from edge_jepa.preprocess import clip_tensor, resize_frame
from edge_jepa.surprise import surprise_scores

TOKEN_SEED_BASE = EVAL_SEED_BASE + 50_000_000  # held-out plain clips for token cosine (disjoint from the pairs)


def teacher_on_view(teacher: VJEPA2, alignment: Alignment) -> VJEPA2:
    """The teacher's weights under the config of its distillation view (same weights, other clip)."""
    return teacher.at_clip(**asdict(alignment.teacher_clip)).eval()


class StudentReport(ABC):
    """`report(heads, step)`: the subclass's `_report` with the student in eval mode (its mode restored after)."""

    @torch.no_grad()
    def report(self, heads: torch.nn.Module, step: int | None = None) -> dict:
        was_training = heads.training
        heads.eval()
        try:
            return self._report(heads, step)
        finally:
            heads.train(was_training)

    @abstractmethod
    def _report(self, heads, step: int | None) -> dict:
        """The report of the student in `heads` (in eval mode) at `step`."""


class FidelityReporter(StudentReport):
    """Scores the teacher once; `report(student_heads)` measures a student against it."""

    def __init__(self, teacher: VJEPA2, alignment: Alignment, *, pairs_per_type: int = 20, token_clips: int = 16,
                 batch_size: int = 8):
        if pairs_per_type < 1 or token_clips < 1:
            raise ValueError(f"the fidelity report needs >= 1 pair per type and >= 1 clip, got {pairs_per_type}, "
                             f"{token_clips}")
        self.alignment, self.batch_size = alignment, batch_size
        self.teacher = teacher_on_view(teacher, alignment)
        tc, k = alignment.teacher_clip, alignment.stride
        frames_per_window = alignment.student_clip.frames
        self.world = WorldConfig(size=max(32, tc.size), num_frames=(frames_per_window * 2 + 4) * k, fps=tc.fps,
                                 violation_margin=frames_per_window * k)
        self.pairs: list[tuple[SyntheticClip, SyntheticClip]] = eval_set(
            range(EVAL_SEED_BASE, EVAL_SEED_BASE + pairs_per_type * len(VIOLATIONS)), self.world, VIOLATIONS)
        token_world = WorldConfig(size=max(32, tc.size), num_frames=tc.frames, fps=tc.fps)
        self.token_clips = np.stack([
            np.stack([_fit(f, tc.size) for f in generate_clip(TOKEN_SEED_BASE + i, token_world).frames])
            for i in range(token_clips)])
        self._teacher_pairs: list[PairScores] | None = None
        self._teacher_tokens: torch.Tensor | None = None

    # ------------------------------------------------------------------ teacher (once)
    def teacher_pairs(self) -> list[PairScores]:
        if self._teacher_pairs is None:
            self._teacher_pairs = [PairScores(v.violation, int(v.violation_frame),
                                              surprise_scores(self.teacher, p.frames),
                                              surprise_scores(self.teacher, v.frames)) for p, v in self.pairs]
        return self._teacher_pairs

    @torch.no_grad()
    def teacher_tokens(self) -> torch.Tensor:
        if self._teacher_tokens is None:
            size = self.alignment.teacher_clip.size
            parts = [self.alignment.tokens(self.teacher.encoder(clip_tensor(c, size, "resize")))
                     for c in _chunks(self.token_clips, self.batch_size)]
            self._teacher_tokens = torch.cat(parts)
        return self._teacher_tokens

    # ------------------------------------------------------------------ student
    def _report(self, heads: StudentWithHeads, step: int | None) -> dict:
        a, k = self.alignment, self.alignment.stride
        student = heads.student
        device = next(heads.parameters()).device
        views = a.student_view(self.token_clips)
        proj = torch.cat([heads.feature_proj(student.encoder(clip_tensor(c, a.student_clip.size, "resize")
                                                             .to(device))).cpu()
                          for c in _chunks(views, self.batch_size)])
        token_cos = float(cosine(proj, self.teacher_tokens()).mean())

        cpu_student = student if device.type == "cpu" else cpu_copy(student)
        t_pairs = self.teacher_pairs()
        s_pairs = [PairScores(v.violation, int(v.violation_frame) // k,
                              surprise_scores(cpu_student, p.frames[::k]), surprise_scores(cpu_student, v.frames[::k]))
                   for p, v in self.pairs]
        tol = a.student_clip.frames - a.student_clip.context_frames
        t_sum, s_sum = summarize(t_pairs, tol * k)["overall"], summarize(s_pairs, tol)["overall"]

        def windows(scores: list[PairScores], stride: int) -> np.ndarray:
            return np.concatenate([np.r_[x.plausible[stride - 1 :: stride], x.violating[stride - 1 :: stride]]
                                   for x in scores])

        def clip_scores(scores: list[PairScores]) -> np.ndarray:
            return np.array([np.nanmax(s) for x in scores for s in (x.plausible, x.violating)])

        t_flops = self.teacher.flops().total / 1e9
        s_flops = student.flops().total / 1e9
        ratio = s_sum["auroc"] / t_sum["auroc"] if t_sum["auroc"] > 0 else math.nan
        return {
            "step": step,
            "token_cosine": token_cos,
            "surprise_spearman_windows": spearman(windows(t_pairs, k), windows(s_pairs, 1)),
            "surprise_spearman_clips": spearman(clip_scores(t_pairs), clip_scores(s_pairs)),
            "teacher_auroc": t_sum["auroc"],
            "student_auroc": s_sum["auroc"],
            "auroc_ratio": ratio,
            "teacher_pairwise": t_sum["pairwise"],
            "student_pairwise": s_sum["pairwise"],
            "pairs": len(self.pairs),
            "token_clips": len(self.token_clips),
            "teacher": {"name": self.teacher.config.name, "params": self.teacher.num_params(),
                        "encoder_params": self.teacher.num_params("encoder"),
                        "predictor_params": self.teacher.num_params("predictor"), "gflops": t_flops},
            "student": {"name": student.config.name, "params": student.num_params(),
                        "encoder_params": student.num_params("encoder"),
                        "predictor_params": student.num_params("predictor"), "gflops": s_flops},
            "param_ratio": student.num_params() / self.teacher.num_params(),
            "seeds": {"pairs": [EVAL_SEED_BASE, EVAL_SEED_BASE + len(self.pairs)],
                      "token_clips": [TOKEN_SEED_BASE, TOKEN_SEED_BASE + len(self.token_clips)]},
        }


def table(report: dict) -> Table:
    """The report as a rich table: one row per measure, teacher / student / kept."""
    if report.get("kind") == "frame_causal":
        return frame_causal_table(report)
    t, s = report["teacher"], report["student"]
    out = Table(title=f"distillation fidelity (step {report['step']})", show_lines=False)
    for col in ("measure", "teacher", "student", "student / teacher"):
        out.add_column(col, justify="left" if col == "measure" else "right")
    out.add_row("params", f"{t['params'] / 1e6:.3f} M", f"{s['params'] / 1e6:.3f} M", f"{report['param_ratio']:.3f}")
    out.add_row("GFLOPs / surprise step", f"{t['gflops']:.3f}", f"{s['gflops']:.3f}",
                f"{s['gflops'] / t['gflops']:.3f}")
    out.add_row(f"surprise AUROC ({report['pairs']} held-out pairs)", f"{report['teacher_auroc']:.3f}",
                f"{report['student_auroc']:.3f}", f"{report['auroc_ratio']:.3f}")
    out.add_row("pairwise accuracy", f"{report['teacher_pairwise']:.3f}", f"{report['student_pairwise']:.3f}", "")
    out.add_row(f"token cosine ({report['token_clips']} held-out clips)", "", "", f"{report['token_cosine']:.3f}")
    out.add_row("surprise Spearman: windows", "", "", f"{report['surprise_spearman_windows']:.3f}")
    out.add_row("surprise Spearman: clips (max)", "", "", f"{report['surprise_spearman_clips']:.3f}")
    return out


def frame_causal_table(report: dict) -> Table:
    """A frame-causal report (edge_jepa.distill.frame_causal) as a rich table, with the pixel baselines."""
    t, s = report["teacher"], report["student"]
    out = Table(title=f"frame-causal distillation fidelity (step {report['step']}, {report['fps']:g} fps, max over "
                      "tokens, rerun step)")
    for col in ("measure", "teacher", "student", "student / teacher"):
        out.add_column(col, justify="left" if col == "measure" else "right")
    out.add_row("params", f"{t['params'] / 1e6:.3f} M", f"{s['params'] / 1e6:.3f} M", f"{report['param_ratio']:.3f}")
    out.add_row("MB (fp32)", f"{t['mb_fp32']:.2f}", f"{s['mb_fp32']:.2f}", f"{s['mb_fp32'] / t['mb_fp32']:.3f}")
    for key, what in (("gflops_kv", "GFLOPs / update (kv step)"), ("gflops_rerun", "GFLOPs / update (rerun step)")):
        out.add_row(what, f"{t[key]:.4f}", f"{s[key]:.4f}", f"{s[key] / t[key]:.3f}")
    out.add_row(f"surprise AUROC ({report['pairs']} held-out pairs)", f"{report['teacher_auroc']:.3f}",
                f"{report['student_auroc']:.3f}", f"{report['auroc_ratio']:.3f}")
    out.add_row("pairwise accuracy", f"{report['teacher_pairwise']:.3f}", f"{report['student_pairwise']:.3f}", "")
    for name, b in report["baselines"].items():
        out.add_row(f"{name.replace('_', ' ')} (pixels): AUROC / pairwise", f"{b['auroc']:.3f} / {b['pairwise']:.3f}",
                    "", "")
    out.add_row(f"token cosine ({report['token_clips']} held-out clips)", "", "", f"{report['token_cosine']:.3f}")
    out.add_row("next-frame prediction cosine", "", "", f"{report['prediction_cosine']:.3f}")
    out.add_row("surprise Spearman: frames", "", "", f"{report['surprise_spearman_windows']:.3f}")
    out.add_row("surprise Spearman: clips (max)", "", "", f"{report['surprise_spearman_clips']:.3f}")
    return out


def _chunks(x: np.ndarray, n: int) -> list[np.ndarray]:
    return [x[i : i + n] for i in range(0, len(x), n)]


def _fit(frame: np.ndarray, size: int) -> np.ndarray:
    return frame if frame.shape[0] == size and frame.shape[1] == size else resize_frame(frame, size, "resize")


def cpu_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A CPU copy of a model (VJEPA2 or FrameCausalJEPA) in eval mode."""
    out = type(model)(model.config)
    out.load_state_dict({k: v.cpu() for k, v in model.state_dict().items()})
    return out.eval()
