"""Camera-like scenes written as real video files (OpenCV): a static textured room or lot with sensor noise, a
car that drives in and parks, an arm that waves. Used by the detector's warm-up tests and
benchmarks/stream_warmup.py (the cases of issue 19: a scene that starts with activity, a car arriving inside
the first seconds, continuous waving followed by a real event)."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np


def _background(w: int, h: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    field = cv2.resize(rng.uniform(60, 190, (6, 8, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    img = np.clip(field, 0, 255)
    for _ in range(6):  # furniture, windows, road markings: static edges
        x, y = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 30))
        cv2.rectangle(img, (x, y), (x + int(rng.integers(20, 80)), y + int(rng.integers(15, 60))),
                      tuple(float(c) for c in rng.uniform(30, 220, 3)), -1)
    return img


def _car(img: np.ndarray, cx: float, cy: float, scale: float) -> None:
    w, h = int(70 * scale), int(34 * scale)
    x0, y0 = int(cx - w / 2), int(cy - h / 2)
    cv2.rectangle(img, (x0, y0), (x0 + w, y0 + h), (40, 40, 150), -1)  # body (BGR: red)
    cv2.rectangle(img, (x0 + w // 5, y0 + 4), (x0 + 4 * w // 5, y0 + h // 2), (200, 200, 170), -1)  # windows
    for wx in (x0 + w // 5, x0 + 4 * w // 5):
        cv2.circle(img, (wx, y0 + h), max(3, h // 4), (20, 20, 20), -1)


def _arm(img: np.ndarray, pivot: tuple[int, int], angle: float, length: int) -> None:
    x = int(pivot[0] + length * math.sin(angle))
    y = int(pivot[1] - length * math.cos(angle))
    cv2.line(img, pivot, (x, y), (120, 160, 210), max(6, length // 6))  # skin tone (BGR)
    cv2.circle(img, (x, y), max(6, length // 5), (110, 150, 205), -1)


def write_camera_scene(path: str | Path, *, seconds: float, fps: float = 30.0, size: tuple[int, int] = (320, 240),
                       cars: tuple[float, ...] = (), waving: tuple[float, float] | None = None, seed: int = 0,
                       noise: float = 2.0, arm: float = 0.45) -> Path:
    """An MP4 at `fps`: cars drive in from the left at each time in `cars` (1.5 s to park, then they stay), an arm
    waves (1.2 Hz, +-35 degrees, `arm` * the height long) from waving[0] to waving[1] s. Returns the path."""
    w, h = size
    path = Path(path)
    rng = np.random.default_rng(seed + 1)
    background = _background(w, h, seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"cannot write {path}")
    scale = w / 320
    try:
        for i in range(int(round(seconds * fps))):
            t = i / fps
            img = background.copy()
            for k, t0 in enumerate(cars):
                if t >= t0:
                    u = min(1.0, (t - t0) / 1.5)
                    ease = 1 - (1 - u) ** 2  # decelerates to a stop
                    park_x = w * (0.3 + 0.25 * (k % 3))
                    _car(img, -40 * scale + ease * (park_x + 40 * scale), h * (0.7 - 0.12 * (k % 2)), scale)
            if waving is not None and waving[0] <= t < waving[1]:
                _arm(img, (int(w * 0.8), h), math.radians(35) * math.sin(2 * math.pi * 1.2 * (t - waving[0])),
                     int(h * arm))
            img = np.clip(img + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8)
            writer.write(img)
    finally:
        writer.release()
    return path
