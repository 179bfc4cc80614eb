"""What a scene is (bodies, occluder, background; the physics state and trajectory types), what is visible
when, and how a scene is sampled: colours that contrast with the background and each other, free positions.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from edge_jepa.data.world.config import _RGB, _VISIBLE_MARGIN, BACKGROUND_KINDS, SHAPES, WorldConfig

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


def _round_color(color: Sequence[float]) -> list[float]:
    return [round(float(c), 1) for c in color]


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
