"""Distillation of a frame-causal teacher (edge_jepa.models.world) into a smaller frame-causal student.

One clip [B, T, S, S, 3] at a frame rate drawn per batch (10/15/30 fps, as the world model trains) feeds both:

    teacher (no gradient): z_t = tokens of each frame alone [B, T, N, Dt]; p_t = next-frame predictions from
                           frames <= t, t = 0..T-2 [B, T-1, N, Dt]; e_t = |p_t - LayerNorm(z_t[t+1])| per token
    student:               z_s [B, T, N, Ds], p_s [B, T-1, N, Ds], e_s (the same formulas), log-scales [B, T-1, N]
    loss = feature:   L1 and 1 - cosine of Proj_f(z_s) against z_t, every token of every frame
         + predictor: L1 of Proj_p(p_s) against p_t, per token weighted by w
         + surprise:  |e_s - e_t|, per token weighted by w (the per-token errors the scorer reduces)
         + jepa (optional): the student's own next-frame L1 against LayerNorm(z_s[t+1]) (stop-gradient), weighted
         + scale: the Laplace NLL of the student's detached errors under its own predicted scale (trains only the
                  scale head, as in world training: the "nll"/"zmax" scorings need the student's own scale)
    w = change of the teacher's (LayerNorm-ed) next-frame tokens from the frame before, / its mean over the clip,
        + change_floor (detached): most tokens are static background (the world model's training weighting, but
        normalised per clip, so a rank's share of a batch is weighted as in the whole batch)

Teacher forcing, block-causal: T-1 predictions per clip, each from the true tokens of the frames before it. The
teacher and the student see the same frames at the same size (same token grid: frame-causal distillation does not
resample grids). Data parallel: rank r of N takes clips [r B/N, (r+1) B/N) of global batch `step`, so a run on
N processes trains on the same batches as one process (and ends at the same weights, up to float rounding).
The student's surprise prior is measured as the teacher's was (`edge_jepa.stream.prior.compute_prior` on the
project's plausible synthetic scenes at 10, 15 and 30 fps) and stored with OUT/student.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edge_jepa.data.synthetic import VIOLATIONS, WorldConfig, eval_set, generate_clip
from edge_jepa.distill.align import DistillError
from edge_jepa.distill.losses import LossWeights, cosine
from edge_jepa.distill.report import StudentReport, cpu_copy
from edge_jepa.distill.trainer import Distiller
from edge_jepa.evaluation import BASELINES, EVAL_SEED_BASE, PairScores, pixel_baseline_scores, spearman, summarize
from edge_jepa.models.world import DEFAULT_SCORING, FrameCausalJEPA, token_errors
from edge_jepa.preprocess import clip_tensor
from edge_jepa.surprise import surprise_scores
from edge_jepa.train.world import MultiRateSource, _Prefetch

TOKEN_SEED_BASE = EVAL_SEED_BASE + 50_000_000  # held-out plain clips for token cosine (as the window report)


def check_pair(teacher: FrameCausalJEPA, student: FrameCausalJEPA, cfg) -> None:
    """A clear DistillError when this frame-causal pair or setting cannot be distilled here."""
    t, s = teacher.config, student.config
    for what, a, b in (("patch size", t.encoder.patch_size, s.encoder.patch_size),
                       ("clip size", t.clip.size, s.clip.size), ("input channels", t.encoder.in_chans,
                                                                 s.encoder.in_chans)):
        if a != b:
            raise DistillError(f"teacher {t.name} and student {s.name} have different {what}s ({a} vs {b}); "
                               f"frame-causal distillation needs the same token grid (pick a student with {what} {a})")
    if s.clip.frames > t.clip.frames:
        raise DistillError(f"student {s.name} predicts from {s.clip.frames}-frame windows, longer than the teacher's "
                           f"{t.clip.frames}: give the student --frames {t.clip.frames} or fewer")
    window_only = {"--cache-teacher": cfg.cache_teacher, f"--frame-stride {cfg.frame_stride}": cfg.frame_stride != 1,
                   f"--teacher-size {cfg.teacher_size}": cfg.teacher_size not in (None, s.clip.size)}
    bad = [k for k, v in window_only.items() if v]
    if bad:
        raise DistillError(f"{', '.join(bad)}: window-model options; a frame-causal teacher and student see the same "
                           "frames at the same size (drop the option)")


# ---------------------------------------------------------------------------------------------- data
class RankShare:
    """Rank `rank`'s share of each global batch, as (uint8 clips [B/N, T, S, S, 3], fps). A multi-rate synthetic
    source renders only those clips; any other source (videos, mixed) is cut from the whole batch."""

    def __init__(self, source, rank: int, world: int, fps: float):
        self.source, self.rank, self.world, self.fps = source, rank, world, fps

    def batch(self, step: int, per_rank: int) -> tuple[np.ndarray, float]:
        part = range(self.rank * per_rank, (self.rank + 1) * per_rank)
        if isinstance(self.source, MultiRateSource):
            return self.source.batch(step, per_rank * self.world, part)
        out = self.source.batch(step, per_rank * self.world)
        clips, fps = out if isinstance(out, tuple) else (out, self.fps)
        return np.ascontiguousarray(clips[part.start : part.stop]), fps

    def describe(self) -> str:
        return self.source.describe()


@dataclass
class FrameBatch:
    index: int  # global batch index (= step)
    student_clip: np.ndarray  # uint8 [B, T, S, S, 3], this rank's share
    fps: float
    teacher_tokens: Tensor  # [B, T, N, Dt]
    teacher_pred: Tensor  # [B, T-1, N, Dt] predictions of frames 1..T-1
    teacher_errors: Tensor  # [B, T-1, N] per-token L1 of those predictions


class FrameBatches:
    """Each step: this rank's share of the global batch (rendered one step ahead) and the teacher on it."""

    def __init__(self, source: RankShare, teacher: FrameCausalJEPA, per_rank: int, device: torch.device):
        self.prefetch = _Prefetch(source)
        self.teacher = teacher.eval().requires_grad_(False).to(device)
        self.per_rank, self.device = per_rank, device

    @torch.no_grad()
    def get(self, step: int) -> FrameBatch:
        clips, fps = self.prefetch.get(step, self.per_rank)
        clip = self.teacher.config.clip
        x = clip_tensor(clips, clip.size, clip.preprocess).to(self.device)
        z = self.teacher.encode_frames(x)  # [B, T, N, Dt]
        pred, _ = self.teacher.predict(z[:, :-1], fps)
        return FrameBatch(step, clips, float(fps), z, pred, token_errors(pred, z[:, 1:]))

    def close(self) -> None:
        self.prefetch.close()


# ---------------------------------------------------------------------------------------------- student, losses
@dataclass
class FrameOutputs:
    tokens: Tensor  # [B, T, N, Ds]
    pred: Tensor  # [B, T-1, N, Ds] predictions of frames 1..T-1
    log_scale: Tensor  # [B, T-1, N]
    tokens_proj: Tensor  # [B, T, N, Dt]
    pred_proj: Tensor  # [B, T-1, N, Dt]


class FrameCausalHeads(nn.Module):
    """A frame-causal student and its two projections to the teacher width (one module, so DDP syncs all)."""

    def __init__(self, student: FrameCausalJEPA, teacher_width: int, seed: int = 0):
        super().__init__()
        self.student = student
        width = student.config.encoder.width
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.feature_proj = nn.Linear(width, teacher_width)
            self.predictor_proj = nn.Linear(width, teacher_width)

    def forward(self, clip: Tensor, fps: float) -> FrameOutputs:
        z = self.student.encode_frames(clip)
        pred, log_b = self.student.predict(z[:, :-1], fps)  # teacher forcing: frame t+1 from frames <= t
        return FrameOutputs(z, pred, log_b, self.feature_proj(z), self.predictor_proj(pred))


def change_weight(teacher_tokens: Tensor, floor: float | None) -> Tensor:
    """[B, T-1, N]: each next-frame token's change from the frame before, / its clip's mean, + floor (detached)."""
    if floor is None:
        return torch.ones_like(teacher_tokens[:, 1:, :, 0])
    with torch.no_grad():
        t = F.layer_norm(teacher_tokens, teacher_tokens.shape[-1:])
        change = (t[:, 1:] - t[:, :-1]).abs().mean(-1)  # [B, T-1, N]
        return change / change.mean(dim=(1, 2), keepdim=True).clamp(min=1e-6) + floor


def frame_causal_losses(out: FrameOutputs, batch: FrameBatch, weights: LossWeights, floor: float | None,
                        device: torch.device) -> tuple[Tensor, dict[str, float]]:
    """Weighted total and each term (unweighted, for logging). Zero-weight terms are not computed."""
    zt, pt, et = (x.to(device) for x in (batch.teacher_tokens, batch.teacher_pred, batch.teacher_errors))
    w = change_weight(zt, floor)
    k = weights.as_dict()
    parts: dict[str, Tensor] = {}
    if k["feature_l1"]:
        parts["feature_l1"] = (out.tokens_proj - zt).abs().mean()
    if k["feature_cos"]:
        parts["feature_cos"] = 1.0 - cosine(out.tokens_proj, zt).mean()
    if k["predictor"]:
        parts["predictor"] = ((out.pred_proj - pt).abs().mean(-1) * w).mean()
    errors = token_errors(out.pred, out.tokens[:, 1:])  # [B, T-1, N]: the student's own surprise per token
    if k["surprise"]:
        parts["surprise"] = ((errors - et).abs() * w).mean()
    if k["jepa"]:
        target = F.layer_norm(out.tokens.detach(), out.tokens.shape[-1:])[:, 1:]
        parts["jepa"] = ((out.pred - target).abs().mean(-1) * w).mean()
    total = torch.stack([k[name] * v for name, v in parts.items()]).sum()
    scale = (errors.detach() * torch.exp(-out.log_scale) + out.log_scale).mean()  # the scale head only
    parts["scale"] = scale
    return total + scale, {name: float(v.detach()) for name, v in parts.items()}


# ---------------------------------------------------------------------------------------------- the run
class FrameCausalDistiller(Distiller):
    """The window Distiller's loop, checkpoints, resume, DDP, logs and card around the frame-causal objective."""

    def __init__(self, teacher: FrameCausalJEPA, student: FrameCausalJEPA, source, out_dir, cfg, *, ctx=None,
                 base_card=None):
        check_pair(teacher, student, cfg)
        super().__init__(teacher, student, source, out_dir, cfg, ctx=ctx, base_card=base_card)
        self.base_card.setdefault("distillation", {})["frame_rates"] = (
            list(source.rates) if isinstance(source, MultiRateSource) else [student.config.clip.fps])

    def make_heads(self, student: FrameCausalJEPA) -> nn.Module:
        return FrameCausalHeads(student, self.teacher.config.encoder.width, self.cfg.seed)

    def make_batches(self, source) -> FrameBatches:
        share = RankShare(source, self.ctx.rank, self.ctx.world, self.heads.student.config.clip.fps)
        return FrameBatches(share, self.teacher, self.per_rank, self.ctx.device)

    def make_reporter(self) -> FrameCausalReporter:
        return FrameCausalReporter(self.teacher, pairs_per_type=self.cfg.report_pairs,
                                   token_clips=self.cfg.report_clips)

    def train_step(self, batches: FrameBatches) -> dict[str, float]:
        cfg, device = self.cfg, self.ctx.device
        batch = batches.get(self.step)
        self.seen.update(batch.student_clip.tobytes())
        self.seen_batches.append(batch.index)
        clip_cfg = self.heads.student.config.clip
        clip = clip_tensor(batch.student_clip, clip_cfg.size, clip_cfg.preprocess).to(device)
        out = self.model(clip, batch.fps)
        return self.optimize(*frame_causal_losses(out, batch, cfg.weights, cfg.change_floor, device))

    def run(self, on_step=None, on_cache=None, on_report=None):
        try:
            return super().run(on_step, on_cache, on_report)
        finally:
            self.live.close()

    def finish_student(self, student_dir) -> None:
        """The student's own surprise prior, measured as the teacher's (module docstring), in OUT/student."""
        from edge_jepa.stream.prior import SYNTHETIC_SEEDS, compute_prior, write_prior

        if self.cfg.prior_scenes < 1:
            return
        seeds = tuple(range(SYNTHETIC_SEEDS[0], SYNTHETIC_SEEDS[0] + self.cfg.prior_scenes))
        student = self.heads.student
        was_training = student.training
        try:
            write_prior(student_dir, compute_prior(student.eval(), seeds=seeds, seconds=self.cfg.prior_seconds))
        finally:
            student.train(was_training)


# ---------------------------------------------------------------------------------------------- fidelity report
def model_cost(model: FrameCausalJEPA) -> dict:
    f = model.flops_per_update()
    return {"name": model.config.name, "params": model.num_params(), "encoder_params": model.num_params("encoder"),
            "predictor_params": model.num_params("predictor"), "mb_fp32": model.num_params() * 4 / 1e6,
            "gflops_kv": f["kv"] / 1e9, "gflops_rerun": f["rerun"] / 1e9}


class FrameCausalReporter(StudentReport):
    """Scores the teacher (and the pixel baselines) once on the held-out pairs; `report(heads)` measures a student.

    Pairs: the window report's seed block (EVAL_SEED_BASE + i, `pairs_per_type` per violation type) rendered as
    `edge-jepa eval-surprise` renders them for the teacher (its size, 2 windows + 4 frames, at its fps), scored by
    FrameCausalScorer with its defaults (models.world.DEFAULT_SCORING, rerun step) for both models.
    """

    def __init__(self, teacher: FrameCausalJEPA, *, pairs_per_type: int = 20, token_clips: int = 16,
                 batch_size: int = 8):
        if pairs_per_type < 1 or token_clips < 1:
            raise ValueError(f"the fidelity report needs >= 1 pair per type and >= 1 clip, got {pairs_per_type}, "
                             f"{token_clips}")
        self.teacher, self.batch_size = cpu_copy(teacher), batch_size
        clip = teacher.config.clip
        self.fps = clip.fps
        self.world = WorldConfig(size=max(32, clip.size), num_frames=clip.frames * 2 + 4, fps=clip.fps,
                                 violation_margin=clip.frames)
        self.pairs = eval_set(range(EVAL_SEED_BASE, EVAL_SEED_BASE + pairs_per_type * len(VIOLATIONS)), self.world,
                              VIOLATIONS)
        token_world = WorldConfig(size=max(32, clip.size), num_frames=clip.frames, fps=clip.fps)
        self.token_clips = np.stack([generate_clip(TOKEN_SEED_BASE + i, token_world).frames
                                     for i in range(token_clips)])
        self._teacher: tuple[list[PairScores], Tensor, Tensor] | None = None

    def _scores(self, model: FrameCausalJEPA, baselines: bool = False) -> list[PairScores]:
        clip = self.teacher.config.clip
        out = []
        for p, v in self.pairs:
            extra = {k: tuple(pixel_baseline_scores(c.frames, k, size=clip.size, mode=clip.preprocess,
                                                    window=clip.frames) for c in (p, v))
                     for k in (BASELINES if baselines else ())}
            out.append(PairScores(v.violation, int(v.violation_frame), surprise_scores(model, p.frames, fps=self.fps),
                                  surprise_scores(model, v.frames, fps=self.fps), extra))
        return out

    @torch.no_grad()
    def _outputs(self, model: FrameCausalJEPA) -> tuple[Tensor, Tensor]:
        """(tokens [C, T, N, D], next-frame predictions [C, T-1, N, D]) on the held-out token clips."""
        clip = model.config.clip
        zs, ps = [], []
        for i in range(0, len(self.token_clips), self.batch_size):
            x = clip_tensor(self.token_clips[i : i + self.batch_size], clip.size, clip.preprocess)
            z = model.encode_frames(x.to(next(model.parameters()).device))
            zs.append(z.cpu())
            ps.append(model.predict(z[:, :-1], self.fps)[0].cpu())
        return torch.cat(zs), torch.cat(ps)

    def teacher_side(self) -> tuple[list[PairScores], Tensor, Tensor]:
        if self._teacher is None:
            self._teacher = (self._scores(self.teacher, baselines=True), *self._outputs(self.teacher))
        return self._teacher

    def _report(self, heads: FrameCausalHeads, step: int | None) -> dict:
        t_pairs, t_tokens, t_pred = self.teacher_side()
        student = heads.student
        device = next(heads.parameters()).device
        s_tokens, s_pred = self._outputs(student)
        with torch.no_grad():
            token_cos = float(cosine(heads.feature_proj(s_tokens.to(device)).cpu(), t_tokens).mean())
            pred_cos = float(cosine(heads.predictor_proj(s_pred.to(device)).cpu(), t_pred).mean())
        cpu_student = student if device.type == "cpu" else cpu_copy(student)
        s_pairs = self._scores(cpu_student)
        clip = self.teacher.config.clip
        tol = clip.frames - clip.context_frames
        t_sum, s_sum = summarize(t_pairs, tol), summarize(s_pairs, tol)

        def frames(scores: list[PairScores]) -> np.ndarray:
            return np.concatenate([np.r_[x.plausible, x.violating] for x in scores])

        def clip_scores(scores: list[PairScores]) -> np.ndarray:
            return np.array([np.nanmax(s) for x in scores for s in (x.plausible, x.violating)])

        baselines = {k: summarize([PairScores(p.violation, p.violation_frame, *p.baselines[k]) for p in t_pairs],
                                  tol)["overall"] for k in BASELINES}
        t, s = model_cost(self.teacher), model_cost(student)
        ta, sa = t_sum["overall"]["auroc"], s_sum["overall"]["auroc"]
        return {
            "kind": "frame_causal",
            "step": step,
            "fps": self.fps,
            "scoring": f"{DEFAULT_SCORING} over tokens, rerun step (FrameCausalScorer defaults)",
            "token_cosine": token_cos,
            "prediction_cosine": pred_cos,
            "surprise_spearman_windows": spearman(frames(t_pairs), frames(s_pairs)),
            "surprise_spearman_clips": spearman(clip_scores(t_pairs), clip_scores(s_pairs)),
            "teacher_auroc": ta,
            "student_auroc": sa,
            "auroc_ratio": sa / ta if ta > 0 else math.nan,
            "teacher_pairwise": t_sum["overall"]["pairwise"],
            "student_pairwise": s_sum["overall"]["pairwise"],
            "baselines": {k: {"auroc": v["auroc"], "pairwise": v["pairwise"]} for k, v in baselines.items()},
            "per_type_pairwise": {v: {"teacher": t_sum["per_type"][v]["pairwise"],
                                      "student": s_sum["per_type"][v]["pairwise"]} for v in t_sum["per_type"]},
            "pairs": len(self.pairs),
            "token_clips": len(self.token_clips),
            "teacher": t,
            "student": s,
            "param_ratio": s["params"] / t["params"],
            "seeds": {"pairs": [EVAL_SEED_BASE, EVAL_SEED_BASE + len(self.pairs)],
                      "token_clips": [TOKEN_SEED_BASE, TOKEN_SEED_BASE + len(self.token_clips)]},
        }

