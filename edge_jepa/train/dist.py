"""Process-group setup for data-parallel training and distillation (torchrun sets RANK, WORLD_SIZE, LOCAL_RANK).

Without those variables (or with WORLD_SIZE=1) everything runs in this process and no group is created.
Backend: nccl when CUDA is available (one GPU per process, by LOCAL_RANK), gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None  # None: single process

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def any(self, *flags: bool) -> tuple[bool, ...]:
        """Each flag OR-ed over all ranks (so every rank takes the same decision)."""
        if not self.distributed:
            return tuple(bool(f) for f in flags)
        t = torch.tensor([float(f) for f in flags], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return tuple(bool(v) for v in t.tolist())

    def mean(self, values: list[float]) -> list[float]:
        """Element-wise mean over ranks (for logging)."""
        if not self.distributed or not values:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return (t / self.world).tolist()


DEVICES = ("auto", "cpu", "cuda")


def setup(timeout_minutes: float = 60.0, device: str = "auto") -> DistContext:
    """Join the process group torchrun describes in the environment, or a single-process context.

    device: "auto" (CUDA when available), "cpu", or "cuda" (a clear error when there is none)."""
    if device not in DEVICES:
        raise ValueError(f"device {device!r}: choose one of {', '.join(DEVICES)}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda': this torch sees no CUDA device (torch.cuda.is_available() is False); "
                         "use --device cpu, or install a CUDA build of torch on a machine with a GPU")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available() and device != "cpu"
    device = torch.device(f"cuda:{local_rank}") if cuda else torch.device("cpu")
    if world <= 1:
        return DistContext(device=device)
    backend = "nccl" if cuda else "gloo"
    if cuda:
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=timedelta(minutes=timeout_minutes))
    return DistContext(rank, world, local_rank, device, backend)


def teardown(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()
