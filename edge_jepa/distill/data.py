"""What each distillation step trains on: student clips, masks and the teacher's outputs on them.

- `ShardedSampler`: step s of rank r of a `world`-process run takes global batch index s * world + r, so the
  ranks see disjoint data and any run (or a resumed one) sees exactly the data it would have seen.
- `LiveBatches`: draws the teacher view of each clip from a clip source (`edge_jepa.train.data`: the synthetic
  world or a folder of videos), derives the student view, draws a mask and runs the teacher.
- `TeacherCache` (`--cache-teacher`): the teacher forward dominates the cost, so a first pass writes the first
  `num_batches` global batches (student clips, masks, aligned teacher tokens, predictor outputs and
  surprise) as safetensors shards, each written atomically; training then cycles over them. A killed cache
  pass continues where it stopped; a cache built for another teacher/student/layout is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor

from edge_jepa.distill.align import Alignment, DistillError
from edge_jepa.distill.losses import token_surprise
from edge_jepa.io import atomic_file, save_safetensors
from edge_jepa.models.vjepa2 import VJEPA2
from edge_jepa.preprocess import clip_tensor
from edge_jepa.train.masks import future_mask, multiblock_mask


class ClipSource(Protocol):
    def batch(self, step: int, batch_size: int) -> np.ndarray: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class ShardedSampler:
    rank: int = 0
    world: int = 1

    def index(self, step: int) -> int:
        """Global batch index of this rank's batch at `step`."""
        return step * self.world + self.rank


@dataclass
class DistillBatch:
    index: int  # global batch index
    student_clip: np.ndarray  # uint8 [B, Ts, Ss, Ss, 3]
    ctx: Tensor  # [Nc] student context token indices
    tgt: Tensor  # [Nt] student target token indices
    mask_index: int  # predictor mask token: 1 for future masks, 0 for multi-block (as pretraining)
    teacher_tokens: Tensor  # [B, Ns, Dt] teacher window tokens on the student grid
    teacher_pred: Tensor  # [B, Nt, Dt] teacher predictor outputs at the student targets
    teacher_surprise: Tensor  # [B, Nt] teacher per-token surprise at the student targets

    def tensors(self) -> dict[str, Tensor]:
        return {"index": torch.tensor([self.index]), "student_clip": torch.from_numpy(self.student_clip),
                "ctx": self.ctx, "tgt": self.tgt, "mask_index": torch.tensor([self.mask_index]),
                "teacher_tokens": self.teacher_tokens, "teacher_pred": self.teacher_pred,
                "teacher_surprise": self.teacher_surprise}

    @classmethod
    def from_tensors(cls, t: dict[str, Tensor]) -> DistillBatch:
        return cls(int(t["index"][0]), t["student_clip"].numpy(), t["ctx"], t["tgt"], int(t["mask_index"][0]),
                   t["teacher_tokens"], t["teacher_pred"], t["teacher_surprise"])


def draw_mask(alignment: Alignment, seed: int, index: int, future_prob: float) -> tuple[Tensor, Tensor, int]:
    """The student-grid mask of global batch `index`: future (surprise layout) or multi-block tubes."""
    rng = np.random.default_rng([seed, index, 7])
    if rng.random() < future_prob:
        return (*future_mask(alignment.student_grid, alignment.student_context_tubelets), 1)
    return (*multiblock_mask(alignment.student_grid, rng), 0)


class TeacherOracle:
    """The teacher's outputs on a batch of teacher views, aligned onto the student grid and mask."""

    def __init__(self, teacher: VJEPA2, alignment: Alignment, device: torch.device | str = "cpu"):
        self.teacher = teacher.eval().requires_grad_(False).to(device)
        self.alignment, self.device = alignment, torch.device(device)

    @torch.no_grad()
    def __call__(self, frames: np.ndarray, ctx: Tensor, tgt: Tensor, mask_index: int
                 ) -> tuple[Tensor, Tensor, Tensor]:
        a = self.alignment
        x = clip_tensor(frames, a.teacher_clip.size, "resize").to(self.device)
        B = x.shape[0]
        t_ctx, t_tgt = (ctx, tgt) if a.identity else a.teacher_mask(tgt)
        t_ctx, t_tgt = t_ctx.to(self.device), t_tgt.to(self.device)
        window = self.teacher.encoder(x)
        context = self.teacher.encoder(x, keep=t_ctx)
        pred = self.teacher.predictor(context, t_ctx.expand(B, -1), t_tgt.expand(B, -1),
                                      grid=a.teacher_grid[1:], mask_index=mask_index)
        surprise = token_surprise(window, pred, t_tgt)  # [B, Ntt]
        s_tgt = tgt.to(self.device)
        return (a.tokens(window).float().cpu(), a.targets(pred, t_tgt, s_tgt).float().cpu(),
                a.targets(surprise[..., None], t_tgt, s_tgt)[..., 0].float().cpu())


class LiveBatches:
    """Fresh data every step: clip source -> teacher view -> student view, mask, teacher outputs."""

    def __init__(self, source: ClipSource, oracle: TeacherOracle, *, per_rank: int, seed: int, future_prob: float,
                 sampler: ShardedSampler):
        self.source, self.oracle, self.per_rank = source, oracle, per_rank
        self.seed, self.future_prob, self.sampler = seed, future_prob, sampler

    def make(self, index: int) -> DistillBatch:
        a = self.oracle.alignment
        frames = self.source.batch(index, self.per_rank)
        ctx, tgt, mask_index = draw_mask(a, self.seed, index, self.future_prob)
        tokens, pred, surprise = self.oracle(frames, ctx, tgt, mask_index)
        return DistillBatch(index, a.student_view(frames), ctx, tgt, mask_index, tokens, pred, surprise)

    def get(self, step: int) -> DistillBatch:
        return self.make(self.sampler.index(step))


class TeacherCache:
    """Teacher outputs of global batches 0..num_batches-1 as safetensors shards in `directory`."""

    META = "cache.json"

    def __init__(self, directory: str | os.PathLike, num_batches: int, meta: dict, sampler: ShardedSampler):
        if num_batches < 1:
            raise DistillError(f"the teacher cache needs at least 1 batch, got {num_batches}")
        self.dir, self.num_batches, self.sampler = Path(directory), num_batches, sampler
        self.meta = {**meta, "num_batches": num_batches}

    def shard(self, index: int) -> Path:
        return self.dir / f"batch_{index:06d}.safetensors"

    def check_or_write_meta(self) -> None:
        """Refuse a cache written for another setting; record ours (rank 0 only)."""
        path = self.dir / self.META
        if path.exists():
            found = json.loads(path.read_text())
            if found != self.meta:
                diff = sorted(k for k in set(found) | set(self.meta) if found.get(k) != self.meta.get(k))
                raise DistillError(f"{path}: the teacher cache was built for another setting (differs in "
                                   f"{', '.join(diff)}); delete {self.dir} or pass another --cache-dir")
            return
        with atomic_file(path) as tmp:
            tmp.write_text(json.dumps(self.meta, indent=2))

    def missing(self) -> list[int]:
        """This rank's share of the shards not written yet."""
        return [i for i in range(self.sampler.rank, self.num_batches, self.sampler.world)
                if not self.shard(i).exists()]

    def build(self, live: LiveBatches, on_shard: Callable[[int, int], None] | None = None) -> int:
        """Write this rank's missing shards; returns how many it wrote."""
        todo = self.missing()
        for done, index in enumerate(todo, 1):
            save_safetensors({k: v.contiguous() for k, v in live.make(index).tensors().items()}, self.shard(index))
            if on_shard:
                on_shard(done, len(todo))
        return len(todo)

    def get(self, step: int) -> DistillBatch:
        path = self.shard(self.sampler.index(step) % self.num_batches)
        try:
            return DistillBatch.from_tensors(load_file(str(path)))
        except (FileNotFoundError, SafetensorError, KeyError) as e:
            raise DistillError(f"{path}: unreadable teacher-cache shard ({e}); delete it and rerun with "
                               "--resume to rebuild it") from None


def state_digest(module: torch.nn.Module) -> str:
    """sha256 over a module's state dict (names, shapes, dtypes, bytes): identity of a set of weights."""
    h = hashlib.sha256()
    for name, value in module.state_dict().items():
        t = value.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()
