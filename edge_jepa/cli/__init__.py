"""The `edge-jepa` command line. Each command group lives in its own module and registers on `app`."""

from edge_jepa.cli import model_commands, train_commands, world_commands  # noqa: F401  (register commands)
from edge_jepa.cli.app import app

__all__ = ["app"]
