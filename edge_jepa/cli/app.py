"""The typer app shared by all command modules, and the helpers they use to report errors."""

from __future__ import annotations

import os
import warnings

import typer
from rich.console import Console
from rich.markup import escape

from edge_jepa.cli.errors import DEBUG_ENV, DEBUG_META, ErrorBoundaryGroup, debug_requested, report

app = typer.Typer(
    cls=ErrorBoundaryGroup,
    name="edge-jepa",
    help="V-JEPA 2 video world models on the edge: load, train, compress, export, watch, benchmark.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print a one-line error (no traceback) and return the Exit to raise."""
    report(message)
    return typer.Exit(code)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    err_console.print(f"[bold yellow]warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True)


@app.callback()
def _cli_warnings(
    ctx: typer.Context,
    debug: bool = typer.Option(False, "--debug", help=f"show the traceback of an error (also: {DEBUG_ENV}=1)"),
) -> None:
    ctx.meta[DEBUG_META] = debug = debug or debug_requested(())
    # in the command line, a library warning (a slow source, a video too short to judge) is one plain line
    warnings.showwarning = _show_warning
    if not debug:  # FFmpeg's own log lines ("moov atom not found") precede our one error line otherwise
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
