"""`python -m edge_jepa.cli.main ...` runs the command line (same as the `edge-jepa` script)."""

from edge_jepa.cli import app

if __name__ == "__main__":
    app()
