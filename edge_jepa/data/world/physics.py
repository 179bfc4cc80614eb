"""The physics: gravity, walls, floor and ceiling with restitution, elastic collisions (circle
approximation), sub-stepped simulation into a trajectory of snapshots.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from edge_jepa.data.world.config import _EVENT_SPEED, _REST_SPEED
from edge_jepa.data.world.scene import _Body, _Contact, _Mutation, _Scene, _Snap, _Trajectory, _World

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
