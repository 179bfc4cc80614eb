"""Output safety: replace only what is ours, one writer per output directory, leftovers of killed runs cleaned.

- `check_replaceable(path)`: a directory may be replaced only when it is missing, empty or recognisably ours
  (it holds a bundle's manifest.json or a model's edge_jepa.json); anything else is refused (`force=True`
  overrides, except for the current directory or one holding it).
- `OutputLock(directory, command)`: an advisory lock (flock) on `directory/.edge-jepa.lock`; a second writer
  gets an OutputError naming the first one's pid. The kernel releases it when the holder dies (kill -9 too).
- `tmp_prefix(name)` / `clean_leftovers(directory)`: temporary files carry the writer's pid and host
  (`.NAME.PID-HOST.xxxx.tmp`), so a later run can remove those whose writer is gone and keep those of a live
  one; another host's (a shared disk, another container) are removed only once they are an hour old.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import shutil
import socket
import time
from pathlib import Path

OWN_MARKERS = ("manifest.json", "edge_jepa.json")  # an export bundle, an edge-jepa model directory
LOCK_FILE = ".edge-jepa.lock"
_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]  # pids are per host (and per container)
# .NAME.PID-HOST.random.tmp (atomic_file/atomic_dir); .NAME.old-PID-HOST (atomic_dir, between its two renames)
_TMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-(?P<host>[0-9a-f]{6})\.[^.]+\.tmp$")
_OLD = re.compile(r"^\.(?P<name>.+)\.old-(?P<pid>\d+)-(?P<host>[0-9a-f]{6})$")
_PARTIAL = re.compile(r"^\.(?P<stem>.+)\.partial(?P<suffix>\.\w+)?$")  # .STEM.partial.mp4 (VideoWriter)
_STALE_S = 3600.0  # leftovers without a pid are removed once this old


# torch's failed save raises RuntimeError with these texts, not OSError (a full disk, a vanished directory)
_TORCH_WRITE_FAILURES = ("No space left", "PytorchStreamWriter failed", "file write failed", "unexpected pos")


def error_chain(exc: BaseException | None) -> list[BaseException]:
    """`exc` and its causes/contexts, outermost first."""
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def is_disk_full(exc: BaseException) -> bool:
    """A full disk (or quota), as OSError or as the RuntimeError torch.save raises from its C++ writer."""
    for e in error_chain(exc):
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(e, RuntimeError) and any(s in str(e) for s in _TORCH_WRITE_FAILURES):
            return True
        if "No space left on device" in str(e) or "os error 28" in str(e):  # e.g. safetensors' SafetensorError
            return True
    return False


class OutputError(ValueError):
    """An output that cannot be written safely (not ours to replace, in use by another run)."""


def check_replaceable(path: str | os.PathLike, *, what: str = "output directory", force: bool = False) -> None:
    """Raise OutputError unless `path` may be replaced by a new directory (see the module docstring)."""
    path = Path(path)
    resolved = path.expanduser().resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise OutputError(f"{path}: is the current directory{'' if resolved == cwd else ' (or holds it)'}, which "
                          f"cannot be replaced by the {what}; name a new directory, e.g. {path / 'out'}")
    if not path.exists() and not path.is_symlink():
        check_writable(path, folder=True)  # its parent is a folder we can write (not a file, not read-only)
        return
    if force:
        return
    if not path.is_dir() or path.is_symlink():
        raise OutputError(f"{path}: exists and is not a directory; refusing to replace it with the {what}: choose "
                          "another path, or pass --force to replace it")
    entries = [p.name for p in path.iterdir()]
    if not entries or any(m in entries for m in OWN_MARKERS):
        return
    shown = ", ".join(sorted(entries)[:3]) + (", ..." if len(entries) > 3 else "")
    raise OutputError(f"{path}: is a directory of other files ({shown}), not an edge-jepa bundle or model "
                      f"(no {' or '.join(OWN_MARKERS)}); refusing to replace it with the {what}: choose a new "
                      "directory, or pass --force to replace it and everything in it")


def tmp_prefix(name: str) -> str:
    """Prefix of a temporary file or directory beside `name` that `clean_leftovers` can attribute."""
    return f".{name}.{os.getpid()}-{_HOST}."


def old_name(name: str) -> str:
    """Where atomic_dir parks the directory it replaces, between its two renames."""
    return f".{name}.old-{os.getpid()}-{_HOST}"


def _gone(match: re.Match, entry: Path, now: float) -> bool:
    """The writer of a temporary is gone: its pid is dead on this host, or (another host) it is stale."""
    if match["host"] == _HOST:
        return not _alive(int(match["pid"]))
    with contextlib.suppress(OSError):
        return now - entry.lstat().st_mtime > _STALE_S
    return False


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def clean_leftovers(directory: str | os.PathLike, *, partials: bool = False) -> list[Path]:
    """Remove the temporaries of dead writers in `directory`: `.NAME.PID-HOST.x.tmp` (whose writer is gone) and
    `.NAME.old-PID-HOST` (restored to NAME if NAME is missing: the run died between its two renames).
    `partials=True` also removes `.STEM.partial.EXT` video files: only when the caller holds the directory's
    OutputLock (their writer does not carry a pid). Returns what was removed."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    now = time.time()
    for entry in directory.iterdir():
        name = entry.name
        if not name.startswith("."):
            continue
        if m := _TMP.match(name):
            if _gone(m, entry, now):
                _remove(entry)
                removed.append(entry)
        elif name.endswith(".tmp"):  # an older writer without a pid in the name
            with contextlib.suppress(OSError):
                if now - entry.lstat().st_mtime > _STALE_S:
                    _remove(entry)
                    removed.append(entry)
        elif m := _OLD.match(name):
            if _gone(m, entry, now):
                target = directory / m["name"]
                if not target.exists():
                    os.replace(entry, target)
                else:
                    _remove(entry)
                    removed.append(entry)
        elif partials and _PARTIAL.match(name):
            _remove(entry)
            removed.append(entry)
    return removed


class OutputLock:
    """One writer per output directory: `with OutputLock(out, "watch"): ...` (see the module docstring)."""

    def __init__(self, directory: str | os.PathLike, command: str):
        self.directory, self.command = Path(directory), command
        self.path = self.directory / LOCK_FILE
        self._fd = -1

    def acquire(self) -> OutputLock:
        self.directory.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
                os.close(fd)
                raise OutputError(f"{self.directory}: in use by {holder}; wait for it to end, or choose another "
                                  "--out (two runs writing one folder would mix their events and files)") from None
            # the holder before us may have removed the file after we opened it: lock the file now at the path
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"edge-jepa {self.command} (pid {os.getpid()}, since {time.strftime('%H:%M:%S')})".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                self.path.unlink()
            os.close(self._fd)  # closing releases the flock
            self._fd = -1

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def check_writable(path: str | os.PathLike, *, folder: bool = False) -> None:
    """Before long work: OutputError unless a file (or with `folder`, a folder) can be created or replaced at
    `path`: it is not a folder (a file), the first existing ancestor is a writable folder."""
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise OutputError(f"{path}: exists and is not a folder; give a folder (new, or one of an earlier run)")
    if not folder and path.is_dir():
        raise OutputError(f"{path}: is a folder; give a file name (e.g. {path / 'report.json'})")
    ancestor = path if folder and path.exists() else path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputError(f"{path}: cannot be created, because {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK):
        raise OutputError(f"{path}: cannot be written ({ancestor} is not writable); choose another location")
