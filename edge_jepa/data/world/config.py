"""The world's parameters (WorldConfig), a generated clip (SyntheticClip), the names of violations, shapes
and backgrounds, and the checks of user arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

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
