"""Data sources: the synthetic physical world (training stream and violation-of-expectation sets)."""

from edge_jepa.data import world as _world
from edge_jepa.data.world import *  # noqa: F403 - the same names, listed once: edge_jepa.data.world.__all__

__all__ = _world.__all__
