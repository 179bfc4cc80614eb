"""Atomic writes: artifacts appear whole under their final name or not at all."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors.torch import save_file

from edge_jepa.outputs import check_replaceable, clean_leftovers, is_disk_full, old_name, tmp_prefix


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success fsync and rename it to `path`, else delete it.

    The file gets normal permissions (0666 minus the umask) when it is committed, not when the temp is made:
    mkstemp creates 0600, and writers such as safetensors' save_file recreate the temp file themselves."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(21, "is a directory, expected a file name", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=tmp_prefix(path.name), suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, *, what: str = "output directory", force: bool = False) -> Iterator[Path]:
    """Yield a temp directory beside `path`; on success it replaces `path` (an old one is removed last).

    Only a missing or empty directory, or one of ours (a bundle or model: see `edge_jepa.outputs`), is
    replaced; anything else raises OutputError before any work is done, unless `force`."""
    path = Path(path)
    check_replaceable(path, what=what, force=force)
    path = path.absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(path.parent)
    tmp = Path(tempfile.mkdtemp(prefix=tmp_prefix(path.name), suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = path.with_name(old_name(path.name))
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_safetensors(tensors: dict[str, torch.Tensor], path: str | os.PathLike,
                     metadata: dict[str, str] | None = None) -> Path:
    """safetensors.save_file, atomically (a full disk raises OSError ENOSPC, not SafetensorError)."""
    try:
        with atomic_file(path) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)
    except Exception as e:
        if is_disk_full(e) and not isinstance(e, OSError):
            raise OSError(errno.ENOSPC, "no space left on the device", str(path)) from e
        raise
    return Path(path)


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written (disk full, permissions); the previous one is untouched."""


def save_checkpoint(state: dict, path: str | os.PathLike, *, step: int) -> Path:
    """torch.save `state` to `path` atomically; on failure raise CheckpointWriteError saying the previous
    checkpoint (if any) is intact."""
    path = Path(path)
    try:
        with atomic_file(path) as tmp:
            torch.save(state, tmp)
    except (OSError, RuntimeError) as e:
        if isinstance(e, RuntimeError):  # torch's C++ writer: not an OSError even for a full disk
            if not is_disk_full(e):
                raise
            e = OSError(errno.ENOSPC, "No space left on device")
        before = "the previous checkpoint is intact" if path.exists() else "there is no earlier checkpoint"
        raise CheckpointWriteError(f"could not write checkpoint {path} at step {step}: {e.strerror or e}; "
                                   f"{before}") from e
    return path


def strict_json(obj: object, indent: int | None = 2) -> str:
    """JSON text that strict parsers accept: NaN and infinities become null (json.dumps writes bare NaN)."""

    def clean(o: object) -> object:
        if isinstance(o, float):
            return o if math.isfinite(o) else None
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, list | tuple):
            return [clean(v) for v in o]
        if hasattr(o, "item") and getattr(o, "ndim", None) == 0:  # numpy / torch scalars
            return clean(o.item())
        return o

    return json.dumps(clean(obj), indent=indent, allow_nan=False)
