"""`torchrun --nproc_per_node N -m edge_jepa.distill --teacher ... --out DIR`: the `edge-jepa distill` command
itself (same function, same flags), run once per process; torchrun's environment makes it data-parallel."""

import typer

from edge_jepa.cli.distill_commands import distill

cli = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
cli.command(help=distill.__doc__)(distill)

if __name__ == "__main__":
    cli()
