"""The `edge-jepa` command line. Each command group lives in its own module and registers on `app`."""

from edge_jepa.cli import (  # noqa: F401  (each module registers its commands)
    bench_commands,
    distill_commands,
    export_commands,
    model_commands,
    stream_commands,
    train_commands,
    world_commands,
)
from edge_jepa.cli.app import app

__all__ = ["app"]
