"""The synthetic physical world under its original name: `edge_jepa.data.world` holds it now (config, scene,
physics, violations, render, clips). Existing imports keep working:

    from edge_jepa.data.synthetic import WorldConfig, generate_clip, matched_pair
"""

from edge_jepa.data import world as _world
from edge_jepa.data.world import *  # noqa: F403 - the same names, listed once: edge_jepa.data.world.__all__

__all__ = _world.__all__
