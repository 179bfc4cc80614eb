"""Violation planning: for each violation, the frame and object (in plain view when one exists) and the
mutation of the plausible trajectory that breaks physics there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from edge_jepa.data.world.config import _RGB, SHAPES, WorldConfig
from edge_jepa.data.world.scene import (
    _Body,
    _clearance,
    _Contact,
    _free_position,
    _hsv_color,
    _hue,
    _hue_distance,
    _light,
    _Mutation,
    _pick_color,
    _Plan,
    _round_color,
    _sample_body,
    _Scene,
    _scene_colors,
    _Trajectory,
    _visible_at,
    _World,
)

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
