"""Training the frame-causal world model (`edge-jepa pretrain --model world_pico`).

    clip [B, 3, T, H, W] at a frame rate drawn per batch from `rates`
      online encoder, each frame alone -> z [B, T, N, D] -> causal predictor -> pred of frames 1..T-1
      EMA encoder, each frame alone    -> LayerNorm -> targets [B, T, N, D]          (no gradient)
      loss = mean_t,n  w[t, n] * |pred[t] - target[t+1]|_1                     (teacher forcing: T-1 targets)
           + rollout: feed predictions back for k steps and score them the same way           (optional)
           + Laplace NLL of the detached errors under the predicted scale                (trains the scale head)
           + SIGReg on the online tokens, which then replace the EMA targets              (optional, LeJEPA)
    w = change of the target token from the previous frame / its batch mean + `change_floor` (detached):
    most tokens are static background, and an unweighted loss spends its gradient there.

The data come from the synthetic world (`edge_jepa.data.synthetic`), rendered by a background thread one
batch ahead of the model. Checkpointing, resume, logging and stop signals are the window trainer's.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from edge_jepa.data.synthetic import WorldConfig, generate_clip
from edge_jepa.models.config import ClipConfig
from edge_jepa.models.world import FrameCausalJEPA
from edge_jepa.preprocess import clip_tensor
from edge_jepa.train.dist import DistContext
from edge_jepa.train.pretrain import PretrainConfig, Trainer

DEFAULT_RATES = (10.0, 15.0, 30.0)


@dataclass(frozen=True)
class WorldLoss:
    change_floor: float | None = 0.1  # None: plain (unweighted) L1
    rollout: int = 0  # extra autoregressive steps scored per clip (0: teacher forcing only)
    sigreg: float = 0.0  # > 0: SIGReg weight, online targets instead of the EMA encoder
    sigreg_slices: int = 64


@dataclass(frozen=True)
class WorldTraining:
    """How a frame-causal model trains: frame rates, clip length (None: the window) and the objective."""

    rates: tuple[float, ...] = DEFAULT_RATES
    clip_frames: int | None = None
    rollout: int = 0
    sigreg: float = 0.0
    change_floor: float | None = 0.1

    @property
    def loss(self) -> WorldLoss:
        return WorldLoss(change_floor=self.change_floor, rollout=self.rollout, sigreg=self.sigreg)


def parse_rates(text: str) -> tuple[float, ...]:
    """'10,15,30' -> (10.0, 15.0, 30.0); a ValueError naming what is wrong otherwise."""
    try:
        rates = tuple(float(r) for r in text.split(","))
    except ValueError:
        raise ValueError(f"frame rates {text!r}: expected comma-separated numbers such as 10,15,30") from None
    if not rates or any(not (0 < r < 1000) for r in rates):
        raise ValueError(f"frame rates {text!r}: each must be in (0, 1000) fps")
    return rates


class MultiRateSource:
    """Synthetic clips of `frames` frames (default: the model's window); each batch at one frame rate drawn from
    `rates` by step. Clips longer than the window train the sliding-window predictor as a stream runs it.

    Deterministic in (seed, step), like SyntheticSource: a resumed run sees the data it would have seen.
    """

    def __init__(self, clip: ClipConfig, seed: int = 0, rates: tuple[float, ...] = DEFAULT_RATES,
                 frames: int | None = None):
        if not rates or any(not r > 0 for r in rates):
            raise ValueError(f"frame rates must be positive, got {rates}")
        if frames is not None and frames < 2:
            raise ValueError(f"training clips need at least 2 frames, got {frames}")
        self.clip, self.seed, self.rates = clip, seed, tuple(float(r) for r in rates)
        self.frames = frames or clip.frames
        self.worlds = {r: WorldConfig(size=clip.size, num_frames=max(4, self.frames), fps=r) for r in self.rates}

    def rate(self, step: int) -> float:
        return self.rates[int(np.random.default_rng([self.seed, step, 11]).integers(len(self.rates)))]

    def batch(self, step: int, batch_size: int, part: range | None = None) -> tuple[np.ndarray, float]:
        """Batch `step` of `batch_size` clips at its frame rate; `part`: only those clips of it (a rank's share)."""
        fps = self.rate(step)
        base = (self.seed * 1_000_003 + step * batch_size) % (2**31)
        clips = [generate_clip(base + i, self.worlds[fps]).frames[: self.frames] for i in part or range(batch_size)]
        return np.stack(clips), fps

    def describe(self) -> str:
        rates = "/".join(f"{r:g}" for r in self.rates)
        return f"synthetic world (seed {self.seed}, {self.frames} x {self.clip.size}px, {rates} fps)"


class _Prefetch:
    """Renders batch `step + 1` in a background thread while the model trains on batch `step`."""

    def __init__(self, source):
        self.source = source
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge-jepa-data")
        self.pending: tuple[int, int, Future] | None = None

    def get(self, step: int, batch_size: int):
        if self.pending and self.pending[:2] == (step, batch_size):
            out = self.pending[2].result()
        else:
            out = self.source.batch(step, batch_size)
        self.pending = (step + 1, batch_size, self.pool.submit(self.source.batch, step + 1, batch_size))
        return out

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def sigreg(x: torch.Tensor, slices: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """LeJEPA's SIGReg: distance of x [M, D]'s random 1-D projections from N(0, 1), by characteristic functions.

    Epps-Pulley statistic on `slices` random unit directions: the integral over t of
    |mean_m exp(i t <a, x_m>) - exp(-t^2 / 2)|^2 weighted by exp(-t^2 / 2), times M, averaged over directions.
    """
    M, D = x.shape
    a = torch.randn(D, slices, generator=generator, device=x.device)
    a = a / a.norm(dim=0, keepdim=True)
    proj = x @ a  # [M, S]
    t = torch.linspace(0.0, 4.0, 17, device=x.device)  # the integrand is even in t: integrate t >= 0, twice
    arg = proj.unsqueeze(-1) * t  # [M, S, K]
    gauss = torch.exp(-0.5 * t**2)
    diff = (arg.cos().mean(0) - gauss) ** 2 + arg.sin().mean(0) ** 2  # [S, K]
    return 2 * torch.trapezoid(diff * gauss, t, dim=-1).mean() * M


def world_loss(model: FrameCausalJEPA, target_encoder: torch.nn.Module, clip: torch.Tensor, fps: float,
               loss: WorldLoss, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """The frame-causal objective (module docstring) on a batch of clips; (loss, its parts)."""
    z = model.encode_frames(clip)  # [B, T, N, D]
    if loss.sigreg > 0:  # LeWorldModel: end to end, SIGReg keeps the tokens from collapsing
        targets = F.layer_norm(z, z.shape[-1:])
    else:
        with torch.no_grad():
            t = model.encode_frames(clip, target_encoder)
            targets = F.layer_norm(t, t.shape[-1:])
    pred, log_b = model.predict(z[:, :-1], fps)  # predictions of frames 1..T-1
    err = (pred - targets[:, 1:]).abs().mean(-1)  # [B, T-1, N]
    weight = _change_weight(targets, loss.change_floor)
    total = (err * weight).mean()
    parts = {"pred": float(err.detach().mean())}
    nll = (err.detach() * torch.exp(-log_b) + log_b).mean()  # trains the scale head only (detached trunk)
    total = total + nll
    parts["nll"] = float(nll.detach())
    if loss.rollout > 0:
        roll = _rollout_error(model, z, targets, fps, loss.rollout)  # [B, k, N]
        total = total + (roll * weight[:, -loss.rollout:]).mean()
        parts["rollout"] = float(roll.detach().mean())
    if loss.sigreg > 0:
        reg = sigreg(z.reshape(-1, z.shape[-1]), loss.sigreg_slices, generator)
        total = total + loss.sigreg * reg
        parts["sigreg"] = float(reg.detach())
    return total, parts


def _change_weight(targets: torch.Tensor, floor: float | None) -> torch.Tensor:
    """[B, T-1, N] weights of the next-frame targets: their change from the previous frame, batch-normalised."""
    if floor is None:
        return torch.ones_like(targets[:, 1:, :, 0])
    with torch.no_grad():
        change = (targets[:, 1:] - targets[:, :-1]).abs().mean(-1)  # [B, T-1, N]
        return change / change.mean().clamp(min=1e-6) + floor


def _rollout_error(model: FrameCausalJEPA, z: torch.Tensor, targets: torch.Tensor, fps: float,
                   steps: int) -> torch.Tensor:
    """Feed predictions back: from the true tokens of frames < T-k, predict the last k frames one by one."""
    T = z.shape[1]
    if not 0 < steps < T - 1:
        raise ValueError(f"rollout of {steps} steps needs clips longer than {steps + 1} frames, got {T}")
    seq = z[:, : T - steps]
    errs = []
    for _ in range(steps):
        pred, _ = model.predict(seq, fps)
        nxt = pred[:, -1:]  # [B, 1, N, D]
        errs.append((nxt - targets[:, seq.shape[1] : seq.shape[1] + 1]).abs().mean(-1))
        seq = torch.cat([seq, nxt], dim=1)
    return torch.cat(errs, dim=1)  # [B, k, N]


class FrameCausalTrainer(Trainer):
    """The window trainer's loop, optimizer step, checkpoints and resume around the frame-causal objective."""

    def __init__(self, model: FrameCausalJEPA, source, out_dir, cfg: PretrainConfig,
                 loss: WorldLoss | None = None, base_card: dict | None = None, ctx: DistContext | None = None):
        super().__init__(model, source, out_dir, cfg, base_card, ctx)  # type: ignore[arg-type]
        self.objective = loss or WorldLoss()
        self.uses_ema = self.objective.sigreg <= 0  # SIGReg trains end to end, without a target encoder
        self.prefetch = _Prefetch(source)

    def loss(self) -> torch.Tensor:
        cfg, clip_cfg = self.cfg, self.model.config.clip
        batch = self.prefetch.get(self.step, cfg.batch_size)  # (clips, fps), or clips at the model's rate (fit)
        frames, fps = batch if isinstance(batch, tuple) else (batch, clip_cfg.fps)
        clip = clip_tensor(self.shard(frames), clip_cfg.size, clip_cfg.preprocess).to(self.ctx.device)
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + self.step)
        loss, _ = world_loss(self.model, self.target, clip, fps, self.objective, gen)  # type: ignore[arg-type]
        return loss

    def run(self, on_step=None):
        try:
            return super().run(on_step)
        finally:
            self.prefetch.close()
