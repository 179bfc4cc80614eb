"""The synthetic physical world under its original name: `edge_jepa.data.world` holds it now (config, scene,
physics, violations, render, clips). Existing imports keep working:

    from edge_jepa.data.synthetic import WorldConfig, generate_clip, matched_pair
"""

from edge_jepa.data.world import (
    BACKGROUND_KINDS,
    SHAPES,
    VIOLATIONS,
    SyntheticClip,
    WorldConfig,
    eval_set,
    generate_clip,
    iter_clips,
    matched_pair,
    render_long_video,
    write_mp4,
)

__all__ = [
    "BACKGROUND_KINDS",
    "SHAPES",
    "VIOLATIONS",
    "SyntheticClip",
    "WorldConfig",
    "eval_set",
    "generate_clip",
    "iter_clips",
    "matched_pair",
    "render_long_video",
    "write_mp4",
]
