"""Self-supervised V-JEPA training (`edge-jepa pretrain`, `edge-jepa fit`).

    clip --(context tokens only)--> context encoder --> predictor(mask tokens at targets) --\
    clip --(all tokens)---------> EMA target encoder --> LayerNorm --> targets[target_idx] --L1--> loss

Masks alternate between "future" masks (predict the last time steps from the first ones: the surprise
layout the stream loop scores with) and multi-block tube masks. The target encoder is an exponential moving
average of the context encoder (no gradient). The saved model is the EMA encoder + the predictor.

Everything needed to continue is in one checkpoint (model, EMA, optimizer, step, RNG, loss history),
written atomically every `checkpoint_every` steps and on Ctrl-C; `resume=True` continues it exactly.
"""

from __future__ import annotations

import copy
import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

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
from edge_jepa.train.masks import future_mask, multiblock_mask


@dataclass
class PretrainConfig:
    steps: int = 3000
    batch_size: int = 32
    lr: float = 1e-3
    min_lr: float = 1e-5
    warmup: int = 200
    weight_decay: float = 0.04
    ema: tuple[float, float] = (0.99, 0.9995)  # EMA momentum, ramped linearly over training
    future_prob: float = 0.75  # share of steps that use a future mask
    grad_clip: float = 1.0
    seed: int = 0
    checkpoint_every: int = 100
    log_every: int = 10
    max_minutes: float | None = None  # stop (and save) when the time budget is spent
    threads: int | None = None
    amp: bool = False  # bfloat16 autocast of the forward passes (mixed precision; CUDA or CPU)
    extra: dict = field(default_factory=dict)  # free-form, recorded in the card (data description, ...)


@dataclass
class PretrainResult:
    model: VJEPA2
    steps_done: int
    losses: list[float]
    seconds: float
    stopped_early: bool


def _lr_at(step: int, cfg: PretrainConfig) -> float:
    return cosine_lr(step, lr=cfg.lr, min_lr=cfg.min_lr, warmup=cfg.warmup, total=cfg.steps)


def _ema_at(step: int, cfg: PretrainConfig) -> float:
    a, b = cfg.ema
    return a + (b - a) * min(1.0, step / max(1, cfg.steps))


def jepa_loss(model: VJEPA2, target_encoder: torch.nn.Module, clip: torch.Tensor, ctx: torch.Tensor,
              tgt: torch.Tensor, mask_index: int) -> torch.Tensor:
    """L1 between predicted and (LayerNorm-ed, EMA) target representations at the target tokens."""
    B = clip.shape[0]
    with torch.no_grad():
        targets = target_encoder(clip)
        targets = F.layer_norm(targets, targets.shape[-1:])[:, tgt]  # [B, Nt, D]
    context = model.encoder(clip, keep=ctx)  # [B, Nc, D]: the context tokens alone
    grid = model.encoder.grid(clip.shape)
    pred = model.predictor(context, ctx.expand(B, -1), tgt.expand(B, -1), grid=grid[1:], mask_index=mask_index)
    return (pred - targets).abs().mean()


class _Objective(torch.nn.Module):
    """A trainer's loss as a module's forward, so that DistributedDataParallel averages its gradients."""

    def __init__(self, trainer: Trainer):
        super().__init__()
        self.model = trainer.model  # the parameters DDP synchronises (the EMA target is not one of them)
        self.compute = trainer.loss

    def forward(self) -> torch.Tensor:
        return self.compute()


class Trainer:
    """One V-JEPA training run in `out_dir` (resumable), in one process or data-parallel under torchrun:
    each of the `ctx.world` ranks takes its share of every batch, DDP averages the gradients (so every rank
    holds the same weights), and rank 0 alone writes the checkpoints and the loss log."""

    def __init__(self, model: VJEPA2, source, out_dir: str | os.PathLike, cfg: PretrainConfig,
                 base_card: dict | None = None, ctx: DistContext | None = None):
        self.ctx = ctx or DistContext()
        if cfg.batch_size % self.ctx.world:
            raise ValueError(f"batch size {cfg.batch_size} does not split over {self.ctx.world} processes; "
                             f"use a multiple of {self.ctx.world}")
        self.model, self.source, self.cfg = model.to(self.ctx.device).train(), source, cfg
        self.out = Path(out_dir)
        self.target = copy.deepcopy(model.encoder).eval().requires_grad_(False)
        self.ddp: DistributedDataParallel | None = None
        if self.ctx.distributed:
            device = self.ctx.device
            self.ddp = DistributedDataParallel(_Objective(self), device_ids=[device] if device.type == "cuda" else None)
        decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "mask_tokens" not in n]
        no_decay = [p for n, p in model.named_parameters() if p.ndim < 2 or "mask_tokens" in n]
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                      {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))
        self.step = 0
        self.losses: list[float] = []
        self.seconds = 0.0
        self.base_card = base_card or {}

    # ------------------------------------------------------------------ checkpointing
    def shard(self, batch):
        """This rank's share of a batch (all of it in one process)."""
        return batch[self.ctx.rank :: self.ctx.world] if self.ctx.distributed else batch

    def save_checkpoint(self) -> Path | None:
        if not self.ctx.is_main:
            return None
        state = {
            "model": self.model.state_dict(),
            "target_encoder": self.target.state_dict(),
            "optimizer": self.opt.state_dict(),
            "config": json.dumps(self.model.config.to_dict()),
            **progress_state(self.step, self.losses, self.seconds),
        }
        return save_checkpoint(state, self.out / CHECKPOINT, step=self.step)

    def load_checkpoint(self) -> bool:
        path = self.out / CHECKPOINT
        state = read_checkpoint(path, ("config", "model", "target_encoder", "optimizer", "step", "losses",
                                       "seconds", "torch_rng"))
        if state is None:
            return False
        saved = ModelConfig.from_dict(json.loads(state["config"]))
        if saved != self.model.config:
            raise ValueError(f"{path}: checkpoint is for {saved.name}, this run builds {self.model.config.name}; "
                             "use another --out or drop --resume")
        self.model.load_state_dict(state["model"])
        self.target.load_state_dict(state["target_encoder"])
        self.opt.load_state_dict(state["optimizer"])
        self.step, self.losses, self.seconds = restore_progress(state)
        truncate_log(self.out / LOSS_LOG, self.step)
        return True

    # ------------------------------------------------------------------ training
    def _mask(self, grid: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor, int]:
        rng = np.random.default_rng([self.cfg.seed, self.step, 7])
        if rng.random() < self.cfg.future_prob:
            ct = self.model.config.clip.context_frames // self.model.config.encoder.tubelet_size
            return (*future_mask(grid, ct), 1)
        return (*multiblock_mask(grid, rng), 0)

    uses_ema = True  # the target encoder follows the online one (a trainer whose objective needs none says so)

    def loss(self) -> torch.Tensor:
        """The objective on this step's batch: V-JEPA's masked prediction (future or multi-block mask)."""
        cfg, clip_cfg = self.cfg, self.model.config.clip
        batch = self.shard(self.source.batch(self.step, cfg.batch_size))
        clip = clip_tensor(batch, clip_cfg.size, clip_cfg.preprocess).to(self.ctx.device)
        ctx, tgt, mask_index = self._mask(self.model.encoder.grid(clip.shape))
        return jepa_loss(self.model, self.target, clip, ctx, tgt, mask_index)

    def train_step(self) -> float:
        cfg = self.cfg
        for group in self.opt.param_groups:
            group["lr"] = _lr_at(self.step, cfg)
        with torch.autocast(self.ctx.device.type, dtype=torch.bfloat16, enabled=cfg.amp):
            loss = self.ddp() if self.ddp is not None else self.loss()
        loss = loss.float()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {self.step}; lower --lr or check the data")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.opt.step()
        if self.uses_ema:
            m = _ema_at(self.step, cfg)
            with torch.no_grad():
                for pt, ps in zip(self.target.parameters(), self.model.encoder.parameters(), strict=True):
                    pt.mul_(m).add_(ps.detach(), alpha=1 - m)
        self.step += 1
        return self.ctx.mean([loss.item()])[0]

    def final_model(self) -> VJEPA2:
        """The deliverable: the EMA encoder (when used) + predictor, in eval mode, on the CPU."""
        out = copy.deepcopy(self.model).cpu()
        if self.uses_ema:
            out.encoder.load_state_dict(self.target.state_dict())
        return out.eval()

    def run(self, on_step: Callable[[int, float], None] | None = None) -> PretrainResult:
        cfg = self.cfg
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        self.out.mkdir(parents=True, exist_ok=True)
        t_start = time.monotonic() - self.seconds
        log = open(self.out / LOSS_LOG, "a") if self.ctx.is_main else open(os.devnull, "w")  # noqa: SIM115
        with stop_signals() as interrupted:  # SIGTERM saves like Ctrl-C
            try:
                stopped_early = self._loop(log, t_start, interrupted, on_step)
            except KeyboardInterrupt:
                self.save_checkpoint()
                raise
            finally:
                log.close()
        self.save_checkpoint()
        return PretrainResult(self.final_model(), self.step, self.losses, self.seconds, stopped_early)

    def _loop(self, log, t_start: float, interrupted: dict[str, bool],
              on_step: Callable[[int, float], None] | None) -> bool:
        """Train to `cfg.steps`; True if the time budget stopped it first. SIGTERM raises KeyboardInterrupt."""
        cfg = self.cfg
        while self.step < cfg.steps:
            loss = self.train_step()
            self.losses.append(loss)
            self.seconds = time.monotonic() - t_start
            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                recent = float(np.mean(self.losses[-cfg.log_every:]))
                log.write(json.dumps({"step": self.step, "loss": recent, "lr": _lr_at(self.step - 1, cfg),
                                      "seconds": round(self.seconds, 1)}) + "\n")
                log.flush()
            if on_step:
                on_step(self.step, loss)
            if self.step % cfg.checkpoint_every == 0:
                self.save_checkpoint()
            stop, out_of_time = self.ctx.any(interrupted["set"], cfg.max_minutes is not None
                                             and self.seconds > cfg.max_minutes * 60)  # every rank decides alike
            if stop:
                raise KeyboardInterrupt
            if out_of_time:
                return True
        return False

    def card(self, result: PretrainResult, command: str, data: str) -> dict:
        return {
            **self.base_card,
            "training": {
                "command": command,
                "data": data,
                "config": {k: v for k, v in asdict(self.cfg).items() if k != "extra"} | self.cfg.extra,
                "steps": result.steps_done,
                "minutes": round(result.seconds / 60, 1),
                "final_loss": float(np.mean(result.losses[-50:])) if result.losses else None,
                "torch": torch.__version__,
            },
        }
