"""The typer app shared by all command modules, and the helpers they use to report errors."""

from __future__ import annotations

import warnings

import typer
from rich.console import Console

app = typer.Typer(
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
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    err_console.print(f"[bold yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


@app.callback()
def _cli_warnings() -> None:
    # in the command line, a library warning (a slow source, a video too short to judge) is one plain line
    warnings.showwarning = _show_warning
