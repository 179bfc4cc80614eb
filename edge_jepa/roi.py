"""Regions of interest: the parts of the frame the surprise score watches (a TV, a tree, a road can be ignored).

A `RoiMask` is a picture (white = watch, black = ignore; any size, stretched to the source frame) and/or polygons
in source pixels: watched = (the picture's white, else the "watch" polygons, else everything) minus the "ignore"
polygons. It is mapped onto the model's token grid the way frames are:

    mask at the source's size -> the model's preprocessing (resize, or center crop) -> share of each patch watched
    token kept  <=>  at least MIN_COVER of its patch is watched

Masked tokens do not count: the score is recomputed over the kept tokens (the mean for a window model, the
model's scoring for a frame-causal one) and the heatmap reads 0 there (`SurpriseResult.heatmap`). Their patches are
also filled flat (the mean colour of the watched ones) before the model, so motion there (a TV, a tree) is no
context that the kept tokens' predictions could stumble on.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

MIN_COVER = 0.5  # a token counts when at least this share of its patch is watched

Polygon = Sequence[tuple[float, float]]


class MaskError(ValueError):
    """A mask file or polygon that cannot be used (the message says which and what to do)."""


class RoiMask:
    """Where to watch. Build with `RoiMask.load(path)` (a picture or a JSON file of polygons), `RoiMask(image)`
    (an array: bright = watch) or `RoiMask(watch=[[(x, y), ...], ...], ignore=[...])` (polygons in source pixels).

    `tokens(height, width, size, mode, patch)` -> bool [gh, gw]: the kept tokens for a source frame of that size.
    """

    def __init__(self, image: np.ndarray | None = None, *, watch: Sequence[Polygon] = (),
                 ignore: Sequence[Polygon] = (), name: str = "mask"):
        self.name = name
        self.image = None if image is None else _binary(np.asarray(image), name)
        self.watch, self.ignore = (_polygons(p, name) for p in (watch, ignore))
        if self.image is None and not self.watch and not self.ignore:
            raise MaskError(f"{name}: give a mask picture or at least one polygon")
        if self.image is not None and self.watch:
            raise MaskError(f"{name}: give the regions to watch as a picture or as polygons, not both (ignore "
                            "polygons can be added to either)")
        if self.image is not None and not self.image.any():
            raise MaskError(f"{name}: the mask is all black (black = ignore): nothing would be watched; paint the "
                            "regions to watch white")
        if self.image is not None and self.image.all():
            warnings.warn(f"{name}: the mask is all white: every region is watched (as without a mask)",
                          RuntimeWarning, stacklevel=2)
        self._cache: dict[tuple, np.ndarray] = {}

    # -- construction ----------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | os.PathLike) -> RoiMask:
        """A mask picture (PNG, JPEG, ...: white = watch) or a .json file: {"watch": [[[x, y], ...], ...]} or
        {"ignore": [...]} (polygons in source pixels)."""
        path = Path(path)
        if not path.is_file():
            raise MaskError(f"{path}: no such mask file; give a picture (white = watch, black = ignore) or a JSON "
                            "file of polygons")
        if path.suffix.lower() == ".json":
            return cls._from_json(path)
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None or image.size == 0:
            raise MaskError(f"{path}: not a picture OpenCV can read; give a PNG/JPEG/BMP mask (white = watch, "
                            "black = ignore) or a .json file of polygons")
        if image.ndim == 3 and image.shape[2] == 4:  # transparent = ignore, like black
            image = np.where(image[:, :, 3:] > 127, image[:, :, :3], 0)
        return cls(image, name=str(path))

    @classmethod
    def _from_json(cls, path: Path) -> RoiMask:
        try:
            spec = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise MaskError(f"{path}: not valid JSON ({e}); expected {{\"watch\": [[[x, y], ...], ...]}} or "
                            "{\"ignore\": [...]}") from None
        if not isinstance(spec, dict) or not set(spec) & {"watch", "ignore"} or set(spec) - {"watch", "ignore"}:
            raise MaskError(f"{path}: expected {{\"watch\": [...], \"ignore\": [...]}} (either or both) holding "
                            "polygons [[[x, y], ...], ...] in source pixels")
        polys = {}
        for key in ("watch", "ignore"):
            try:
                polys[key] = [[(float(x), float(y)) for x, y in poly] for poly in spec.get(key, [])]
            except (TypeError, ValueError):
                raise MaskError(f"{path}: \"{key}\" must be a list of polygons, each a list of [x, y] points in "
                                "source pixels") from None
        return cls(watch=polys["watch"], ignore=polys["ignore"], name=str(path))

    @classmethod
    def parse_polygon(cls, text: str) -> list[tuple[float, float]]:
        """"x,y x,y x,y ..." (source pixels) -> points; MaskError on anything else."""
        points = []
        for item in text.replace(";", " ").split():
            try:
                x, y = (float(v) for v in item.split(","))
            except ValueError:
                raise MaskError(f"polygon {text!r}: {item!r} is not a point x,y; write the corners as "
                                "\"x,y x,y x,y ...\" in source pixels") from None
            points.append((x, y))
        if len(points) < 3:
            raise MaskError(f"polygon {text!r}: {len(points)} point(s); a polygon needs at least 3 (\"x,y x,y x,y\")")
        return points

    # -- where the model looks -------------------------------------------------------------------------

    def pixels(self, height: int, width: int) -> np.ndarray:
        """bool [height, width]: True where the source frame is watched."""
        if self.image is not None:
            img = self.image.astype(np.uint8) * 255
            watched = cv2.resize(img, (width, height), interpolation=cv2.INTER_NEAREST) > 127
        else:
            watched = self._fill(self.watch, height, width) if self.watch else np.ones((height, width), bool)
        if self.ignore:
            watched &= ~self._fill(self.ignore, height, width)
        return watched

    def _fill(self, polygons: list[np.ndarray], height: int, width: int) -> np.ndarray:
        inside = np.zeros((height, width), np.uint8)
        for p in polygons:
            if (p < -0.5).any() or (p[:, 0] > width).any() or (p[:, 1] > height).any():
                warnings.warn(f"{self.name}: a polygon reaches outside the {width}x{height} source frame; only its "
                              "part inside counts", RuntimeWarning, stacklevel=4)
            cv2.fillPoly(inside, [np.round(p).astype(np.int32)], 1)
        return inside > 0

    def coverage(self, height: int, width: int, size: int, mode: str, patch: int) -> np.ndarray:
        """float [gh, gw]: the share of each patch of the model's view that is watched."""
        from edge_jepa.preprocess import resize_frame

        watched = self.pixels(height, width).astype(np.uint8) * 255
        view = resize_frame(np.repeat(watched[:, :, None], 3, axis=2), size, mode)[:, :, 0].astype(np.float32) / 255
        g = size // patch
        return view[: g * patch, : g * patch].reshape(g, patch, g, patch).mean(axis=(1, 3))

    def tokens(self, height: int, width: int, size: int, mode: str, patch: int) -> np.ndarray:
        """bool [gh, gw]: the tokens that count for a source frame of height x width (MaskError if none)."""
        key = (height, width, size, mode, patch)
        if key not in self._cache:
            cover = self.coverage(height, width, size, mode, patch)
            keep = cover >= MIN_COVER - 1e-6
            if not keep.any():
                g = cover.shape[0]
                raise MaskError(
                    f"{self.name}: the watched region covers no token of the model's {g}x{g} grid on a {width}x"
                    f"{height} source (a token counts when {MIN_COVER:.0%} of its 1/{g} x 1/{g} patch of the model's "
                    f"view is watched; the best covers {cover.max():.0%}); widen the white region")
            self._cache[key] = keep
        return self._cache[key]

    def __repr__(self) -> str:
        parts = ["picture"] if self.image is not None else []
        parts += [f"{len(p)} {k} polygon(s)" for k, p in (("watch", self.watch), ("ignore", self.ignore)) if p]
        return f"RoiMask({self.name}: {', '.join(parts)})"


def as_mask(mask: RoiMask | str | os.PathLike | np.ndarray | None) -> RoiMask | None:
    """A RoiMask from a RoiMask, a file path or an array (None: no mask)."""
    if mask is None or isinstance(mask, RoiMask):
        return mask
    if isinstance(mask, np.ndarray):
        return RoiMask(mask)
    return RoiMask.load(mask)


def _polygons(polygons: Sequence[Polygon], name: str) -> list[np.ndarray]:
    out = []
    for i, p in enumerate(polygons):
        arr = np.asarray(p, np.float64)
        if arr.ndim != 2 or arr.shape[1] != 2 or len(arr) < 3 or not np.isfinite(arr).all():
            raise MaskError(f"{name}: polygon {i + 1} is not 3 or more finite points x,y (got {np.shape(p)}); give "
                            "its corners in source pixels")
        out.append(arr)
    return out


def _binary(image: np.ndarray, name: str) -> np.ndarray:
    """bool [H, W] from a grey, RGB(A) or bool picture: True where bright (> half the range)."""
    if image.ndim == 3:
        image = image[:, :, :3].max(axis=2) if image.shape[2] >= 3 else image[:, :, 0]
    if image.ndim != 2 or image.shape[0] < 1 or image.shape[1] < 1:
        raise MaskError(f"{name}: a mask must be a 2-D picture [H, W] (or [H, W, 3]), got shape {image.shape}")
    if image.dtype == bool:
        return image
    top = 1.0 if image.dtype.kind == "f" and image.max() <= 1.0 else (65535 if image.dtype == np.uint16 else 255)
    return image > top / 2
