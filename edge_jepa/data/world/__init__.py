"""Deterministic synthetic 2-D physics videos, with labelled violations of physics.

The generator serves two purposes:

1. a cheap, endless stream of plausible clips to self-supervise a tiny V-JEPA world model on CPU;
2. a labelled "violation of expectation" evaluation set: matched pairs of clips that share the seed,
   the initial conditions, the background, the lighting and the pixel-noise stream, and that differ
   only from ``violation_frame`` on, where one object does something physically impossible.

Scene model (world coordinates are continuous, the frame is the unit square, ``y`` points down):

* 1-N objects (circle, square, triangle) of varied colour and size, moving under gravity (or with no
  gravity, the "top-down" variant), bouncing off the walls, floor and ceiling with restitution and
  colliding elastically with each other (circle approximation);
* an optional opaque occluder bar that objects pass *behind*;
* varied backgrounds (solid, gradient, stripes, checker, smooth texture), a per-clip lighting
  gain/offset and mild per-frame pixel noise. Object colours keep a minimum RGB distance to every
  background pixel, to the occluder and to each other.

Violations (:data:`VIOLATIONS`), applied to an object in plain view (fully inside the frame, clear of
the occluder) whenever one exists; ``meta["details"]["choice"]`` says whether the preferred candidate
(``tier0``: visible just before and at the violation frame), a relaxed one or a fallback was used:

* ``teleport``: the object jumps >= 0.45 frame widths to a free, visible spot and keeps its velocity;
* ``vanish``: the object disappears in plain view and never comes back;
* ``appear``: a new object pops into existence in a free, visible spot and joins the physics;
* ``pass_through``: a real bounce (side wall or floor; the ceiling too without gravity) or a collision
  of the plausible clip is broken: the object leaves through the wall or the two objects interpenetrate.
  ``violation_frame`` is the frame of that event;
* ``reverse``: the velocity flips in mid-air, away from walls and objects (applied at ``f - 1`` so that
  frame ``f`` already shows the object moving back);
* ``shape_change``: the object becomes another shape of the same size;
* ``color_change``: the object takes a colour >= 90 degrees away in hue (still contrasting).

All randomness comes from ``np.random.default_rng(seed)``, split with ``Generator.spawn`` into
independent streams for the scene, the violation, the pixel noise and the iterator's choices, so that
adding a violation never perturbs the scene or the noise: the plausible and violating clips of a
matched pair are bit-identical before the violation frame.

Modules: config (WorldConfig, SyntheticClip, names, argument checks), scene (scene types, colours, visibility,
sampling), physics (simulation), violations (planning each violation), render (drawing, noise, MP4),
clips (the generators below and clip metadata).
"""

from edge_jepa.data.world.clips import eval_set, generate_clip, iter_clips, matched_pair, render_long_video
from edge_jepa.data.world.config import BACKGROUND_KINDS, SHAPES, VIOLATIONS, SyntheticClip, WorldConfig
from edge_jepa.data.world.render import write_mp4

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
