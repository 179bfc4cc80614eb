"""Clip assembly: the public generators (generate_clip, matched_pair, iter_clips, eval_set,
render_long_video) and the metadata of each clip.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np

from edge_jepa.data.world.config import (
    MAX_OBJECTS_LIMIT,
    VIOLATIONS,
    SyntheticClip,
    WorldConfig,
    _check_float,
    _check_seed,
    _check_violation,
    _check_violation_frame,
)
from edge_jepa.data.world.physics import _simulate
from edge_jepa.data.world.render import _add_noise, _noise_planes, _occluder_pixels, _render
from edge_jepa.data.world.scene import (
    _default_window,
    _Mutation,
    _Plan,
    _round_color,
    _sample_scene,
    _Scene,
    _Trajectory,
)
from edge_jepa.data.world.violations import _PLANNERS, _pass_through_events, _PlanContext

# --------------------------------------------------------------------------------------------------
# Metadata
# --------------------------------------------------------------------------------------------------


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
