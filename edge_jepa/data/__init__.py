"""Data sources: the synthetic physical world (training stream and violation-of-expectation sets)."""

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
