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
"""

from __future__ import annotations

import colorsys
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from statistics import NormalDist

import cv2
import numpy as np

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

VIOLATIONS: tuple[str, ...] = (
    "teleport",
    "vanish",
    "appear",
    "pass_through",
    "reverse",
    "shape_change",
    "color_change",
)
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
BACKGROUND_KINDS: tuple[str, ...] = ("solid", "gradient", "stripes", "checker", "texture")

MAX_OBJECTS_LIMIT = 6
_EVENT_SPEED = 0.15  # minimum approach speed (frame widths / s) for a bounce/collision to count as an event
_REST_SPEED = 0.05  # below this outgoing speed a floor contact turns into resting contact
_VISIBLE_MARGIN = 0.01  # clearance (frame widths) between an object and the occluder to count as visible
_SQUARE_HALF_SIDE = 0.85  # square half-side in units of the collision radius
_TRIANGLE_CIRCUMRADIUS = 1.25  # triangle circumradius in units of the collision radius
_FIXED_POINT_SHIFT = 4  # OpenCV sub-pixel drawing: coordinates are multiplied by 2**shift
_RGB = tuple[float, float, float]


# --------------------------------------------------------------------------------------------------
# Public data types
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorldConfig:
    """Rendering and physics knobs. Lengths are in frame widths, times in seconds, colours in 0..255.

    Attributes:
        size: output frames are ``size x size`` RGB (>= 32).
        num_frames: frames per clip (>= 4).
        fps: frames per second of the rendered clip (physics is time-based, so fps changes sampling only).
        min_objects, max_objects: number of objects per scene (1..6).
        occluder_prob: probability that the scene has an occluder bar.
        gravity_prob: probability of gravity; otherwise the scene is a zero-gravity "top-down" view.
        noise_std: standard deviation of the per-frame Gaussian pixel noise (0 disables it).
        substeps: physics sub-steps per frame interval.
        radius_range: object collision radius (0.06..0.11 -> diameters of 12..22 % of the frame).
        speed_range: initial speed; at 0.35..0.9 frame widths/s an object crosses the frame in ~1-3 s.
        gravity_range: gravitational acceleration when gravity is on (frame heights / s^2).
        restitution_range: coefficient of restitution for walls/floor (object-object is elastic).
        occluder_thickness_range: thickness of the occluder bar.
        gain_range, offset_range: per-clip lighting ``pixel * gain + offset``.
        min_contrast: minimum RGB distance between an object colour and every background pixel
            (and the occluder colour and the background); objects differ from each other by 2/3 of it.
        violation_margin: the default violation frame keeps at least this many normal frames before
            it and after it (reduced automatically for very short clips).
        ensure_contact: resample the scene until it contains a visible bounce or collision inside the
            default violation window (so that ``pass_through`` always has an event to break).
    """

    size: int = 128
    num_frames: int = 16
    fps: float = 10.0
    min_objects: int = 1
    max_objects: int = 3
    occluder_prob: float = 0.5
    gravity_prob: float = 0.7
    noise_std: float = 2.0
    substeps: int = 8
    radius_range: tuple[float, float] = (0.06, 0.11)
    speed_range: tuple[float, float] = (0.35, 0.9)
    gravity_range: tuple[float, float] = (0.6, 1.4)
    restitution_range: tuple[float, float] = (0.8, 0.95)
    occluder_thickness_range: tuple[float, float] = (0.1, 0.18)
    gain_range: tuple[float, float] = (0.8, 1.2)
    offset_range: tuple[float, float] = (-20.0, 20.0)
    min_contrast: float = 70.0
    violation_margin: int = 4
    ensure_contact: bool = True

    def __post_init__(self) -> None:
        _check_int("size", self.size, 32, 4096)
        _check_int("num_frames", self.num_frames, 4, 100_000)
        _check_float("fps", self.fps, 1e-3, 1e4)
        _check_int("min_objects", self.min_objects, 1, MAX_OBJECTS_LIMIT)
        _check_int("max_objects", self.max_objects, self.min_objects, MAX_OBJECTS_LIMIT)
        _check_float("occluder_prob", self.occluder_prob, 0.0, 1.0)
        _check_float("gravity_prob", self.gravity_prob, 0.0, 1.0)
        _check_float("noise_std", self.noise_std, 0.0, 50.0)
        _check_int("substeps", self.substeps, 1, 1000)
        _check_interval("radius_range", self.radius_range, 0.02, 0.2)
        _check_interval("speed_range", self.speed_range, 0.0, 10.0)
        _check_interval("gravity_range", self.gravity_range, 0.0, 50.0)
        _check_interval("restitution_range", self.restitution_range, 0.0, 1.0)
        _check_interval("occluder_thickness_range", self.occluder_thickness_range, 0.01, 0.5)
        _check_interval("gain_range", self.gain_range, 0.1, 3.0)
        _check_interval("offset_range", self.offset_range, -128.0, 128.0)
        _check_float("min_contrast", self.min_contrast, 0.0, 200.0)
        _check_int("violation_margin", self.violation_margin, 1, 100_000)


@dataclass
class SyntheticClip:
    """One rendered clip.

    Attributes:
        frames: uint8 array ``[F, H, W, 3]`` in RGB order.
        violation: name from :data:`VIOLATIONS`, or ``None`` for a plausible clip.
        violation_frame: first frame showing the violation (``None`` for a plausible clip).
        seed: the seed the clip was generated from.
        fps: frames per second.
        meta: JSON-serialisable description: ``objects`` (shape, drawn colour, radius, initial state),
            ``occluder`` (box in world and pixel units, or ``None``), ``background``, ``lighting``,
            ``gravity``/``top_down``, ``tracks_px`` (per object, per frame centre in pixels or ``None``),
            ``contacts`` (bounces and collisions faster than a minimum approach speed: ``frame``, ``object``
            and ``wall`` or ``other_object``), ``affected_object`` and ``details`` of the violation; a
            matched plausible clip has ``pair``.
    """

    frames: np.ndarray
    violation: str | None
    violation_frame: int | None
    seed: int
    fps: float
    meta: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        """Number of frames in the clip."""
        return int(self.frames.shape[0])


# --------------------------------------------------------------------------------------------------
# Argument validation
# --------------------------------------------------------------------------------------------------


def _check_int(name: str, value: object, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")


def _check_float(name: str, value: object, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number) or not lo <= value <= hi:
        raise ValueError(f"{name} must be a number in [{lo}, {hi}], got {value!r}")


def _check_interval(name: str, value: tuple[float, float], lo: float, hi: float) -> None:
    ok = isinstance(value, tuple | list) and len(value) == 2
    if not ok or not (lo <= value[0] <= value[1] <= hi):
        raise ValueError(f"{name} must be a pair (a, b) with {lo} <= a <= b <= {hi}, got {value!r}")


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _check_violation(violation: object) -> None:
    if violation not in VIOLATIONS:
        raise ValueError(f"unknown violation {violation!r}; allowed values: {', '.join(VIOLATIONS)}")


def _check_violation_frame(violation_frame: object, num_frames: int) -> None:
    if violation_frame is not None:
        _check_int("violation_frame", violation_frame, 1, num_frames - 1)


# --------------------------------------------------------------------------------------------------
# Scene description and physics state
# --------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Body:
    """A simulated object. ``color`` is the lit RGB colour exactly as drawn (before pixel noise)."""

    shape: str
    color: _RGB
    radius: float
    x: float
    y: float
    vx: float
    vy: float
    angle: float
    spin: float
    alive: bool = True
    walls: bool = True  # False once a pass_through violation lets it ignore walls/floor


@dataclass(frozen=True)
class _Occluder:
    """Axis-aligned opaque bar in world coordinates."""

    orientation: str
    x0: float
    y0: float
    x1: float
    y1: float
    color: _RGB


@dataclass
class _Scene:
    """Everything sampled once per clip (independent of any violation)."""

    bodies: list[_Body]
    occluder: _Occluder | None
    gravity: float
    restitution: float
    background: np.ndarray  # uint8 [H, W, 3], lit
    background_meta: dict
    gain: float
    offset: float


@dataclass(frozen=True)
class _Contact:
    """A bounce (``wall`` set) or a collision (``other`` set) happening while stepping into ``frame``."""

    frame: int
    body: int
    speed: float
    wall: str | None = None
    other: int | None = None


# Per-frame snapshot of one body: (shape, colour, x, y, radius, angle); None when absent.
_Snap = tuple[str, _RGB, float, float, float, float] | None


@dataclass
class _Trajectory:
    """Simulation output: per-frame snapshots of every body that exists by then, plus contact events."""

    states: list[list[_Snap]]
    contacts: list[_Contact]

    def snap(self, frame: int, body: int) -> _Snap:
        row = self.states[frame]
        return row[body] if body < len(row) else None


@dataclass
class _World:
    """Mutable simulation state (a deep copy of the scene bodies)."""

    bodies: list[_Body]
    gravity: float
    restitution: float
    ignore_pairs: set[tuple[int, int]] = field(default_factory=set)


@dataclass(frozen=True)
class _Mutation:
    """A change applied to the world right after stepping into ``frame`` and before recording it."""

    frame: int
    apply: Callable[[_World], None]


@dataclass
class _Plan:
    """A planned violation: its visible frame, the mutations that realise it and a description."""

    frame: int
    mutations: list[_Mutation]
    affected: int
    details: dict


# --------------------------------------------------------------------------------------------------
# Colours and backgrounds
# --------------------------------------------------------------------------------------------------


def _light(rgb: Sequence[float], gain: float, offset: float) -> _RGB:
    """Apply the per-clip lighting to a colour."""
    r, g, b = (min(255.0, max(0.0, c * gain + offset)) for c in rgb)
    return (r, g, b)


def _hsv_color(h: float, s: float, v: float) -> _RGB:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return (r * 255.0, g * 255.0, b * 255.0)


def _hue(rgb: _RGB) -> float:
    return colorsys.rgb_to_hsv(*(c / 255.0 for c in rgb))[0]


def _hue_distance(a: float, b: float) -> float:
    d = abs(a - b) % 1.0
    return min(d, 1.0 - d)


def _min_distance(color: _RGB, palette: np.ndarray) -> float:
    """Smallest Euclidean RGB distance from ``color`` to the rows of ``palette`` (``[K, 3]``)."""
    if palette.size == 0:
        return math.inf
    return float(np.sqrt(((palette - np.asarray(color, dtype=np.float32)) ** 2).sum(axis=1)).min())


def _pick_color(
    rng: np.random.Generator,
    sample: Callable[[np.random.Generator], _RGB],
    constraints: Sequence[tuple[np.ndarray, float]],
    tries: int = 64,
) -> _RGB:
    """Rejection-sample a colour meeting every ``(palette, min_distance)`` constraint.

    If no sample satisfies them all, the one with the best worst-case margin is returned.
    """
    best, best_score = None, -math.inf
    for _ in range(tries):
        color = sample(rng)
        score = min((_min_distance(color, pal) - need for pal, need in constraints), default=0.0)
        if score >= 0.0:
            return color
        if score > best_score:
            best, best_score = color, score
    assert best is not None
    return best


def _background_palette(background: np.ndarray) -> np.ndarray:
    """A subsample of background pixels used for contrast checks."""
    step = max(1, background.shape[0] // 24)
    return background[::step, ::step].reshape(-1, 3).astype(np.float32)


def _sample_background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict]:
    """Unlit float32 background ``[H, W, 3]`` and its description."""
    kind = BACKGROUND_KINDS[int(rng.integers(len(BACKGROUND_KINDS)))]
    base = np.array(_hsv_color(rng.random(), rng.uniform(0.0, 0.6), rng.uniform(0.15, 0.95)), np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    meta: dict = {"kind": kind, "base_color": [round(float(c), 1) for c in base]}
    if kind == "solid":
        image = np.broadcast_to(base, (size, size, 3))
    elif kind == "gradient":
        other = np.array(_hsv_color(rng.random(), rng.uniform(0.0, 0.6), rng.uniform(0.15, 0.95)), np.float32)
        theta = rng.uniform(0.0, 2.0 * math.pi)
        proj = xx * math.cos(theta) + yy * math.sin(theta)
        t = ((proj - proj.min()) / max(float(np.ptp(proj)), 1e-6))[..., None]
        image = base * (1.0 - t) + other * t
        meta.update(end_color=[round(float(c), 1) for c in other], angle=round(theta, 4))
    elif kind == "stripes":
        period = rng.uniform(6.0, 20.0) * size / 128.0
        theta = math.pi / 4.0 * int(rng.integers(4))
        amplitude = rng.uniform(8.0, 25.0)
        wave = np.sin(2.0 * math.pi * (xx * math.cos(theta) + yy * math.sin(theta)) / period)
        if rng.random() < 0.5:
            wave = np.sign(wave)
        image = base + (amplitude * wave)[..., None]
        meta.update(period_px=round(period, 3), angle=round(theta, 4), amplitude=round(amplitude, 3))
    elif kind == "checker":
        cell = max(2, int(round(rng.uniform(8.0, 24.0) * size / 128.0)))
        amplitude = rng.uniform(6.0, 20.0)
        parity = ((xx // cell + yy // cell) % 2) * 2.0 - 1.0
        image = base + (amplitude * parity)[..., None]
        meta.update(cell_px=cell, amplitude=round(amplitude, 3))
    else:  # smooth low-frequency texture
        grid = int(rng.integers(3, 7))
        amplitude = rng.uniform(10.0, 30.0)
        coarse = rng.random((grid, grid, 3)).astype(np.float32)
        smooth = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
        image = base + amplitude * (2.0 * smooth - 1.0)
        meta.update(grid=grid, amplitude=round(amplitude, 3))
    return np.asarray(image, dtype=np.float32), meta


def _object_color_sampler(rng: np.random.Generator, gain: float, offset: float) -> _RGB:
    return _light(_hsv_color(rng.random(), rng.uniform(0.55, 1.0), rng.uniform(0.55, 1.0)), gain, offset)


def _occluder_color_sampler(rng: np.random.Generator, gain: float, offset: float) -> _RGB:
    return _light(_hsv_color(rng.random(), rng.uniform(0.0, 0.4), rng.uniform(0.1, 0.9)), gain, offset)


# --------------------------------------------------------------------------------------------------
# Scene sampling
# --------------------------------------------------------------------------------------------------


def _default_window(config: WorldConfig) -> tuple[int, int]:
    """Inclusive range of default violation frames, keeping ``violation_margin`` frames on each side."""
    n = config.num_frames
    margin = max(1, min(config.violation_margin, (n - 1) // 2))
    return margin, max(margin, n - 1 - margin)


def _sample_occluder(rng: np.random.Generator, config: WorldConfig) -> tuple[str, float, float, float, float]:
    orientation = "vertical" if rng.random() < 0.5 else "horizontal"
    thickness = rng.uniform(*config.occluder_thickness_range)
    center = rng.uniform(0.3, 0.7)
    length = rng.uniform(0.7, 1.0)
    start = rng.uniform(0.0, 1.0 - length)
    if orientation == "vertical":
        return orientation, center - thickness / 2, start, center + thickness / 2, start + length
    return orientation, start, center - thickness / 2, start + length, center + thickness / 2


def _free_position(
    rng: np.random.Generator,
    radius: float,
    others: Sequence[tuple[float, float, float]],
    occluder: _Occluder | None,
    y_max: float = 1.0,
    require_visible: bool = False,
    far_from: tuple[float, float, float] | None = None,
    tries: int = 200,
) -> tuple[float, float] | None:
    """Sample a position inside the frame that does not overlap ``others`` (``(x, y, r)`` triples).

    Optionally the object must be clear of the occluder, and at least ``far_from[2]`` away from
    ``(far_from[0], far_from[1])``. Returns ``None`` when no position was found.
    """
    hi_y = max(radius, min(1.0 - radius, y_max))
    for _ in range(tries):
        x = rng.uniform(radius, 1.0 - radius)
        y = rng.uniform(radius, hi_y)
        if any((x - ox) ** 2 + (y - oy) ** 2 < (radius + orad + 0.02) ** 2 for ox, oy, orad in others):
            continue
        if require_visible and _clearance(x, y, radius, occluder) < 2 * _VISIBLE_MARGIN:
            continue
        if far_from is not None and math.hypot(x - far_from[0], y - far_from[1]) < far_from[2]:
            continue
        return x, y
    return None


def _sample_body(
    rng: np.random.Generator,
    config: WorldConfig,
    scene_colors: Sequence[tuple[np.ndarray, float]],
    others: Sequence[_Body],
    occluder: _Occluder | None,
    gain: float,
    offset: float,
    gravity: float,
    require_visible: bool = False,
) -> _Body:
    """Sample one object that contrasts with the scene and does not overlap ``others``."""
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    radius = rng.uniform(*config.radius_range)
    distinct = np.array([b.color for b in others], dtype=np.float32).reshape(-1, 3)
    constraints = [*scene_colors, (distinct, config.min_contrast * 2.0 / 3.0)]
    color = _pick_color(rng, lambda r: _object_color_sampler(r, gain, offset), constraints)
    placed = [(b.x, b.y, b.radius) for b in others if b.alive]
    pos = _free_position(rng, radius, placed, occluder, 0.75 if gravity > 0 else 1.0, require_visible)
    if pos is None:  # crowded scene: accept an overlap, the collision solver separates the objects
        pos = (rng.uniform(radius, 1.0 - radius), rng.uniform(radius, 1.0 - radius))
    speed = rng.uniform(*config.speed_range)
    heading = rng.uniform(0.0, 2.0 * math.pi)
    spin = 0.0 if shape == "circle" else rng.uniform(-1.5, 1.5)
    return _Body(
        shape=shape,
        color=color,
        radius=radius,
        x=pos[0],
        y=pos[1],
        vx=speed * math.cos(heading),
        vy=speed * math.sin(heading),
        angle=rng.uniform(0.0, 2.0 * math.pi),
        spin=spin,
    )


def _sample_scene(
    rng: np.random.Generator,
    config: WorldConfig,
    min_objects: int | None = None,
    restitution: float | None = None,
) -> _Scene:
    """Sample background, lighting, gravity, occluder and objects for one clip."""
    gain = rng.uniform(*config.gain_range)
    offset = rng.uniform(*config.offset_range)
    raw_background, background_meta = _sample_background(rng, config.size)
    background = np.clip(raw_background * gain + offset, 0.0, 255.0)
    background_u8 = np.ascontiguousarray(np.rint(background).astype(np.uint8))
    palette = _background_palette(background_u8)

    gravity = rng.uniform(*config.gravity_range) if rng.random() < config.gravity_prob else 0.0
    wall_restitution = rng.uniform(*config.restitution_range)
    if restitution is not None:
        wall_restitution = restitution

    occluder = None
    if rng.random() < config.occluder_prob:
        orientation, x0, y0, x1, y1 = _sample_occluder(rng, config)
        color = _pick_color(
            rng, lambda r: _occluder_color_sampler(r, gain, offset), [(palette, config.min_contrast)]
        )
        occluder = _Occluder(orientation, x0, y0, x1, y1, color)

    scene_colors = _contrast_constraints(palette, occluder, config)
    lo = config.min_objects if min_objects is None else max(min_objects, config.min_objects)
    hi = max(lo, config.max_objects)
    count = int(rng.integers(lo, hi + 1))
    bodies: list[_Body] = []
    for _ in range(count):
        bodies.append(_sample_body(rng, config, scene_colors, bodies, occluder, gain, offset, gravity))
    return _Scene(bodies, occluder, gravity, wall_restitution, background_u8, background_meta, gain, offset)


def _contrast_constraints(
    palette: np.ndarray, occluder: _Occluder | None, config: WorldConfig
) -> list[tuple[np.ndarray, float]]:
    """``(palette, min_distance)`` constraints for an object colour: background and occluder."""
    constraints = [(palette, config.min_contrast)]
    if occluder is not None:
        constraints.append((np.array([occluder.color], np.float32), config.min_contrast * 0.8))
    return constraints


def _scene_colors(scene: _Scene, config: WorldConfig) -> list[tuple[np.ndarray, float]]:
    """Contrast constraints for a new object colour in ``scene``."""
    return _contrast_constraints(_background_palette(scene.background), scene.occluder, config)


# --------------------------------------------------------------------------------------------------
# Physics
# --------------------------------------------------------------------------------------------------


def _bounce_walls(index: int, body: _Body, restitution: float, frame: int, contacts: list[_Contact]) -> None:
    """Reflect a body off the four walls of the unit box, logging visible bounces."""
    r = body.radius
    if body.x < r:
        speed = -body.vx
        body.x = min(2.0 * r - body.x, 1.0 - r)
        body.vx = abs(body.vx) * restitution
        if speed >= _EVENT_SPEED:
            contacts.append(_Contact(frame, index, speed, wall="left"))
    elif body.x > 1.0 - r:
        speed = body.vx
        body.x = max(2.0 * (1.0 - r) - body.x, r)
        body.vx = -abs(body.vx) * restitution
        if speed >= _EVENT_SPEED:
            contacts.append(_Contact(frame, index, speed, wall="right"))
    if body.y < r:
        speed = -body.vy
        body.y = min(2.0 * r - body.y, 1.0 - r)
        body.vy = abs(body.vy) * restitution
        if speed >= _EVENT_SPEED:
            contacts.append(_Contact(frame, index, speed, wall="ceiling"))
    elif body.y > 1.0 - r:
        speed = body.vy
        if speed * restitution < _REST_SPEED:  # resting contact: no micro-bounces
            body.y, body.vy = 1.0 - r, 0.0
        else:
            body.y = max(2.0 * (1.0 - r) - body.y, r)
            body.vy = -speed * restitution
        if speed >= _EVENT_SPEED:
            contacts.append(_Contact(frame, index, speed, wall="floor"))


def _resolve_collision(a: _Body, b: _Body, i: int, j: int, frame: int, contacts: list[_Contact]) -> None:
    """Elastic collision of two overlapping discs (mass proportional to area) plus separation."""
    dx, dy = b.x - a.x, b.y - a.y
    dist = math.hypot(dx, dy)
    nx, ny = (dx / dist, dy / dist) if dist > 1e-9 else (1.0, 0.0)
    inv_a, inv_b = 1.0 / (a.radius * a.radius), 1.0 / (b.radius * b.radius)
    approach = (a.vx - b.vx) * nx + (a.vy - b.vy) * ny
    if approach > 0.0:
        impulse = 2.0 * approach / (inv_a + inv_b)
        a.vx -= impulse * inv_a * nx
        a.vy -= impulse * inv_a * ny
        b.vx += impulse * inv_b * nx
        b.vy += impulse * inv_b * ny
        if approach >= _EVENT_SPEED:
            contacts.append(_Contact(frame, i, approach, other=j))
    overlap = a.radius + b.radius - dist
    share_a = inv_a / (inv_a + inv_b)
    a.x -= overlap * share_a * nx
    a.y -= overlap * share_a * ny
    b.x += overlap * (1.0 - share_a) * nx
    b.y += overlap * (1.0 - share_a) * ny


def _collide_all(world: _World, frame: int, contacts: list[_Contact]) -> None:
    bodies = world.bodies
    for i in range(len(bodies)):
        a = bodies[i]
        if not a.alive:
            continue
        for j in range(i + 1, len(bodies)):
            b = bodies[j]
            if not b.alive:
                continue
            reach = a.radius + b.radius
            if (b.x - a.x) ** 2 + (b.y - a.y) ** 2 >= reach * reach or (i, j) in world.ignore_pairs:
                continue
            _resolve_collision(a, b, i, j, frame, contacts)


def _substep(world: _World, dt: float, frame: int, contacts: list[_Contact]) -> None:
    """Advance the world by ``dt`` (semi-implicit Euler), then resolve walls and collisions."""
    for index, body in enumerate(world.bodies):
        if not body.alive:
            continue
        body.vy += world.gravity * dt
        body.x += body.vx * dt
        body.y += body.vy * dt
        body.angle += body.spin * dt
        if body.walls:
            _bounce_walls(index, body, world.restitution, frame, contacts)
        elif not (
            -3 * body.radius < body.x < 1 + 3 * body.radius
            and -3 * body.radius < body.y < 1 + 3 * body.radius
        ):
            body.alive = False  # left the frame for good after passing through a wall
    _collide_all(world, frame, contacts)


def _snapshot(body: _Body) -> _Snap:
    if not body.alive:
        return None
    return (body.shape, body.color, body.x, body.y, body.radius, body.angle)


def _simulate(
    scene: _Scene, num_frames: int, fps: float, substeps: int, mutations: Sequence[_Mutation] = ()
) -> _Trajectory:
    """Run the physics for ``num_frames`` frames, applying ``mutations`` at their frames."""
    world = _World([replace(b) for b in scene.bodies], scene.gravity, scene.restitution)
    by_frame: dict[int, list[_Mutation]] = {}
    for mutation in mutations:
        by_frame.setdefault(mutation.frame, []).append(mutation)
    dt = 1.0 / (fps * substeps)
    states: list[list[_Snap]] = []
    contacts: list[_Contact] = []
    for frame in range(num_frames):
        if frame > 0:
            for _ in range(substeps):
                _substep(world, dt, frame, contacts)
        for mutation in by_frame.get(frame, ()):
            mutation.apply(world)
        states.append([_snapshot(b) for b in world.bodies])
    return _Trajectory(states, contacts)


# --------------------------------------------------------------------------------------------------
# Visibility helpers
# --------------------------------------------------------------------------------------------------


def _clearance(x: float, y: float, radius: float, occluder: _Occluder | None) -> float:
    """Distance between a disc and the occluder rectangle (negative when they overlap)."""
    if occluder is None:
        return math.inf
    dx = max(occluder.x0 - x, 0.0, x - occluder.x1)
    dy = max(occluder.y0 - y, 0.0, y - occluder.y1)
    return math.hypot(dx, dy) - radius


def _in_frame(snap: _Snap) -> bool:
    assert snap is not None
    _, _, x, y, r, _ = snap
    eps = 1e-6
    return r - eps <= x <= 1.0 - r + eps and r - eps <= y <= 1.0 - r + eps


def _visible(snap: _Snap, occluder: _Occluder | None) -> bool:
    """True when the object exists, lies fully inside the frame and is not behind the occluder."""
    if snap is None or not _in_frame(snap):
        return False
    _, _, x, y, r, _ = snap
    return _clearance(x, y, r, occluder) >= _VISIBLE_MARGIN


def _visible_at(traj: _Trajectory, body: int, frames: Iterable[int], occluder: _Occluder | None) -> bool:
    return all(_visible(traj.snap(f, body), occluder) for f in frames)


# --------------------------------------------------------------------------------------------------
# Violation planning
# --------------------------------------------------------------------------------------------------


@dataclass
class _PlanContext:
    """Inputs shared by the violation planners."""

    scene: _Scene
    config: WorldConfig
    traj: _Trajectory
    rng: np.random.Generator
    window: tuple[int, int]  # default frame range (inclusive)
    requested: int | None  # explicit violation frame, or None to choose one
    limit: int  # events must happen before this frame (exclusive)
    earliest: int = 1  # events must happen at or after this frame

    def alive(self, frame: int) -> list[int]:
        return [i for i, s in enumerate(self.traj.states[frame]) if s is not None]

    def others(self, frame: int, exclude: int | None = None) -> list[tuple[float, float, float]]:
        return [
            (s[2], s[3], s[4])
            for i, s in enumerate(self.traj.states[frame])
            if s is not None and i != exclude
        ]


def _choose_frame_and_body(
    ctx: _PlanContext,
    tiers: Sequence[Callable[[int], list[int]]],
    fallback_key: Callable[[int, int], float],
) -> tuple[int, int, str]:
    """Pick the violation frame, the affected object and how well it met the preferences.

    ``tiers`` are candidate finders (frame -> object indices) from the most to the least preferred.
    With an explicit frame, a random candidate of the first tier that has one at that frame; otherwise a
    random frame of the default window among those where the first usable tier has candidates. If no
    tier qualifies, the alive object maximising ``fallback_key`` is used. The returned label is
    ``"tier0"``, ``"tier1"``, ... or ``"fallback"``.
    """
    lo, hi = ctx.window
    for rank, candidates in enumerate(tiers):
        if ctx.requested is not None:
            frame = ctx.requested
        else:
            usable = [f for f in range(lo, hi + 1) if candidates(f)]
            if not usable:
                continue
            frame = int(ctx.rng.choice(usable))
        chosen = candidates(frame)
        if chosen:
            return frame, int(ctx.rng.choice(chosen)), f"tier{rank}"
    frame = ctx.requested if ctx.requested is not None else int(ctx.rng.integers(lo, hi + 1))
    alive = ctx.alive(frame)
    if not alive:
        raise ValueError(f"no object left in the scene at frame {frame} to apply the violation to")
    return frame, max(alive, key=lambda i: fallback_key(frame, i)), "fallback"


def _clearance_key(ctx: _PlanContext) -> Callable[[int, int], float]:
    def key(frame: int, body: int) -> float:
        snap = ctx.traj.snap(frame, body)
        assert snap is not None
        return _clearance(snap[2], snap[3], snap[4], ctx.scene.occluder)

    return key


def _visible_candidates(ctx: _PlanContext, frame: int, before: bool = True) -> list[int]:
    """Objects in plain view at ``frame`` (and, with ``before``, also at ``frame - 1``)."""
    frames = (frame - 1, frame) if before else (frame,)
    return [i for i in ctx.alive(frame) if _visible_at(ctx.traj, i, frames, ctx.scene.occluder)]


def _visible_tiers(ctx: _PlanContext) -> list[Callable[[int], list[int]]]:
    """Prefer objects in plain view just before and at the violation frame, then at that frame only."""
    return [lambda f: _visible_candidates(ctx, f), lambda f: _visible_candidates(ctx, f, before=False)]


def _plan_teleport(ctx: _PlanContext) -> _Plan:
    targets: dict[tuple[int, int], tuple[float, float] | None] = {}

    def target(frame: int, body: int) -> tuple[float, float] | None:
        if (frame, body) not in targets:
            snap = ctx.traj.snap(frame, body)
            assert snap is not None
            far = (snap[2], snap[3], 0.45)
            targets[(frame, body)] = _free_position(
                ctx.rng,
                snap[4],
                ctx.others(frame, body),
                ctx.scene.occluder,
                require_visible=True,
                far_from=far,
            )
        return targets[(frame, body)]

    tiers = [
        lambda f, base=base: [i for i in base(f) if target(f, i) is not None] for base in _visible_tiers(ctx)
    ]
    frame, body, choice = _choose_frame_and_body(ctx, tiers, _clearance_key(ctx))
    snap = ctx.traj.snap(frame, body)
    assert snap is not None
    dest = target(frame, body)
    if dest is None:  # crowded fallback: the farthest corner-ish free point
        r = snap[4]
        dest = (1.0 - r if snap[2] < 0.5 else r, 1.0 - r if snap[3] < 0.5 else r)

    def apply(world: _World) -> None:
        world.bodies[body].x, world.bodies[body].y = dest

    details = {"from": [round(snap[2], 4), round(snap[3], 4)], "to": [round(dest[0], 4), round(dest[1], 4)]}
    return _Plan(frame, [_Mutation(frame, apply)], body, {**details, "choice": choice})


def _plan_vanish(ctx: _PlanContext) -> _Plan:
    frame, body, choice = _choose_frame_and_body(ctx, _visible_tiers(ctx), _clearance_key(ctx))

    def apply(world: _World) -> None:
        world.bodies[body].alive = False

    return _Plan(frame, [_Mutation(frame, apply)], body, {"choice": choice})


def _plan_appear(ctx: _PlanContext) -> _Plan:
    lo, hi = ctx.window
    frame = ctx.requested if ctx.requested is not None else int(ctx.rng.integers(lo, hi + 1))
    others = [
        _Body(s[0], s[1], s[4], s[2], s[3], 0.0, 0.0, s[5], 0.0)
        for s in ctx.traj.states[frame]
        if s is not None
    ]
    new = _sample_body(
        ctx.rng,
        ctx.config,
        _scene_colors(ctx.scene, ctx.config),
        others,
        ctx.scene.occluder,
        ctx.scene.gain,
        ctx.scene.offset,
        ctx.scene.gravity,
        require_visible=True,
    )
    index = len(ctx.traj.states[frame])

    def apply(world: _World) -> None:
        world.bodies.append(replace(new))

    details = {"shape": new.shape, "color": _round_color(new.color), "radius": round(new.radius, 4)}
    return _Plan(frame, [_Mutation(frame, apply)], index, details)


def _pass_through_events(ctx: _PlanContext, lo: int, hi: int) -> list[_Contact]:
    """Visible bounces/collisions happening in frames ``[lo, hi]``; bounces first, then by frame."""
    events = []
    occ = ctx.scene.occluder
    for c in ctx.traj.contacts:
        if not lo <= c.frame <= hi or c.frame < 1:
            continue
        if c.wall == "ceiling" and ctx.scene.gravity > 0.0:
            continue  # under gravity it would have to fall back in: not a clean exit
        if not _visible_at(ctx.traj, c.body, (c.frame - 1, c.frame), occ):
            continue
        if c.other is not None and not _visible_at(ctx.traj, c.other, (c.frame - 1, c.frame), occ):
            continue
        events.append(c)
    return events


def _plan_pass_through(ctx: _PlanContext) -> _Plan:
    """Break a real bounce or collision: the object passes through the wall/floor or the other object.

    The violation frame is the frame of the broken event: with an explicit ``violation_frame`` the first
    suitable event at or after it (else the last one before it), otherwise a random event of the window.
    """
    last = min(ctx.limit, len(ctx.traj.states)) - 1
    if ctx.requested is None:
        events = _pass_through_events(ctx, *ctx.window) or _pass_through_events(ctx, 1, last)
        if not events:
            raise RuntimeError("no visible bounce or collision in this clip to turn into a pass_through")
        walls = [c for c in events if c.wall is not None]
        pool = walls or events
        event = pool[int(ctx.rng.integers(len(pool)))]
    else:
        after = _pass_through_events(ctx, ctx.requested, last)
        before = _pass_through_events(ctx, ctx.earliest, ctx.requested - 1)
        if after:
            first = min(c.frame for c in after)
            same = [c for c in after if c.frame == first]
            event = next((c for c in same if c.wall is not None), same[0])
        elif before:
            event = max(before, key=lambda c: c.frame)
        else:
            raise RuntimeError(
                f"no visible bounce or collision to turn into a pass_through near frame {ctx.requested}"
            )
    body, other = event.body, event.other

    def apply(world: _World) -> None:
        if other is None:
            world.bodies[body].walls = False
        else:
            world.ignore_pairs.add((min(body, other), max(body, other)))

    details = {"through": f"wall:{event.wall}" if other is None else f"object:{other}"}
    if other is not None:
        details["other_object"] = other
    if ctx.requested is not None:
        details["requested_frame"] = ctx.requested
    return _Plan(event.frame, [_Mutation(event.frame - 1, apply)], body, details)


def _mid_air(ctx: _PlanContext, frame: int, body: int, strict: bool = True) -> bool:
    """Moving clearly, away from walls and other objects, with no bounce or collision around ``frame``.

    ``strict=False`` relaxes the speed and distance thresholds (used when no strict candidate exists).
    """
    snap = ctx.traj.snap(frame, body)
    nxt = ctx.traj.snap(frame + 1, body) if frame + 1 < len(ctx.traj.states) else None
    if snap is None or nxt is None:
        return False
    _, _, x, y, r, _ = snap
    step = math.hypot(nxt[2] - x, nxt[3] - y)
    if strict:
        min_speed, wall_gap, object_gap, horizon = 0.25, step + 0.02, 0.5 * step + 0.01, 2
    else:
        min_speed, wall_gap, object_gap, horizon = 0.12, 0.5 * step, 0.0, 1
    if step * ctx.config.fps < min_speed or min(x, 1.0 - x, y, 1.0 - y) < r + wall_gap:
        return False
    others = ctx.others(frame, body)
    if any(math.hypot(x - ox, y - oy) < r + orad + object_gap for ox, oy, orad in others):
        return False
    window = range(frame, frame + horizon + 1)
    return not any(c.body == body or c.other == body for c in ctx.traj.contacts if c.frame in window)


def _plan_reverse(ctx: _PlanContext) -> _Plan:
    """Negate the velocity at frame ``f - 1`` so that frame ``f`` already shows the object moving back."""

    def candidates(frame: int, strict: bool = True) -> list[int]:
        return [i for i in _visible_candidates(ctx, frame) if _mid_air(ctx, frame - 1, i, strict)]

    def speed_key(frame: int, body: int) -> float:
        a, b = ctx.traj.snap(frame - 1, body), ctx.traj.snap(frame, body)
        return -1.0 if a is None or b is None else math.hypot(b[2] - a[2], b[3] - a[3])

    frame, body, choice = _choose_frame_and_body(ctx, [candidates, lambda f: candidates(f, False)], speed_key)

    def apply(world: _World) -> None:
        b = world.bodies[body]
        b.vx, b.vy, b.spin = -b.vx, -b.vy, -b.spin

    return _Plan(frame, [_Mutation(frame - 1, apply)], body, {"choice": choice})


def _plan_shape_change(ctx: _PlanContext) -> _Plan:
    frame, body, choice = _choose_frame_and_body(ctx, _visible_tiers(ctx), _clearance_key(ctx))
    snap = ctx.traj.snap(frame, body)
    assert snap is not None
    options = [s for s in SHAPES if s != snap[0]]
    new_shape = options[int(ctx.rng.integers(len(options)))]

    def apply(world: _World) -> None:
        b = world.bodies[body]
        b.shape = new_shape
        if new_shape != "circle" and b.spin == 0.0:
            b.angle = 0.3  # a visibly tilted polygon rather than an axis-aligned one

    return _Plan(frame, [_Mutation(frame, apply)], body, {"from": snap[0], "to": new_shape, "choice": choice})


def _plan_color_change(ctx: _PlanContext) -> _Plan:
    frame, body, choice = _choose_frame_and_body(ctx, _visible_tiers(ctx), _clearance_key(ctx))
    snap = ctx.traj.snap(frame, body)
    assert snap is not None
    old = snap[1]
    old_hue = _hue(old)
    others = np.array(
        [s[1] for i, s in enumerate(ctx.traj.states[frame]) if s is not None and i != body], np.float32
    )
    constraints = [
        *_scene_colors(ctx.scene, ctx.config),
        (others.reshape(-1, 3), ctx.config.min_contrast * 2.0 / 3.0),
        (np.array([old], np.float32), ctx.config.min_contrast * 1.5),
    ]
    scene = ctx.scene

    def sample(rng: np.random.Generator) -> _RGB:
        hue = old_hue + rng.uniform(0.25, 0.75)  # at least 90 degrees away on the hue circle
        return _light(_hsv_color(hue, rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0)), scene.gain, scene.offset)

    new = _pick_color(ctx.rng, sample, constraints, tries=128)

    def apply(world: _World) -> None:
        world.bodies[body].color = new

    details = {
        "from": _round_color(old),
        "to": _round_color(new),
        "hue_shift": round(_hue_distance(old_hue, _hue(new)), 4),
    }
    return _Plan(frame, [_Mutation(frame, apply)], body, {**details, "choice": choice})


_PLANNERS: dict[str, Callable[[_PlanContext], _Plan]] = {
    "teleport": _plan_teleport,
    "vanish": _plan_vanish,
    "appear": _plan_appear,
    "pass_through": _plan_pass_through,
    "reverse": _plan_reverse,
    "shape_change": _plan_shape_change,
    "color_change": _plan_color_change,
}


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------


def _to_fixed(value: float) -> int:
    return int(round(value * (1 << _FIXED_POINT_SHIFT)))


def _polygon(shape: str, cx: float, cy: float, radius: float, angle: float) -> np.ndarray:
    """Fixed-point vertices of a square or triangle centred at pixel ``(cx, cy)``."""
    if shape == "square":
        count, extent, phase = 4, radius * _SQUARE_HALF_SIDE * math.sqrt(2.0), math.pi / 4.0
    else:
        count, extent, phase = 3, radius * _TRIANGLE_CIRCUMRADIUS, -math.pi / 2.0
    points = []
    for k in range(count):
        a = angle + phase + 2.0 * math.pi * k / count
        points.append((_to_fixed(cx + extent * math.cos(a)), _to_fixed(cy + extent * math.sin(a))))
    return np.array(points, dtype=np.int32)


def _draw_body(image: np.ndarray, snap: _Snap, size: int) -> None:
    """Draw one object (anti-aliased, sub-pixel) onto ``image``."""
    assert snap is not None
    shape, color, x, y, r, angle = snap
    cx, cy, radius = x * size - 0.5, y * size - 0.5, r * size
    if shape == "circle":
        cv2.circle(
            image,
            (_to_fixed(cx), _to_fixed(cy)),
            _to_fixed(radius),
            color,
            -1,
            cv2.LINE_AA,
            _FIXED_POINT_SHIFT,
        )
    else:
        cv2.fillPoly(image, [_polygon(shape, cx, cy, radius, angle)], color, cv2.LINE_AA, _FIXED_POINT_SHIFT)


def _occluder_pixels(occluder: _Occluder, size: int) -> tuple[int, int, int, int]:
    """Pixel slice bounds ``(x0, y0, x1, y1)`` (exclusive ends) of the occluder."""
    x0, y0 = int(round(occluder.x0 * size)), int(round(occluder.y0 * size))
    x1, y1 = int(round(occluder.x1 * size)), int(round(occluder.y1 * size))
    return max(0, x0), max(0, y0), min(size, x1), min(size, y1)


def _draw_occluder(image: np.ndarray, occluder: _Occluder, size: int) -> None:
    """Fill the opaque bar and give it a darker 1-px rim."""
    x0, y0, x1, y1 = _occluder_pixels(occluder, size)
    image[y0:y1, x0:x1] = tuple(int(round(c)) for c in occluder.color)
    rim = tuple(c * 0.6 for c in occluder.color)
    cv2.rectangle(image, (x0, y0), (x1 - 1, y1 - 1), rim, 1)


def _render(scene: _Scene, traj: _Trajectory, size: int, out: np.ndarray, start: int = 0) -> None:
    """Render frames ``start..`` of ``traj`` into ``out`` (uint8 ``[F, H, W, 3]``), without noise."""
    for frame in range(start, len(traj.states)):
        image = out[frame]
        np.copyto(image, scene.background)
        for snap in traj.states[frame]:
            if snap is not None:
                _draw_body(image, snap, size)
        if scene.occluder is not None:
            _draw_occluder(image, scene.occluder, size)


def _noise_luts(std: float) -> tuple[np.ndarray, np.ndarray]:
    """Lookup tables mapping a uniform byte to the positive / negative part of quantised N(0, std^2)."""
    quantiles = np.array([NormalDist().inv_cdf((i + 0.5) / 256.0) for i in range(256)]) * std
    values = np.rint(quantiles)
    return np.clip(values, 0, 255).astype(np.uint8), np.clip(-values, 0, 255).astype(np.uint8)


def _noise_planes(
    rng: np.random.Generator, shape: tuple[int, ...], std: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """Positive and negative noise planes (uint8, 2-D) for frames of ``shape``; ``None`` if ``std == 0``."""
    if std <= 0.0:
        return None
    rows = shape[0] * shape[1]
    raw = np.frombuffer(rng.bytes(int(np.prod(shape))), dtype=np.uint8).reshape(rows, -1)
    pos_lut, neg_lut = _noise_luts(std)
    return cv2.LUT(raw, pos_lut), cv2.LUT(raw, neg_lut)


def _add_noise(frames: np.ndarray, noise: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """Saturating ``frames + noise`` (in place when possible)."""
    if noise is None:
        return frames
    flat = frames.reshape(noise[0].shape)
    flat = cv2.subtract(cv2.add(flat, noise[0]), noise[1])
    return flat.reshape(frames.shape)


# --------------------------------------------------------------------------------------------------
# Metadata
# --------------------------------------------------------------------------------------------------


def _round_color(color: Sequence[float]) -> list[float]:
    return [round(float(c), 1) for c in color]


def _tracks_px(traj: _Trajectory, size: int) -> list[list[list[float] | None]]:
    """Per object, per frame, the centre in pixel coordinates (``None`` when absent)."""
    count = max(len(row) for row in traj.states)
    tracks: list[list[list[float] | None]] = [[] for _ in range(count)]
    for row in traj.states:
        for i in range(count):
            snap = row[i] if i < len(row) else None
            point = None if snap is None else [round(snap[2] * size - 0.5, 2), round(snap[3] * size - 0.5, 2)]
            tracks[i].append(point)
    return tracks


def _scene_meta(scene: _Scene, traj: _Trajectory, config: WorldConfig, num_frames: int, fps: float) -> dict:
    """JSON-serialisable description of a scene and its trajectory."""
    size = config.size
    objects = [
        {
            "shape": b.shape,
            "color": _round_color(b.color),
            "radius": round(b.radius, 4),
            "radius_px": round(b.radius * size, 2),
            "position": [round(b.x, 4), round(b.y, 4)],
            "velocity": [round(b.vx, 4), round(b.vy, 4)],
        }
        for b in scene.bodies
    ]
    occluder = None
    if scene.occluder is not None:
        occ = scene.occluder
        occluder = {
            "orientation": occ.orientation,
            "box": [round(v, 4) for v in (occ.x0, occ.y0, occ.x1, occ.y1)],
            "box_px": list(_occluder_pixels(occ, size)),
            "color": _round_color(occ.color),
        }
    return {
        "size": size,
        "num_frames": num_frames,
        "fps": fps,
        "gravity": round(scene.gravity, 4),
        "top_down": scene.gravity == 0.0,
        "restitution": round(scene.restitution, 4),
        "background": scene.background_meta,
        "lighting": {"gain": round(scene.gain, 4), "offset": round(scene.offset, 4)},
        "noise_std": config.noise_std,
        "occluder": occluder,
        "objects": objects,
        "tracks_px": _tracks_px(traj, size),
        "contacts": [
            {"frame": c.frame, "object": c.body, "speed": round(c.speed, 4),
             **({"wall": c.wall} if c.wall is not None else {"other_object": c.other})}
            for c in traj.contacts
        ],
    }


def _violation_meta(name: str, plan: _Plan, traj: _Trajectory) -> dict:
    snap = traj.snap(plan.frame, plan.affected) or traj.snap(plan.frame - 1, plan.affected)
    return {
        "violation": name,
        "frame": plan.frame,
        "affected_object": plan.affected,
        "affected_shape": snap[0] if snap is not None else None,
        "details": plan.details,
    }


# --------------------------------------------------------------------------------------------------
# Clip assembly
# --------------------------------------------------------------------------------------------------


def _streams(
    seed: int,
) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator, np.random.Generator]:
    """Independent generators (scene, violation, noise, choice) derived from ``default_rng(seed)``."""
    scene_rng, violation_rng, noise_rng, choice_rng = np.random.default_rng(seed).spawn(4)
    return scene_rng, violation_rng, noise_rng, choice_rng


def _has_pass_through_event(scene: _Scene, traj: _Trajectory, config: WorldConfig) -> bool:
    ctx = _PlanContext(
        scene, config, traj, np.random.default_rng(0), _default_window(config), None, config.num_frames
    )
    return bool(_pass_through_events(ctx, *ctx.window))


def _aim_for_contact(scene: _Scene, config: WorldConfig) -> _Trajectory | None:
    """Fallback for ``ensure_contact``: redirect one object so that it hits a wall mid-window."""
    lo, hi = _default_window(config)
    t = (lo + hi) / 2.0 / config.fps
    g = scene.gravity
    for body in scene.bodies:
        x, y, r = body.x, body.y, body.radius
        walls = {"left": x - r, "right": 1.0 - r - x, "ceiling": y - r, "floor": 1.0 - r - y}
        for wall in sorted(walls, key=walls.get):
            d = walls[wall]
            vx, vy = body.vx, body.vy
            if wall in ("left", "right"):
                body.vx = d / t if wall == "right" else -d / t
            else:
                body.vy = (d - 0.5 * g * t * t) / t if wall == "floor" else -(d + 0.5 * g * t * t) / t
            traj = _simulate(scene, config.num_frames, config.fps, config.substeps)
            if _has_pass_through_event(scene, traj, config):
                return traj
            body.vx, body.vy = vx, vy
    return None


def _scene_and_trajectory(rng: np.random.Generator, config: WorldConfig) -> tuple[_Scene, _Trajectory]:
    """Sample a scene and simulate it (resampling, if asked, until it has a visible contact event)."""
    tries = 12 if config.ensure_contact else 1
    for _ in range(tries):
        scene = _sample_scene(rng, config)
        traj = _simulate(scene, config.num_frames, config.fps, config.substeps)
        if not config.ensure_contact or _has_pass_through_event(scene, traj, config):
            return scene, traj
    aimed = _aim_for_contact(scene, config)
    return scene, aimed if aimed is not None else traj


@dataclass
class _Built:
    scene: _Scene
    plausible: _Trajectory
    violating: _Trajectory | None
    plan: _Plan | None


def _build(
    seed: int, config: WorldConfig, violation: str | None, violation_frame: int | None
) -> tuple[_Built, np.random.Generator]:
    """Simulate the plausible trajectory and, if requested, the violating one."""
    scene_rng, violation_rng, noise_rng, _ = _streams(seed)
    scene, plausible = _scene_and_trajectory(scene_rng, config)
    if violation is None:
        return _Built(scene, plausible, None, None), noise_rng
    ctx = _PlanContext(
        scene, config, plausible, violation_rng, _default_window(config), violation_frame, config.num_frames
    )
    plan = _PLANNERS[violation](ctx)
    violating = _simulate(scene, config.num_frames, config.fps, config.substeps, plan.mutations)
    return _Built(scene, plausible, violating, plan), noise_rng


def _frames_buffer(num_frames: int, size: int) -> np.ndarray:
    return np.empty((num_frames, size, size, 3), dtype=np.uint8)


def _make_clip(
    seed: int,
    config: WorldConfig,
    built: _Built,
    traj: _Trajectory,
    frames: np.ndarray,
    violation: str | None,
) -> SyntheticClip:
    meta = _scene_meta(built.scene, traj, config, config.num_frames, config.fps)
    meta["seed"] = seed
    frame = None
    if violation is not None and built.plan is not None:
        frame = built.plan.frame
        meta.update(_violation_meta(violation, built.plan, traj))
        if built.plan.affected >= len(built.scene.bodies):
            radius_px = round(built.plan.details["radius"] * config.size, 2)
            meta["objects"].append({"appears_at_frame": frame, **built.plan.details, "radius_px": radius_px})
    else:
        meta.update({"violation": None, "frame": None, "affected_object": None})
    return SyntheticClip(frames, violation, frame, seed, float(config.fps), meta)


def generate_clip(
    seed: int,
    config: WorldConfig = WorldConfig(),
    violation: str | None = None,
    violation_frame: int | None = None,
) -> SyntheticClip:
    """Render one clip, plausible (``violation=None``) or with one violation of physics.

    Args:
        seed: non-negative integer; the same seed and config always give the same clip, and the
            plausible clip of a seed is exactly the plausible half of :func:`matched_pair`.
        config: rendering and physics parameters.
        violation: ``None`` or one of :data:`VIOLATIONS`.
        violation_frame: frame in ``[1, num_frames - 1]`` at which the violation happens; ``None`` picks
            one that keeps ``config.violation_margin`` normal frames on each side. For ``pass_through``
            it is the earliest frame: the violation breaks the first suitable bounce/collision at or
            after it, and ``clip.violation_frame`` reports the actual frame.

    Raises:
        ValueError: unknown violation, ``violation_frame`` out of range, invalid seed.
    """
    seed = _check_seed(seed)
    if violation is not None:
        _check_violation(violation)
    elif violation_frame is not None:
        raise ValueError(f"violation_frame={violation_frame!r} given without a violation")
    _check_violation_frame(violation_frame, config.num_frames)
    built, noise_rng = _build(seed, config, violation, violation_frame)
    traj = built.violating if built.violating is not None else built.plausible
    frames = _frames_buffer(config.num_frames, config.size)
    _render(built.scene, traj, config.size, frames)
    frames = _add_noise(frames, _noise_planes(noise_rng, frames.shape, config.noise_std))
    return _make_clip(seed, config, built, traj, frames, violation)


def matched_pair(
    seed: int,
    violation: str,
    config: WorldConfig = WorldConfig(),
    violation_frame: int | None = None,
) -> tuple[SyntheticClip, SyntheticClip]:
    """Return ``(plausible, violating)`` clips of the same scene, background, lighting and noise.

    Frames before ``violating.violation_frame`` are identical. The plausible clip's
    ``meta["pair"]`` records the violation it is matched with.
    """
    seed = _check_seed(seed)
    _check_violation(violation)
    _check_violation_frame(violation_frame, config.num_frames)
    built, noise_rng = _build(seed, config, violation, violation_frame)
    assert built.violating is not None and built.plan is not None
    plain = _frames_buffer(config.num_frames, config.size)
    _render(built.scene, built.plausible, config.size, plain)
    broken = plain.copy()
    _render(built.scene, built.violating, config.size, broken, start=built.plan.frame)
    noise = _noise_planes(noise_rng, plain.shape, config.noise_std)
    plausible = _make_clip(seed, config, built, built.plausible, _add_noise(plain, noise), None)
    plausible.meta["pair"] = {
        "violation": violation,
        "violation_frame": built.plan.frame,
        "affected_object": built.plan.affected,
    }
    violating = _make_clip(seed, config, built, built.violating, _add_noise(broken, noise), violation)
    return plausible, violating


def iter_clips(
    seeds: Iterable[int], config: WorldConfig = WorldConfig(), violation_rate: float = 0.0
) -> Iterator[SyntheticClip]:
    """Yield one clip per seed (the training stream; keep ``violation_rate=0`` for training data).

    With ``violation_rate > 0`` each clip independently carries a random violation with that
    probability; the choice is deterministic per seed. Arguments are validated eagerly.
    """
    _check_float("violation_rate", violation_rate, 0.0, 1.0)
    return _clip_stream(seeds, config, violation_rate)


def _clip_stream(seeds: Iterable[int], config: WorldConfig, violation_rate: float) -> Iterator[SyntheticClip]:
    for seed in seeds:
        seed = _check_seed(seed)
        violation = None
        if violation_rate > 0.0:
            choice_rng = _streams(seed)[3]
            if choice_rng.random() < violation_rate:
                violation = VIOLATIONS[int(choice_rng.integers(len(VIOLATIONS)))]
        yield generate_clip(seed, config, violation)


def eval_set(
    seeds: Iterable[int], config: WorldConfig = WorldConfig(), violations: Sequence[str] = VIOLATIONS
) -> list[tuple[SyntheticClip, SyntheticClip]]:
    """Matched ``(plausible, violating)`` pairs, cycling through ``violations`` over the seeds."""
    if isinstance(violations, str) or len(violations) == 0:
        raise ValueError(
            f"violations must be a non-empty sequence of names from {VIOLATIONS}, got {violations!r}"
        )
    for name in violations:
        _check_violation(name)
    return [matched_pair(seed, violations[i % len(violations)], config) for i, seed in enumerate(seeds)]


# --------------------------------------------------------------------------------------------------
# Long continuous scenes
# --------------------------------------------------------------------------------------------------


def _long_video_frames(
    seconds: float, fps: float, violations: Sequence[tuple[float, str]]
) -> list[tuple[int, str]]:
    """Validate the ``(time, name)`` list and convert it to sorted ``(frame, name)`` pairs."""
    total = int(round(seconds * fps))
    if total < 4:
        raise ValueError(f"seconds * fps must give at least 4 frames, got seconds={seconds!r} at fps={fps}")
    events = []
    for item in violations:
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise ValueError(f"violations must be (time_seconds, name) pairs, got {item!r}")
        time_s, name = item
        _check_violation(name)
        frame = int(round(float(time_s) * fps))
        if not 1 <= frame <= total - 1:
            raise ValueError(
                f"violation time {time_s!r} s maps to frame {frame}; allowed times are "
                f"[{1 / fps:.3g}, {(total - 1) / fps:.3g}] s (frames [1, {total - 1}])"
            )
        events.append((frame, name))
    events.sort()
    for (f0, n0), (f1, n1) in zip(events, events[1:], strict=False):
        if f1 - f0 < 2:
            raise ValueError(
                f"violations {n0!r} (frame {f0}) and {n1!r} (frame {f1}) must be >= 2 frames apart"
            )
    return events


def render_long_video(
    seed: int,
    seconds: float,
    config: WorldConfig = WorldConfig(),
    violations: Sequence[tuple[float, str]] = (),
) -> SyntheticClip:
    """Render one continuous scene of ``seconds`` seconds with violations at the given times.

    Walls and floor are perfectly elastic here so that the objects keep bouncing for the whole video.
    The scene gets enough objects that every ``vanish``/``pass_through`` leaves at least one object
    moving; nothing ever re-spawns. ``meta["violations"]`` lists ``{"time", "frame", "violation",
    "affected_object", ...}`` for each violation (a ``pass_through`` happens at the first suitable
    bounce/collision at or after its time); ``clip.violation``/``violation_frame`` describe the first one.

    Raises:
        ValueError: bad seed, duration, violation name or time.
    """
    seed = _check_seed(seed)
    _check_float("seconds", seconds, 0.0, 24 * 3600.0)
    events = _long_video_frames(seconds, config.fps, violations)
    total = int(round(seconds * config.fps))
    removals = sum(1 for _, name in events if name in ("vanish", "pass_through"))
    if removals + 1 > MAX_OBJECTS_LIMIT:
        raise ValueError(
            f"at most {MAX_OBJECTS_LIMIT - 1} vanish/pass_through violations per video, got {removals}"
        )
    scene_rng, violation_rng, noise_rng, _ = _streams(seed)
    scene = _sample_scene(scene_rng, config, min_objects=removals + 1, restitution=1.0)
    long_config = replace(config, num_frames=total)
    mutations: list[_Mutation] = []
    traj = _simulate(scene, total, config.fps, config.substeps)
    records = []
    for k, (frame, name) in enumerate(events):
        limit = events[k + 1][0] if k + 1 < len(events) else total
        ctx = _PlanContext(
            scene, long_config, traj, violation_rng, (frame, frame), frame, limit, earliest=frame
        )
        plan = _PLANNERS[name](ctx)
        mutations.extend(plan.mutations)
        traj = _simulate(scene, total, config.fps, config.substeps, mutations)
        record = _violation_meta(name, plan, traj)
        record["time"] = round(frame / config.fps, 4)
        records.append(record)
    frames = _frames_buffer(total, config.size)
    _render(scene, traj, config.size, frames)
    frames = _add_noise(frames, _noise_planes(noise_rng, frames.shape, config.noise_std))
    meta = _scene_meta(scene, traj, config, total, float(config.fps))
    meta.update(seed=seed, seconds=float(seconds), violations=records)
    first = records[0] if records else None
    return SyntheticClip(
        frames,
        first["violation"] if first else None,
        first["frame"] if first else None,
        seed,
        float(config.fps),
        meta,
    )


# --------------------------------------------------------------------------------------------------
# Video output
# --------------------------------------------------------------------------------------------------


def write_mp4(frames: np.ndarray, path: str | os.PathLike, fps: float) -> Path:
    """Write RGB uint8 frames ``[F, H, W, 3]`` to an MP4 file (codec 'mp4v') atomically.

    The video is written to a temporary file in the destination directory and moved into place with
    ``os.replace``, so readers never see a half-written file.

    Raises:
        ValueError: bad frame array or fps.
        RuntimeError: OpenCV cannot open a video writer (e.g. no 'mp4v' encoder in this build).
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0 or frames.dtype != np.uint8:
        raise ValueError(
            f"frames must be a non-empty uint8 array [F, H, W, 3], got {frames.dtype} {frames.shape}"
        )
    _check_float("fps", fps, 1e-3, 1e4)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    height, width = int(frames.shape[1]), int(frames.shape[2])
    handle, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".mp4", dir=target.parent)
    os.close(handle)
    try:
        writer = cv2.VideoWriter(tmp_name, cv2.VideoWriter.fourcc(*"mp4v"), float(fps), (width, height))
        if not writer.isOpened():
            raise RuntimeError(
                f"OpenCV could not open an 'mp4v' VideoWriter for {target} ({width}x{height} @ {fps} fps); "
                "check that this OpenCV build has FFMPEG video I/O"
            )
        try:
            for frame in frames:
                writer.write(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR))
        finally:
            writer.release()
        if os.path.getsize(tmp_name) == 0:
            raise RuntimeError(f"OpenCV wrote an empty video for {target}")
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target
