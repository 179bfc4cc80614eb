"""`python -m edge_jepa.stream watch SOURCE ...`: the `edge-jepa watch` command without the full CLI."""

from edge_jepa.cli.stream_commands import app

if __name__ == "__main__":
    app()
