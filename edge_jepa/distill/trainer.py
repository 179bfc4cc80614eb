"""The distillation loop: one process, or data-parallel under torchrun (DDP), resumable.

Each step every rank takes its own shard of the global batch (`ShardedSampler`), runs the student (and its
projections) through DDP, and the gradients are averaged across ranks, so all ranks hold identical weights.
Rank 0 alone writes the checkpoint (student + projections, optimizer, scheduler, step, torch RNG, loss
history) atomically every `checkpoint_every` steps, on SIGTERM/Ctrl-C and at the end, plus the loss log and
the fidelity report. Stop decisions (signal, time budget) are OR-ed over ranks so all ranks stop together.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from edge_jepa.distill.align import Alignment, DistillError, plan
from edge_jepa.distill.data import ClipSource, LiveBatches, ShardedSampler, TeacherCache, TeacherOracle, state_digest
from edge_jepa.distill.losses import LossWeights, StudentWithHeads, distill_losses
from edge_jepa.distill.report import FidelityReporter
from edge_jepa.io import atomic_file, strict_json
from edge_jepa.models.config import ModelConfig
from edge_jepa.models.vjepa2 import VJEPA2
from edge_jepa.preprocess import clip_tensor
from edge_jepa.train.common import (
    CHECKPOINT,
    LOSS_LOG,
    cosine_lr,
    progress_state,
    read_checkpoint,
    restore_progress,
    save_checkpoint,
    stop_signals,
    truncate_log,
)
from edge_jepa.train.dist import DistContext

REPORT = "report.json"
REPORT_LOG = "reports.jsonl"
STUDENT_DIR = "student"
CACHE_DIR = "teacher_cache"
RANKS_DIR = "ranks"


@dataclass
class DistillConfig:
    steps: int = 2000
    batch_size: int = 32  # global: split evenly over the processes
    lr: float = 1e-3
    min_lr: float = 1e-5
    warmup: int = 100
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    weights: LossWeights = field(default_factory=LossWeights)
    future_prob: float = 0.75  # share of batches with a future mask (the surprise layout); the rest multi-block
    seed: int = 0
    checkpoint_every: int = 200
    log_every: int = 10
    max_minutes: float | None = None  # stop cleanly (checkpoint, report, student) when the budget is spent
    threads: int | None = None
    cache_teacher: bool = False
    cache_batches: int = 200  # global batches in the teacher cache; training cycles over them
    cache_dir: str | None = None  # default: OUT/teacher_cache
    teacher_size: int | None = None  # teacher frame size (default: max of its clip size and the student's)
    frame_stride: int = 1  # teacher frames per student frame
    align: str = "pool"  # "pool" | "interpolate": how teacher tokens reach the student grid
    report_pairs: int = 20  # held-out violation pairs per type in the fidelity report (0: no report)
    report_clips: int = 16  # held-out clips for token cosine
    report_at_checkpoints: bool = True
    # frame-causal teacher and student (edge_jepa.distill.frame_causal)
    rates: tuple[float, ...] = (10.0, 15.0, 30.0)  # synthetic data: a frame rate drawn per batch from these
    change_floor: float | None = 0.1  # next-frame terms weighted by token change + this (None: unweighted)
    prior_scenes: int = 12  # the student's surprise prior: plausible synthetic scenes per rate (0: none)
    prior_seconds: float = 20.0  # ... each this long

    def to_dict(self) -> dict:
        d = asdict(self)
        d["weights"] = self.weights.as_dict()
        return d


@dataclass
class DistillResult:
    student: VJEPA2
    steps_done: int
    losses: list[float]
    seconds: float
    stopped_early: bool
    report: dict | None


StepCallback = Callable[[int, float, float], None]  # (step, loss, clips per second)


class Distiller:
    """One distillation run in `out_dir`: teacher -> student, resumable, single process or DDP."""

    def __init__(self, teacher: VJEPA2, student: VJEPA2, source: ClipSource, out_dir: str | os.PathLike,
                 cfg: DistillConfig, *, ctx: DistContext | None = None, base_card: dict | None = None):
        self.ctx = ctx or DistContext()
        self.cfg, self.out, self.base_card = cfg, Path(out_dir), base_card or {}
        if cfg.steps < 1 or cfg.checkpoint_every < 1 or cfg.log_every < 1:
            raise DistillError(f"steps, checkpoint_every and log_every must be >= 1, got {cfg.steps}, "
                               f"{cfg.checkpoint_every}, {cfg.log_every}")
        if cfg.batch_size % self.ctx.world:
            raise DistillError(f"batch size {cfg.batch_size} does not split over {self.ctx.world} processes; "
                               f"use a multiple of {self.ctx.world}")
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.alignment: Alignment = plan(teacher.config, student.config, teacher_size=cfg.teacher_size,
                                         stride=cfg.frame_stride, mode=cfg.align)
        self.per_rank = cfg.batch_size // self.ctx.world
        self.source = source
        self.teacher = teacher.eval()
        self.teacher_sha256 = state_digest(teacher)
        device = self.ctx.device
        self.heads = self.make_heads(student).to(device).train()
        w = cfg.weights
        unused = (w.feature_l1 == 0 and w.feature_cos == 0) or w.predictor == 0
        self.model: torch.nn.Module = self.heads
        if self.ctx.distributed:
            self.model = DistributedDataParallel(self.heads, device_ids=[device] if device.type == "cuda" else None,
                                                 find_unused_parameters=unused)
        named = list(self.heads.named_parameters())
        decay = [p for n, p in named if p.ndim >= 2 and "mask_tokens" not in n]
        no_decay = [p for n, p in named if p.ndim < 2 or "mask_tokens" in n]
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                      {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, self._lr_factor)
        self.sampler = ShardedSampler(self.ctx.rank, self.ctx.world)
        self.live = self.make_batches(source)
        self.cache: TeacherCache | None = None
        if cfg.cache_teacher:
            self.cache = TeacherCache(Path(cfg.cache_dir) if cfg.cache_dir else self.out / CACHE_DIR,
                                      cfg.cache_batches, self._cache_meta(source), self.sampler)
        self.step = 0
        self.losses: list[float] = []  # total loss of each step (mean over ranks)
        self.parts: list[list[float]] = []  # each step's loss terms, in `self.part_names` order
        self.part_names: list[str] = []
        self.seconds = 0.0
        self.seen = hashlib.sha256()  # digest of the clips this rank trained on (proves disjoint shards)
        self.seen_batches: list[int] = []
        self.reporter: FidelityReporter | None = None
        self.last_report: dict | None = None

    # ------------------------------------------------------------------ what a kind of model changes
    def make_heads(self, student: VJEPA2) -> torch.nn.Module:
        """The student and its projections to the teacher width (one module: DDP syncs all of it)."""
        return StudentWithHeads(student, self.teacher.config.encoder.width, self.cfg.seed)

    def make_batches(self, source: ClipSource) -> LiveBatches:
        return LiveBatches(source, TeacherOracle(self.teacher, self.alignment, self.ctx.device),
                           per_rank=self.per_rank, seed=self.cfg.seed, future_prob=self.cfg.future_prob,
                           sampler=self.sampler)

    def make_reporter(self) -> FidelityReporter:
        return FidelityReporter(self.teacher, self.alignment, pairs_per_type=self.cfg.report_pairs,
                                token_clips=self.cfg.report_clips)

    def finish_student(self, student_dir: Path) -> None:
        """After OUT/student is written (rank 0): nothing more for a window student."""

    # ------------------------------------------------------------------ schedule, cache identity
    def _lr_factor(self, step: int) -> float:
        c = self.cfg
        return cosine_lr(step, lr=c.lr, min_lr=c.min_lr, warmup=c.warmup, total=c.steps) / c.lr

    def _cache_meta(self, source: ClipSource) -> dict:
        a = self.alignment
        return {"teacher_sha256": self.teacher_sha256, "teacher_view": asdict(a.teacher_clip),
                "student_clip": asdict(a.student_clip), "stride": a.stride, "align": a.mode,
                "per_rank_batch": self.per_rank, "seed": self.cfg.seed, "future_prob": self.cfg.future_prob,
                "data": source.describe()}

    # ------------------------------------------------------------------ checkpointing
    def _state(self) -> dict:
        return {
            "heads": self.heads.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            **progress_state(self.step, self.losses, self.seconds),
            "loss_parts": torch.tensor(self.parts, dtype=torch.float64).reshape(len(self.parts), -1),
            "loss_part_names": json.dumps(self.part_names),
            "student_config": json.dumps(self.heads.student.config.to_dict()),
            "teacher_sha256": self.teacher_sha256,
            "world_size": self.ctx.world,
            "distill_config": json.dumps(self.cfg.to_dict()),
        }

    def save_checkpoint(self) -> Path:
        """Write OUT/checkpoint.pt atomically (rank 0); on failure the previous checkpoint stays as it was."""
        return save_checkpoint(self._state(), self.out / CHECKPOINT, step=self.step)

    def load_checkpoint(self) -> bool:
        """Continue OUT/checkpoint.pt if it exists (all ranks read it); False if there is none."""
        path = self.out / CHECKPOINT
        state = read_checkpoint(path, ("student_config", "teacher_sha256", "world_size", "heads", "optimizer",
                                       "scheduler", "step"))
        if state is None:
            return False
        saved = ModelConfig.from_dict(json.loads(state["student_config"]))
        if saved != self.heads.student.config:
            raise DistillError(f"{path}: checkpoint is for student {saved.name} {saved.clip}, this run builds "
                               f"{self.heads.student.config.name} {self.heads.student.config.clip}; use another "
                               "--out or drop --resume")
        if state["teacher_sha256"] != self.teacher_sha256:
            raise DistillError(f"{path}: checkpoint was distilled from another teacher (weights sha256 "
                               f"{state['teacher_sha256'][:12]}, this teacher {self.teacher_sha256[:12]})")
        if int(state["world_size"]) != self.ctx.world:
            raise DistillError(f"{path}: checkpoint was written by {int(state['world_size'])} process(es); resume "
                               f"with the same number (now {self.ctx.world}) so each rank continues its data shard")
        self.heads.load_state_dict(state["heads"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.step, self.losses, self.seconds = restore_progress(state)
        self.parts = state["loss_parts"].tolist()
        self.part_names = json.loads(state["loss_part_names"])
        if self.ctx.is_main:
            truncate_log(self.out / LOSS_LOG, self.step)
            truncate_log(self.out / REPORT_LOG, self.step)
        return True

    # ------------------------------------------------------------------ training
    def train_step(self, batches: LiveBatches | TeacherCache) -> dict[str, float]:
        cfg, device = self.cfg, self.ctx.device
        batch = batches.get(self.step)
        self.seen.update(batch.student_clip.tobytes())
        self.seen_batches.append(batch.index)
        clip = clip_tensor(batch.student_clip, self.alignment.student_clip.size, "resize").to(device)
        tgt = batch.tgt.to(device)
        out = self.model(clip, batch.ctx.to(device), tgt, batch.mask_index)
        return self.optimize(*distill_losses(out, tgt, batch.teacher_tokens.to(device), batch.teacher_pred.to(device),
                                             batch.teacher_surprise.to(device), cfg.weights))

    def optimize(self, total: torch.Tensor, parts: dict[str, float]) -> dict[str, float]:
        """One optimizer step on the total loss (DDP averages the gradients); {"loss": total, **parts}."""
        if not torch.isfinite(total):
            raise FloatingPointError(f"loss became {total.item()} at step {self.step}; lower --lr or check the data")
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(self.heads.parameters(), self.cfg.grad_clip)
        self.opt.step()
        self.sched.step()
        self.step += 1
        return {"loss": float(total.detach()), **parts}

    def prepare_batches(self, interrupted: dict[str, bool],
                        on_cache: Callable[[int, int], None] | None = None) -> LiveBatches | TeacherCache:
        """Live batches, or the teacher cache (built first: each rank writes its share of the shards)."""
        if self.cache is None:
            return self.live
        if self.ctx.is_main:
            self.cache.check_or_write_meta()
        self.ctx.barrier()
        if not self.ctx.is_main:
            self.cache.check_or_write_meta()  # now only checks

        def shard_done(done: int, total: int) -> None:
            if interrupted["set"]:
                raise KeyboardInterrupt
            if on_cache:
                on_cache(done, total)

        self.cache.build(self.live, shard_done)
        self.ctx.barrier()
        return self.cache

    def report(self) -> dict | None:
        """Fidelity report now (rank 0): OUT/report.json (latest) and a line in OUT/reports.jsonl."""
        if not self.ctx.is_main or self.cfg.report_pairs < 1:
            return None
        if self.reporter is None:
            self.reporter = self.make_reporter()
        rep = self.reporter.report(self.heads, self.step)
        with atomic_file(self.out / REPORT) as tmp:
            tmp.write_text(strict_json(rep))
        with open(self.out / REPORT_LOG, "a") as f:
            f.write(json.dumps(rep) + "\n")
        self.last_report = rep
        return rep

    def run(self, on_step: StepCallback | None = None, on_cache: Callable[[int, int], None] | None = None,
            on_report: Callable[[dict], None] | None = None) -> DistillResult:
        """Distil to `cfg.steps` (or the time budget). Ctrl-C/SIGTERM: checkpoint, then KeyboardInterrupt."""
        if self.ctx.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        self.ctx.barrier()
        t_start = time.monotonic() - self.seconds
        with stop_signals((signal.SIGTERM, signal.SIGINT)) as interrupted:
            batches = self.prepare_batches(interrupted, on_cache)
            log = open(self.out / LOSS_LOG, "a") if self.ctx.is_main else None  # noqa: SIM115 - closed below
            try:
                stopped_early = self._loop(batches, log, t_start, interrupted, on_step, on_report)
            finally:
                if log is not None:
                    log.close()
        self.seconds = time.monotonic() - t_start
        report = None
        if self.ctx.is_main:
            self.save_checkpoint()
            report = self.report()
            if report and on_report:
                on_report(report)
            card = self.card(report, stopped_early)
            self.heads.student.save(self.out / STUDENT_DIR, card=card)
            self.finish_student(self.out / STUDENT_DIR)
        self.write_rank_digest()
        self.ctx.barrier()
        student = type(self.heads.student)(self.heads.student.config)
        student.load_state_dict({k: v.cpu() for k, v in self.heads.student.state_dict().items()})
        return DistillResult(student.eval(), self.step, self.losses, self.seconds, stopped_early, report)

    def _loop(self, batches: LiveBatches | TeacherCache, log, t_start: float, interrupted: dict[str, bool],
              on_step: StepCallback | None, on_report: Callable[[dict], None] | None) -> bool:
        cfg = self.cfg
        t_last = time.monotonic()
        while self.step < cfg.steps:
            parts = self.train_step(batches)
            self.part_names = list(parts)
            values = self.ctx.mean(list(parts.values()))
            self.losses.append(values[0])
            self.parts.append(values)
            now = time.monotonic()
            self.seconds = now - t_start
            clips_per_s = cfg.batch_size / max(1e-9, now - t_last)
            t_last = now
            if log is not None and (self.step % cfg.log_every == 0 or self.step == cfg.steps):
                means = np.mean(self.parts[-cfg.log_every:], axis=0).tolist()
                log.write(json.dumps({"step": self.step, **dict(zip(self.part_names, means, strict=True)),
                                      "lr": self.sched.get_last_lr()[0], "seconds": round(self.seconds, 1)}) + "\n")
                log.flush()
            if on_step:
                on_step(self.step, values[0], clips_per_s)
            over = cfg.max_minutes is not None and self.seconds > cfg.max_minutes * 60
            stop, over = self.ctx.any(interrupted["set"], over)
            if self.ctx.is_main and (stop or (self.step % cfg.checkpoint_every == 0 and self.step < cfg.steps)):
                self.save_checkpoint()
                if not stop and cfg.report_at_checkpoints:
                    rep = self.report()
                    if rep and on_report:
                        on_report(rep)
            if stop:
                raise KeyboardInterrupt
            if over:
                return True
        return False

    # ------------------------------------------------------------------ outputs
    def card(self, report: dict | None, stopped_early: bool) -> dict:
        a = self.alignment
        return {
            **self.base_card,
            "distillation": {
                **self.base_card.get("distillation", {}),
                "teacher": self.teacher.config.name,
                "teacher_sha256": self.teacher_sha256,
                "teacher_view": asdict(a.teacher_clip),
                "alignment": {"mode": a.mode, "stride": a.stride, "teacher_grid": list(a.teacher_grid),
                              "student_grid": list(a.student_grid)},
                "config": self.cfg.to_dict(),
                "steps": self.step,
                "minutes": round(self.seconds / 60, 2),
                "stopped_by_time_budget": stopped_early,
                "processes": self.ctx.world,
                "final_loss": float(np.mean(self.losses[-50:])) if self.losses else None,
                "fidelity": report,
                "torch": torch.__version__,
            },
        }

    def write_rank_digest(self) -> Path:
        """OUT/ranks/rank<r>.json: this rank's final student digest and the data it saw (DDP consistency)."""
        path = self.out / RANKS_DIR / f"rank{self.ctx.rank}.json"
        info = {"rank": self.ctx.rank, "world_size": self.ctx.world, "step": self.step,
                "student_sha256": state_digest(self.heads.student), "data_sha256": self.seen.hexdigest(),
                "first_batches": self.seen_batches[:8]}
        with atomic_file(path) as tmp:
            tmp.write_text(json.dumps(info, indent=2))
        return path
