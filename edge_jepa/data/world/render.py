"""Rendering: sub-pixel OpenCV drawing of bodies and the occluder over the background, lighting and
per-frame pixel noise; writing frames to an MP4.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from statistics import NormalDist

import cv2
import numpy as np

from edge_jepa.data.world.config import _FIXED_POINT_SHIFT, _SQUARE_HALF_SIDE, _TRIANGLE_CIRCUMRADIUS, _check_float
from edge_jepa.data.world.scene import _Occluder, _Scene, _Snap, _Trajectory

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
