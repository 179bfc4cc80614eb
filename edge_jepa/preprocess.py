"""The release's evaluation transform: resize the short side to size*256/224, center-crop, normalize."""

from __future__ import annotations

import os
from collections.abc import Sequence

import cv2
import numpy as np
import torch

from edge_jepa._verbs import callable_module

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def check_frames(frames: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """Validate uint8 RGB frames (list or [T, H, W, 3]) and return them as one [T, H, W, 3] array."""
    if isinstance(frames, str | os.PathLike | bytes):
        raise TypeError(f"frames: got the path {str(frames)!r}, expected uint8 RGB frames [T, H, W, 3]; read the "
                        "video first: edge_jepa.video.read_video(path, fps=model.config.clip.fps).frames")
    if frames is None or not isinstance(frames, np.ndarray | Sequence) and not hasattr(frames, "__iter__"):
        raise TypeError(f"frames: got {type(frames).__name__}, expected uint8 RGB frames [T, H, W, 3] (an array or "
                        "a list of [H, W, 3] arrays, e.g. edge_jepa.video.read_video(path).frames)")
    if isinstance(frames, np.ndarray):
        arr = frames
    else:
        frames = list(frames)
        if not frames:
            raise ValueError("no frames given")
        shapes = {np.shape(f) for f in frames}
        if len(shapes) > 1:
            first = np.shape(frames[0])
            bad = next(i for i, f in enumerate(frames) if np.shape(f) != first)
            raise ValueError(f"frames differ in shape: frame 0 is {first}, frame {bad} is {np.shape(frames[bad])}")
        arr = np.stack(frames)
    if arr.ndim == 3 or (arr.ndim == 4 and arr.shape[-1] == 1):
        to_rgb = "np.repeat(frames[..., None], 3, -1)" if arr.ndim == 3 else "np.repeat(frames, 3, -1)"
        raise ValueError(
            f"frames of shape {arr.shape} look grey-scale; edge-jepa needs RGB [T, H, W, 3] "
            f"(convert with {to_rgb} or cv2.cvtColor(f, cv2.COLOR_GRAY2RGB))"
        )
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"frames must be RGB [T, H, W, 3], got shape {arr.shape}")
    if arr.dtype != np.uint8:
        hint = " (floats in 0..1: (frames * 255).round().astype(np.uint8))" if arr.dtype.kind == "f" else ""
        raise ValueError(f"frames must be uint8 RGB (0..255), got dtype {arr.dtype}{hint}")
    if arr.shape[0] == 0 or arr.shape[1] < 2 or arr.shape[2] < 2:
        raise ValueError(f"frames of shape {arr.shape} are empty or too small")
    return arr


def crop_geometry(h: int, w: int, size: int) -> tuple[int, int, int, int]:
    """The release's transform for an h x w frame: (resized height, resized width, top, left) of the crop."""
    scale = int(size * 256 / 224) / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    return nh, nw, (nh - size) // 2, (nw - size) // 2


def resize_crop(frame: np.ndarray, size: int) -> np.ndarray:
    """One uint8 [H, W, 3] frame -> [size, size, 3]: short side to int(size * 256 / 224), center crop."""
    h, w = frame.shape[:2]
    nh, nw, top, left = crop_geometry(h, w, size)
    interp = cv2.INTER_AREA if min(nh, nw) < min(h, w) else cv2.INTER_LINEAR  # min(nh, nw) is the short side
    frame = cv2.resize(frame, (nw, nh), interpolation=interp)
    return frame[top : top + size, left : left + size]


def normalize(frames: np.ndarray) -> torch.Tensor:
    """uint8 [T, S, S, 3] -> float32 clip [1, 3, T, S, S] with ImageNet mean/std."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 1, 1, 3)
    std = torch.tensor(IMAGENET_STD).view(1, 1, 1, 3)
    x = (x - mean) / std
    return x.permute(3, 0, 1, 2).unsqueeze(0).contiguous()


def resize_frame(frame: np.ndarray, size: int, mode: str = "center_crop") -> np.ndarray:
    """One uint8 [H, W, 3] frame -> [size, size, 3] by `mode` ("center_crop" as the release, or "resize")."""
    if mode == "center_crop":
        return resize_crop(frame, size)
    if mode == "resize":
        h, w = frame.shape[:2]
        interp = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_LINEAR
        return cv2.resize(frame, (size, size), interpolation=interp)
    raise ValueError(f"unknown preprocess mode {mode!r}; use 'center_crop' or 'resize'")


def preprocess(frames: np.ndarray | Sequence[np.ndarray], size: int, mode: str = "center_crop") -> torch.Tensor:
    """uint8 RGB frames (list or [T, H, W, 3]) -> normalized clip float32 [1, 3, T, size, size].

    mode "center_crop" is the release's eval transform; "resize" squashes the whole frame to size x size.
    """
    if not isinstance(size, int | np.integer) or size < 16:
        raise ValueError(f"size must be an int >= 16, got {size!r}")
    arr = check_frames(frames)
    if mode == "resize" and arr.shape[1:3] == (size, size):
        return normalize(arr)
    return normalize(np.stack([resize_frame(f, int(size), mode) for f in arr]))



def clip_tensor(batch: np.ndarray, size: int, mode: str) -> torch.Tensor:
    """uint8 clips [B, T, H, W, 3] -> normalized float [B, 3, T, size, size] (the model's preprocessing, batched)."""
    if batch.shape[2:4] != (size, size) or mode != "resize":
        batch = np.stack([[resize_frame(f, size, mode) for f in clip] for clip in batch])
    x = torch.from_numpy(np.ascontiguousarray(batch)).float().div_(255.0)
    x = (x - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    return x.permute(0, 4, 1, 2, 3).contiguous()


callable_module(__name__, preprocess)  # `edge_jepa.preprocess(frames, size)` (see edge_jepa._verbs)
