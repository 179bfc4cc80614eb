"""Photometric normalization: a global brightness / exposure / white-balance change is not what the model should see.

Each frame, at the model's size (after the resize, before the ImageNet normalization), is brought into the
photometry of a running reference before the model sees it. Modes:

    gain            y_c = x_c * g_c per channel c, with g_c fitted so that the frame matches a reference image
                    (an exponential average of the frames, time constant `tau_s` source seconds) over the pixels
                    that did not change locally: iteratively reweighted, a pixel's weight 1 / (1 + (d / s)^2) where
                    d = |x g - reference| and s = OUTLIER_K x median d (at least OUTLIER_FLOOR grey levels)
    match           y_c = (x_c - m_c) * S_c / s_c + M_c: the whole frame's per-channel mean and std matched to
                    running averages of them (also cancels offsets, but a large object entering shifts every pixel)
    off (default)   the frames as they come

"gain" is the one to use on a camera with auto-exposure, but it is not the default: a whole scene replaced by another
with a brighter flat background is, pixel for pixel, mostly an exposure change too, and with "gain" the default model
found 1 of the 4 scene swaps of tests/test_stream_e2e.py (all 4 with "off").

An auto-exposure step, a slow ramp or a colour-temperature shift is a per-channel gain, so the frames of a window look
alike after it; the reference then follows the new exposure over `tau_s` (far slower than a window). An object
entering is left out of the fit ("gain"), so the model still sees it and nothing else moves. Measured against each
other and against a global-change gate: benchmarks/photometric.py, docs/photometric.md.
"""

from __future__ import annotations

import math

import numpy as np

PHOTOMETRIC_MODES = ("gain", "match", "off")  # see PhotometricNormalizer; "off": frames as they come
DEFAULT_PHOTOMETRIC = "off"  # opt-in: "gain" also normalizes a whole-scene swap (docs/camera-input.md)
TAU_S = 10.0  # time constant of the reference (s)
MAX_GAIN = 8.0  # gains are clipped to [1/MAX_GAIN, MAX_GAIN] (a flat frame, a lens cap: no noise blown up)
MIN_STD = 1.0  # grey levels: a channel flatter than this is treated as this flat
OUTLIER_K = 3.0  # "gain": a pixel weighs half when it differs from the reference by K x the median difference
OUTLIER_FLOOR = 6.0  # grey levels: ... or by this, if more
IRLS_STEPS = 3  # "gain": reweighting rounds
MIN_INLIERS = 0.3  # below this share of unchanged pixels the whole frame is used (the scene changed wholesale)


def check_photometric(mode: str | None) -> str:
    """The photometric mode (None: the default), or a ValueError naming the choices."""
    mode = DEFAULT_PHOTOMETRIC if mode is None else mode
    if mode not in PHOTOMETRIC_MODES:
        raise ValueError(f"unknown photometric mode {mode!r}; choose from {', '.join(PHOTOMETRIC_MODES)}")
    return mode


class PhotometricNormalizer:
    """Each frame's per-channel photometry matched to a running reference. Stateful: feed the frames of one stream
    in order (`t`: source seconds; None counts frames at `fps`); `reset` at a new stream or segment.

    mode "gain": y_c = x_c * g_c, g_c = mean of the reference image / mean of the frame, both weighted towards the
    pixels that did not change locally (weight 1 / (1 + (d / (OUTLIER_K x median d))^2), d = |frame matched globally
    - reference|); the reference image is an exponential average of the frames (`tau_s`). An exposure or
    white-balance change is a per-channel gain; an object entering is left out of the fit, so it changes nothing else.
    mode "match": per-channel mean and std of the whole frame matched to running averages of them (module
    docstring): also cancels offsets, but a large object entering shifts the whole frame.
    """

    def __init__(self, *, tau_s: float = TAU_S, fps: float = 30.0, mode: str = DEFAULT_PHOTOMETRIC):
        if not tau_s > 0:
            raise ValueError(f"tau_s must be > 0, got {tau_s}")
        self.tau_s, self.fps, self.mode = tau_s, fps, check_photometric(mode)
        self.reset()

    def reset(self) -> None:
        self.mean: np.ndarray | None = None  # reference M [3]
        self.std: np.ndarray | None = None  # reference S [3]
        self.image: np.ndarray | None = None  # reference image [S, S, 3] ("gain")
        self.t: float | None = None  # time of the last frame seen
        self.frames = 0
        self.inliers = 1.0  # share of the last frame's pixels used for the fit ("gain")

    def __call__(self, x: np.ndarray, t: float | None = None) -> np.ndarray:
        """x: float32 [S, S, 3] grey levels (0..255) -> the frame in the reference's photometry."""
        if self.mode == "off":
            return x
        t = self.frames / self.fps if t is None else float(t)
        if self.mode == "gain":
            return self._gain(x, t)
        m = x.mean(axis=(0, 1), dtype=np.float64)
        s = np.maximum(x.std(axis=(0, 1), dtype=np.float64), MIN_STD)
        self.frames += 1
        if self.mean is None:
            self.mean, self.std, self.t = m, s, t
            return x
        gain = np.clip(self.std / s, 1.0 / MAX_GAIN, MAX_GAIN)
        y = np.clip((x - m) * gain + self.mean, 0.0, 255.0).astype(np.float32)
        alpha = 1.0 - math.exp(-max(t - self.t, 0.0) / self.tau_s)
        self.mean = self.mean + alpha * (m - self.mean)
        self.std = self.std + alpha * (s - self.std)
        self.t = t
        return y

    def _gain(self, x: np.ndarray, t: float) -> np.ndarray:
        self.frames += 1
        if self.image is None:
            self.image, self.t = x.astype(np.float32, copy=True), t
            return x
        ref = self.image
        gain = ref.mean(axis=(0, 1)) / np.maximum(x.mean(axis=(0, 1)), MIN_STD)  # first guess: the whole frame
        for _ in range(IRLS_STEPS):  # reweighted: the pixels that fit the reference decide the gain
            diff = np.abs(x * gain - ref).mean(axis=2)  # [S, S]
            scale = max(OUTLIER_K * float(np.median(diff)), OUTLIER_FLOOR)
            w = (1.0 / (1.0 + (diff / scale) ** 2))[..., None]  # soft: a pixel near the limit cannot flip the gain
            self.inliers = float(w.mean())
            if self.inliers < MIN_INLIERS:
                w = np.ones_like(w)
            gain = (w * ref).sum(axis=(0, 1)) / np.maximum((w * x).sum(axis=(0, 1)), MIN_STD * w.sum())
        gain = np.clip(gain, 1.0 / MAX_GAIN, MAX_GAIN)
        y = np.clip(x * gain.astype(np.float32), 0.0, 255.0)
        alpha = 1.0 - math.exp(-max(t - self.t, 0.0) / self.tau_s)
        self.image = ref + np.float32(alpha) * (x - ref)
        self.t = t
        return y
