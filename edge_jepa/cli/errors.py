"""The command line's one error boundary: every failure ends in one `error: ...` line and an exit code.

Exit codes: 0 done; 2 a usage error: a bad option value or a missing argument (Click's), or an argument naming
something unusable (a damaged checkpoint, an --out that is not ours to replace: edge-jepa's own ValueErrors);
1 a failure while working (a full disk, a read-only folder, an internal error); 130 interrupted (Ctrl-C).
`--debug` (before the command) or EDGE_JEPA_DEBUG=1 shows the traceback instead.
"""

from __future__ import annotations

import errno
import math
import os
import sys
import traceback
from collections.abc import Sequence

import typer
from rich.console import Console
from rich.markup import escape
from typer._click import exceptions as click_exc  # typer vendors its own Click
from typer.core import TyperGroup

from edge_jepa.outputs import error_chain as _chain

DEBUG_ENV = "EDGE_JEPA_DEBUG"
DEBUG_META = "edge_jepa.debug"  # set in the root context's meta by the --debug option
DEBUG_HINT = f"rerun with --debug (or {DEBUG_ENV}=1) for the traceback"


def debug_requested(args: Sequence[str]) -> bool:
    """--debug among the options before the command name, or EDGE_JEPA_DEBUG set to a true value."""
    if os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no"):
        return True
    for arg in args:
        if not arg.startswith("-"):
            return False
        if arg == "--debug":
            return True
    return False


def debug_active() -> bool:
    """Inside a command: was --debug given (or EDGE_JEPA_DEBUG set)?"""
    from typer._click.globals import get_current_context

    ctx = get_current_context(silent=True)
    return debug_requested(()) or bool(ctx is not None and ctx.meta.get(DEBUG_META))


def _first_line(text: str, limit: int = 400) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    line = "; ".join(lines[:2]) if lines else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def describe(exc: BaseException) -> tuple[str, int]:
    """The one-line message and the exit code for an exception that reached the command line."""
    from edge_jepa.outputs import OutputError, is_disk_full

    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C); outputs already committed are complete", 130
    if is_disk_full(exc):
        where = next((e.filename for e in _chain(exc) if isinstance(e, OSError) and e.filename), None)
        detail = f" ({_first_line(str(exc), 200)})" if not isinstance(exc, OSError) else ""
        return (f"no space left on the device{f' writing {where}' if where else ''}{detail}: free some space or "
                "choose an --out on another disk, then rerun (nothing half-written was kept)"), 1
    if isinstance(exc, OutputError):
        return str(exc), 2
    if isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        what = exc.filename or "the output"
        return f"cannot write {what}: {exc.strerror}; choose a writable location (--out)", 1
    if isinstance(exc, (IsADirectoryError, NotADirectoryError, FileExistsError, FileNotFoundError)):
        text = f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else _first_line(str(exc))
        return f"{text}; check the path", 1
    if isinstance(exc, MemoryError):
        return "out of memory: use a smaller --batch-size, a smaller model or shorter clips", 1
    if isinstance(exc, (ValueError, TypeError, RuntimeError, OSError, FloatingPointError)):
        # our own errors subclass these and carry the file, expected vs got and what to do
        if _is_foreign(exc):
            return f"{_first_line(str(exc)) or type(exc).__name__} ({DEBUG_HINT})", 1
        return _first_line(str(exc)) or type(exc).__name__, 2 if isinstance(exc, ValueError) else 1
    return f"internal error: {type(exc).__name__}: {_first_line(str(exc))}; {DEBUG_HINT} and report it", 1


def _is_foreign(exc: BaseException) -> bool:
    """Raised by a dependency (torch, OpenCV, onnxruntime...) rather than by edge-jepa's own checks."""
    return not type(exc).__module__.startswith("edge_jepa") and not _raised_in_edge_jepa(exc)


def _raised_in_edge_jepa(exc: BaseException) -> bool:
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    return last is not None and "edge_jepa" in last.tb_frame.f_code.co_filename.replace(os.sep, "/").split("/")


class ErrorBoundaryGroup(TyperGroup):
    """The root command group: Click's usage errors and every exception of a command become one
    `error: ...` line on stderr and an exit code (see the module docstring)."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra):  # type: ignore[override]
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        argv = sys.argv[1:] if args is None else list(args)
        debug = debug_requested(argv)
        try:
            rv = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) else 0
        except click_exc.NoArgsIsHelpError:  # the help was printed
            code = 2
        except click_exc.ClickException as e:
            hint = ""
            if isinstance(e, click_exc.UsageError) and e.ctx is not None:
                hint = f" (see '{e.ctx.command_path} --help')"
            report(f"{e.format_message()}{hint}")
            code = e.exit_code
        except typer.Abort:  # end of input at a prompt
            report("aborted (end of input)")
            code = 1
        except (Exception, KeyboardInterrupt) as e:
            if debug:
                raise
            message, code = describe(e)
            report(message)
        sys.exit(code)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:  # typer would turn it into a silent exit 130
            if ctx.meta.get(DEBUG_META) or debug_requested(()):
                raise
            message, code = describe(KeyboardInterrupt())
            report(message)
            raise typer.Exit(code) from None


_err = Console(stderr=True)


def report(message: str) -> None:
    """Print `error: message` on stderr as one line (no markup interpretation of the message); with --debug,
    the traceback of the exception being handled comes first."""
    handling = sys.exc_info()[1]
    if handling is not None and not isinstance(handling, click_exc.ClickException | typer.Abort) and debug_active():
        traceback.print_exc()
    _err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


# ------------------------------------------------------------------------------------------- option checks
def positive(value: float | None) -> float | None:
    """Option callback: a finite number > 0 (None: the option was not given)."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"{value} is not a finite number > 0")
    return value


def non_negative(value: float | None) -> float | None:
    """Option callback: a finite number >= 0 (None: the option was not given)."""
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise typer.BadParameter(f"{value} is not a finite number >= 0")
    return value
