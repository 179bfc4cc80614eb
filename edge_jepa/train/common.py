"""What every training loop here shares (pretrain, fit, distill): checkpoints, resume, schedule, stop signals.

A run lives in one directory: CHECKPOINT (everything needed to continue, written atomically) and JSONL logs
with one line per logged step. Resuming reads the checkpoint (`read_checkpoint`, weights only: no pickles
are executed), restores the step, loss history, clock and RNG (`restore_progress`), and drops the log lines
a killed run wrote after its checkpoint (`truncate_log`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from edge_jepa.io import atomic_file, save_checkpoint

CHECKPOINT = "checkpoint.pt"
LOSS_LOG = "loss.jsonl"

__all__ = ["CHECKPOINT", "LOSS_LOG", "cosine_lr", "progress_state", "read_checkpoint", "restore_progress",
           "save_checkpoint", "stop_signals", "truncate_log"]


class CheckpointReadError(ValueError):
    """A training checkpoint that cannot be continued (truncated, corrupt, from another program)."""


def read_checkpoint(path: str | os.PathLike, required: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """The state saved at `path` (tensors and plain values only: weights_only=True), or None if absent;
    CheckpointReadError (naming the file and what to do) if it is unreadable or lacks a `required` entry."""
    path = Path(path)
    if not path.exists():
        return None
    advice = "delete it to start over (or restore a copy), or choose another --out"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises anything on a damaged file
        first = str(e).strip().splitlines()[0].split(". ")[0][:160] if str(e).strip() else type(e).__name__
        raise CheckpointReadError(f"{path}: cannot read this training checkpoint (truncated or corrupt: "
                                  f"{first}); {advice}") from None
    missing = [k for k in required if not isinstance(state, dict) or k not in state]
    if missing:
        raise CheckpointReadError(f"{path}: not a checkpoint of this trainer (missing {', '.join(missing)}); "
                                  f"{advice}")
    return state


def progress_state(step: int, losses: list[float], seconds: float) -> dict[str, Any]:
    """The part of a checkpoint that says where a run is: step, loss history, training clock, torch RNG."""
    return {"step": step, "losses": torch.tensor(losses, dtype=torch.float64), "seconds": seconds,
            "torch_rng": torch.get_rng_state()}


def restore_progress(state: dict[str, Any]) -> tuple[int, list[float], float]:
    """(step, losses, seconds) of a checkpoint written with `progress_state`; restores the torch RNG."""
    torch.set_rng_state(state["torch_rng"])
    return int(state["step"]), state["losses"].tolist(), float(state["seconds"])


def cosine_lr(step: int, *, lr: float, min_lr: float, warmup: int, total: int) -> float:
    """Linear warm-up over `warmup` steps to `lr`, then a cosine to `min_lr` at step `total`."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))


def truncate_log(log: Path, step: int) -> None:
    """Drop JSONL lines with "step" past `step` (steps a killed run did after its checkpoint) and lines cut
    by the kill, atomically: a resumed run's curve continues without repeated steps."""
    if not log.exists():
        return
    kept = []
    for line in log.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a line cut by the kill
    with atomic_file(log) as tmp:
        tmp.write_text("".join(k + "\n" for k in kept))


@contextlib.contextmanager
def stop_signals(signals: tuple[int, ...] = (signal.SIGTERM,)) -> Iterator[dict[str, bool]]:
    """While active, the given signals set `flag["set"]` instead of stopping the process: the training loop
    checks it at step boundaries, saves a checkpoint and stops (only the main thread can install handlers)."""
    flag = {"set": False}

    def _on_signal(signum, frame):
        flag["set"] = True

    main = threading.current_thread() is threading.main_thread()
    old = {s: signal.signal(s, _on_signal) for s in signals} if main else {}
    try:
        yield flag
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
