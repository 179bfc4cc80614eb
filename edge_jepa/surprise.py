"""Surprise: how far the observed representation is from what the world model predicted.

For a window of T frames ending at frame f:
    context = encoder(first `context_frames` frames)                 (what the model has seen)
    predicted = predictor(context -> tokens of the last frames)       (what it expects next)
    observed = LayerNorm(encoder(all T frames))[target tokens]         (what happened)
    surprise(f) = mean |predicted - observed| over target tokens       (L1, as in V-JEPA's training loss)
The per-token errors form a map over the frame (a heatmap of *where* the surprise is). A window's surprise
is attributed to its last frame, so scores are causal: a stream knows the score of frame f at frame f.

A frame-causal model (`edge_jepa.models.world`) is scored by `FrameCausalScorer`: each frame is encoded once
on arrival, the predictor runs over the cached tokens of the previous T-1 frames, and frame f's surprise is
the error of its prediction (`scoring`: mean, max, nll or zmax over its tokens). `SurpriseScorer(model)`,
`surprise_trace` and `surprise_scores` pick it for such a model.

Both scorers take `photometric=` ("off", the default; "gain": each frame's per-channel gain matched to a running
reference over the pixels that did not change locally, so an exposure or white-balance change is no surprise;
"match": see edge_jepa.photometric) and `mask=`
(regions of interest: a RoiMask, a picture path or an array; masked tokens do not count, see edge_jepa.roi).
"""

from __future__ import annotations

import math
import os
import warnings
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from edge_jepa.models.vjepa2 import VJEPA2
from edge_jepa.photometric import PhotometricNormalizer, check_photometric
from edge_jepa.preprocess import IMAGENET_MEAN, IMAGENET_STD, check_frames, resize_frame
from edge_jepa.roi import RoiMask, as_mask
from edge_jepa.runtime.base import Runner, StepOutput
from edge_jepa.timing import torch_threads

_MEAN = np.asarray(IMAGENET_MEAN, np.float32) * 255.0
_INV_STD = 1.0 / (np.asarray(IMAGENET_STD, np.float32) * 255.0)


@dataclass
class SurpriseResult:
    frame_index: int  # the window's last frame (the frame the score is attributed to)
    score: float  # mean L1 over target tokens (a frame-causal model: its scorer's `scoring`)
    token_errors: np.ndarray  # [T', H', W'] per-token L1 over the target time steps
    log_scale: np.ndarray | None = None  # [T', H', W'] predicted log-scale of the errors (frame-causal models)
    mask: np.ndarray | None = None  # bool [H', W']: the tokens that count (a RoiMask; None: all of them)

    @property
    def heatmap(self) -> np.ndarray:
        """[H', W'] per-patch surprise (mean over the target time steps); 0 on masked tokens."""
        heat = self.token_errors.mean(axis=0)
        return heat if self.mask is None else np.where(self.mask, heat, 0.0).astype(heat.dtype)


def step_errors(out: StepOutput, target_idx: torch.Tensor) -> torch.Tensor:
    """Per-token L1 [B, Nt] between predicted and observed (LayerNorm-ed) target tokens."""
    observed = F.layer_norm(out.window_tokens, out.window_tokens.shape[-1:])[:, target_idx]
    return (out.predicted.float() - observed.float()).abs().mean(-1)


def frame_to_input(frame: np.ndarray, size: int, mode: str) -> np.ndarray:
    """One uint8 RGB frame -> normalized float32 [3, size, size] (the model's preprocessing, one frame)."""
    x = resize_frame(frame, size, mode).astype(np.float32)
    return ((x - _MEAN) * _INV_STD).transpose(2, 0, 1)


class _FrameInputs:
    """What both scorers do to a frame before the model (resize, photometric normalization, ImageNet normalization)
    and which tokens count (the ROI mask mapped onto the token grid for the frame's size)."""

    size: int
    mode: str

    def _init_inputs(self, photometric: str | None, mask, fps: float, patch: int) -> None:
        self.normalizer = PhotometricNormalizer(fps=fps, mode=check_photometric(photometric))
        self._patch = patch
        self.set_mask(mask)

    @property
    def photometric(self) -> str:
        """The photometric normalization: "off" (default), "gain" or "match" (edge_jepa.photometric)."""
        return self.normalizer.mode

    @photometric.setter
    def photometric(self, mode: str) -> None:
        self.normalizer.mode = check_photometric(mode)
        self.normalizer.reset()

    def set_mask(self, mask: RoiMask | str | os.PathLike | np.ndarray | None) -> None:
        """Watch only the regions of `mask` from the next frame on (None: everywhere)."""
        self.mask = as_mask(mask)
        self.keep: np.ndarray | None = None  # bool [gh, gw] for the size of the last frame prepared
        if self.mask is not None and self.mask.image is not None and not self.mask.ignore:  # fails here if no token
            self.keep = self.mask.tokens(self.size, self.size, self.size, self.mode, self._patch)

    def prepare(self, frame: np.ndarray, t: float | None = None) -> np.ndarray:
        """One uint8 RGB frame of the stream (in order; `t`: its time in seconds) -> the model's input
        float32 [3, S, S]; sets the kept tokens for its size."""
        frame = _check_frame(frame)
        if self.mask is not None:
            self.keep = self.mask.tokens(frame.shape[0], frame.shape[1], self.size, self.mode, self._patch)
        x = resize_frame(frame, self.size, self.mode).astype(np.float32)
        x = self.normalizer(x, t)
        if self.keep is not None and not self.keep.all():  # masked patches: flat, so their motion is no context
            p = self._patch
            hidden = np.repeat(np.repeat(~self.keep, p, axis=0), p, axis=1)  # [S, S] (grid * patch == size)
            x[hidden] = x[~hidden].mean(axis=0)
        return ((x - _MEAN) * _INV_STD).transpose(2, 0, 1)

    def _kept(self, errors: np.ndarray) -> np.ndarray:
        """The errors [..., gh, gw] of the tokens that count, flattened [..., K]."""
        flat = errors.reshape(*errors.shape[:-2], -1)
        return flat if self.keep is None else flat[..., self.keep.reshape(-1)]


class SurpriseScorer(_FrameInputs):
    """Incremental surprise on a stream: `push` frames (uint8 RGB, any resolution, at the model's fps).

    Every `stride` frames once T frames are buffered, `push` returns a SurpriseResult for the window ending
    at that frame; otherwise None. Frames are preprocessed once on arrival and kept in a ring buffer.
    Given a frame-causal model, `SurpriseScorer(model)` returns a `FrameCausalScorer`.
    """

    def __new__(cls, model=None, **kwargs):
        if cls is SurpriseScorer:
            causal = _frame_causal(model)
            if causal is not None:
                return FrameCausalScorer(causal, **kwargs)
        return super().__new__(cls)

    def __init__(self, model: VJEPA2 | Runner | str, *, stride: int = 1, fps: float | None = None,
                 photometric: str | None = None, mask: RoiMask | str | os.PathLike | np.ndarray | None = None):
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.runner = Runner.open(model)
        if fps is not None and abs(fps - self.runner.fps) > 1e-6:
            raise ValueError(f"{self.runner.config.name} is a window model for frames at {self.runner.fps:g} fps, "
                             f"got fps={fps:g}: resample the video to its rate, or use a frame-causal model")
        self.stride = stride
        clip = self.runner.config.clip
        self.frames_per_window, self.size, self.mode = clip.frames, clip.size, clip.preprocess
        layout = self.runner.layout
        gt, gh, gw = layout.grid
        self.target_shape = (gt - layout.context_grid[0], gh, gw)
        self._target_idx = layout.target_idx
        self.buffer: deque[np.ndarray] = deque(maxlen=self.frames_per_window)
        self.count = 0  # frames pushed since the last reset
        self._init_inputs(photometric, mask, self.runner.fps, self.runner.config.encoder.patch_size)

    @property
    def fps(self) -> float:
        return self.runner.fps

    @property
    def config(self):
        return self.runner.config

    @property
    def backend(self) -> str:
        return f"{self.runner.backend}/{self.runner.precision}"

    def __str__(self) -> str:
        return str(self.runner)

    def reset(self) -> None:
        self.buffer.clear()
        self.count = 0
        self.normalizer.reset()

    def push(self, frame: np.ndarray) -> SurpriseResult | None:
        self.buffer.append(self.prepare(frame))
        self.count += 1
        if len(self.buffer) < self.frames_per_window or (self.count - self.frames_per_window) % self.stride:
            return None
        return self.score_buffered(self.count - 1)

    def score_buffered(self, frame_index: int) -> SurpriseResult:
        """Score the window currently in the buffer (must be full)."""
        clip = torch.from_numpy(np.stack(self.buffer, axis=1)[None])  # [1, 3, T, S, S]
        return self.score_clips(clip, [frame_index])[0]

    def score_clips(self, clips: torch.Tensor, frame_indices: Sequence[int]) -> list[SurpriseResult]:
        """Score preprocessed windows [B, 3, T, S, S] (batched when the runner allows)."""
        errors = step_errors(self.runner.run(clips), self._target_idx)  # [B, Nt]
        if not torch.isfinite(errors).all():
            raise FloatingPointError(
                f"the {self.runner.backend} model produced NaN/inf for the window ending at frame "
                f"{frame_indices[0]}; check the input frames and the model ({self.runner})"
            )
        maps = errors.reshape(len(frame_indices), *self.target_shape).numpy()
        return [SurpriseResult(int(i), float(self._kept(m).mean()), m, mask=self.keep)
                for i, m in zip(frame_indices, maps, strict=True)]


class FrameCausalScorer(_FrameInputs):
    """Stream surprise of a frame-causal model: each new frame is encoded once, and frame f's surprise is the
    error of the prediction the model made for it from the frames before it.

    cache="rerun" (default for an eager model): the predictor re-runs over the cached tokens of the previous
    `frames_per_window - 1` frames (each prediction sees exactly one window, as in training on window-long clips;
    chosen on validation pairs, where it scores a little above "kv": benchmarks/results/world_pico_validation.json).
    cache="kv": the predictor keeps the keys/values of the last `frames_per_window - 1` frames and runs on the
    new frame's tokens only (one update = one frame through the encoder and the predictor, ~1/4 of the FLOPs;
    the step a device runs); its prediction of the next frame waits for it.
    `fps` is the rate the frames arrive at (default: the model's); the model places frames at their true times,
    so 10, 15 or 30 fps sources are scored as they come, never padded with repeats.

    `model` may also be a frame-causal bundle (`edge-jepa export` of a frame-causal model; its path or a
    `StreamStepRunner`): each frame is then one call of the bundle's `stream_step` (encoder and KV step at once,
    at the fps it was exported for); a bundle always runs the KV step.
    """

    CACHES = ("kv", "rerun")

    def __init__(self, model, *, stride: int = 1, scoring: str | None = None, fps: float | None = None,
                 cache: str | None = None, photometric: str | None = None,
                 mask: RoiMask | str | os.PathLike | np.ndarray | None = None):
        from edge_jepa.models.world import DEFAULT_SCORING, SCORINGS, TIME_UNIT
        from edge_jepa.runtime.stream_step import StreamStepRunner

        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        scoring = scoring or DEFAULT_SCORING
        if scoring not in SCORINGS:
            raise ValueError(f"unknown scoring {scoring!r}; choose from {', '.join(SCORINGS)}")
        if fps is not None and not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        if StreamStepRunner.is_stream_bundle(model):
            model = StreamStepRunner.open(model)
        self.stepper = model if isinstance(model, StreamStepRunner) else None
        cache = cache or ("kv" if self.stepper is not None else "rerun")  # eager: chosen on validation
        if cache not in self.CACHES:
            raise ValueError(f"unknown cache {cache!r}; choose from {', '.join(self.CACHES)}")
        if self.stepper is not None:
            if cache != "kv":
                raise ValueError(f"{self.stepper.path} is a stream-step bundle: it runs cache='kv' only")
            if fps is not None and abs(fps - self.stepper.fps) > 1e-6:
                raise ValueError(f"{self.stepper.path} was exported for frames at {self.stepper.fps:g} fps, got "
                                 f"fps={fps:g}: re-export it with --fps {fps:g}")
            self.model = None
        else:
            self.model = model.eval()
        self.config = model.config
        self.stride, self.scoring, self.cache_mode = stride, scoring, cache
        clip = model.config.clip
        self.frames_per_window, self.size, self.mode = clip.frames, clip.size, clip.preprocess
        self._fps = float(fps or (self.stepper.fps if self.stepper is not None else clip.fps))
        self._step = 1.0 / (self._fps * TIME_UNIT)  # time positions between two frames
        gh = gw = clip.size // model.config.encoder.patch_size
        self.target_shape = (1, gh, gw)
        self._init_inputs(photometric, mask, self._fps, model.config.encoder.patch_size)
        self.reset()

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def backend(self) -> str:
        return "eager/fp32" if self.stepper is None else f"{self.stepper.backend}/{self.stepper.precision}"

    def __str__(self) -> str:
        return (f"{self.config.name} (frame-causal, {self.backend}, {self._fps:g} fps, {self.scoring} over tokens, "
                f"{self.cache_mode} step)")

    def reset(self) -> None:
        self.tokens: deque[torch.Tensor] = deque(maxlen=self.frames_per_window - 1)  # rerun: [N, D] per frame
        self.kv = None  # kv: the predictor's cache
        self.next: tuple[torch.Tensor, torch.Tensor] | None = None  # kv: prediction, log-scale of the next frame
        self.count = 0
        self.normalizer.reset()
        if getattr(self, "stepper", None) is not None:
            self.stepper.reset()

    @torch.no_grad()
    def push(self, frame: np.ndarray) -> SurpriseResult | None:
        return self.push_input(self.prepare(frame))

    @torch.no_grad()
    def push_input(self, prep: np.ndarray) -> SurpriseResult | None:
        """`push` for a frame already preprocessed (frame_to_input) [3, S, S]."""
        x = torch.from_numpy(prep)[None, :, None]
        if self.stepper is not None:  # one bundle call: this frame's tokens and the prediction of the next
            z, pred, log_b = self.stepper.step(x)
            return self._push_tokens(z, (pred, log_b))
        return self._push_tokens(self.model.encode_frames(x)[0, 0])  # [N, D]: this frame, encoded once

    def _push_tokens(self, z: torch.Tensor, stepped: tuple[torch.Tensor, torch.Tensor] | None = None
                     ) -> SurpriseResult | None:
        ctx = self.frames_per_window - 1
        result = None
        if self.count >= ctx and (self.count - ctx) % self.stride == 0:
            if self.cache_mode == "kv":
                pred, log_b = self.next
            else:
                pred, log_b = (t[0, -1] for t in self.model.predict(torch.stack(list(self.tokens))[None], self._fps))
            result = self._result(self.count, pred, log_b, z)
        if stepped is not None:
            self.next = stepped
        elif self.cache_mode == "kv":
            pred, log_b, self.kv = self.model.predictor.step(z[None], self._step, self.model.token_grid(), self.kv)
            self.next = (pred[0], log_b[0])
        else:
            self.tokens.append(z)
        self.count += 1
        return result

    @torch.no_grad()
    def encode(self, prep: np.ndarray) -> torch.Tensor:
        """One preprocessed frame [3, S, S] (frame_to_input) -> its tokens [N, D] (cache them: each frame once)."""
        return self.model.encode_frames(torch.from_numpy(prep)[None, :, None])[0, 0]

    @torch.no_grad()
    def score_tokens(self, tokens: Sequence[torch.Tensor], frame_index: int) -> SurpriseResult:
        """Surprise of the last of a window's per-frame tokens [N, D], predicted from the ones before it by a
        re-run of the predictor over them (the stream loop's step: frames may have been dropped in between)."""
        if len(tokens) < 2:
            raise ValueError(f"a window needs at least 2 frames, got {len(tokens)}")
        ctx = torch.stack(list(tokens[-self.frames_per_window : -1]))[None]  # [1, <= T-1, N, D]
        pred, log_b = self.model.predict(ctx, self._fps)
        return self._result(frame_index, pred[0, -1], log_b[0, -1], tokens[-1])

    def _result(self, index: int, pred: torch.Tensor, log_b: torch.Tensor, observed: torch.Tensor) -> SurpriseResult:
        from edge_jepa.models.world import token_errors, token_surprise

        err = token_errors(pred, observed)  # [N]
        if not torch.isfinite(err).all():
            raise FloatingPointError(f"the frame-causal model produced NaN/inf at frame {index}; check the input")
        if self.keep is None:
            score = float(token_surprise(err, log_b, self.scoring))
        else:  # the model's scoring over the tokens that count
            keep = torch.from_numpy(self.keep.reshape(-1))
            score = float(token_surprise(err[keep], log_b[keep], self.scoring))
        return SurpriseResult(int(index), score, err.reshape(self.target_shape).numpy(),
                              log_scale=log_b.reshape(self.target_shape).numpy(), mask=self.keep)

    @torch.no_grad()
    def trace(self, frames: np.ndarray | Sequence[np.ndarray], *, stride: int | None = None,
              batch_size: int = 64) -> list[SurpriseResult]:
        """SurpriseResults of every frame with a full context (every `stride`-th) of a whole video, from the
        start of the stream (the scorer is reset); frames are encoded in batches."""
        arr = check_frames(frames)
        self.reset()
        self.stride = stride or self.stride
        if len(arr) < self.frames_per_window:
            warnings.warn(f"{len(arr)} frame(s) are fewer than one window of the model ({self.frames_per_window} "
                          f"frames at {self._fps:g} fps): nothing was scored (every score is NaN); give at least "
                          f"{self.frames_per_window} frames", RuntimeWarning, stacklevel=3)
            return []
        if self.stepper is not None:  # a bundle's step takes one frame at a time
            results = [self.push(f) for f in arr]
            return [r for r in results if r is not None]
        x = torch.from_numpy(np.stack([self.prepare(f) for f in arr], axis=1))  # [3, F, S, S]
        z = torch.cat([self.model.encode_frames(x[None, :, i : i + batch_size])[0]
                       for i in range(0, len(arr), batch_size)])  # [F, N, D]
        if self.cache_mode == "kv":
            results = [self._push_tokens(t) for t in z]
            return [r for r in results if r is not None]
        ctx = self.frames_per_window - 1
        ends = list(range(ctx, len(arr), self.stride))
        results = []
        for i in range(0, len(ends), batch_size):
            chunk = ends[i : i + batch_size]
            pred, log_b = self.model.predict(torch.stack([z[e - ctx : e] for e in chunk]), self._fps)
            results += [self._result(e, pred[j, -1], log_b[j, -1], z[e]) for j, e in enumerate(chunk)]
        self.tokens.extend(z[-ctx:])  # a stream can go on with push
        self.count = len(arr)
        return results


def as_scorer(model, **kwargs) -> SurpriseScorer | FrameCausalScorer:
    """`model` if it is already a scorer, else the scorer for it (SurpriseScorer picks the kind)."""
    return model if isinstance(model, SurpriseScorer | FrameCausalScorer) else SurpriseScorer(model, **kwargs)


SOURCE_RATES = (5.0, 60.0)  # a frame-causal model scores a source at its own rate inside this range


def scorer_for_source(model, source_fps: float | None) -> SurpriseScorer | FrameCausalScorer:
    """The scorer for a stream whose frames arrive at `source_fps` (None: unknown). A window model works at its own
    rate (the stream resamples to it); a frame-causal model takes the source's rate as it is, when known and
    inside SOURCE_RATES, so no frame is repeated or dropped to fit the model (a frame-causal bundle: the fps it was
    exported for)."""
    scorer = as_scorer(model)
    lo, hi = SOURCE_RATES
    if isinstance(scorer, FrameCausalScorer) and scorer.stepper is None and source_fps and lo <= source_fps <= hi \
            and abs(source_fps - scorer.fps) > 1e-6:
        return FrameCausalScorer(scorer.model, fps=source_fps, scoring=scorer.scoring, cache=scorer.cache_mode,
                                 photometric=scorer.photometric, mask=scorer.mask)
    return scorer


def _frame_causal(model):
    """The frame-causal model behind `model` (a model, or a path/'default' that loads to one), else None."""
    if isinstance(model, str | os.PathLike):
        import json

        from edge_jepa.runtime.stream_step import StreamStepRunner

        if StreamStepRunner.is_stream_bundle(model):
            return StreamStepRunner.open(model)

        from edge_jepa.checkpoints import load, model_path
        from edge_jepa.models.persist import CONFIG_FILE

        meta = model_path(model) / CONFIG_FILE
        try:  # only edge-jepa directories hold frame-causal models; the others load as window models
            kind = json.loads(meta.read_text())["config"].get("kind", "window") if meta.is_file() else "window"
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            kind = "window"  # let the loader report what is wrong with the file
        return load(model) if kind == "frame_causal" else None
    config = getattr(model, "config", None)
    if isinstance(model, torch.nn.Module) and config is not None and config.kind == "frame_causal":
        return model
    from edge_jepa.runtime.stream_step import StreamStepRunner

    if isinstance(model, StreamStepRunner):
        return model
    return None


def surprise_trace(model: VJEPA2 | Runner | str | SurpriseScorer, frames: np.ndarray | Sequence[np.ndarray], *,
                   stride: int = 1, batch_size: int = 8, fps: float | None = None,
                   threads: int | None = 1, photometric: str | None = None,
                   mask: RoiMask | str | os.PathLike | np.ndarray | None = None) -> list[SurpriseResult]:
    """SurpriseResults of every window (ending every `stride` frames) of a whole video, batched.

    fps: the frames' rate, for frame-causal models (default: the model's); window models need their own rate.
    threads: torch CPU threads while scoring, restored after (None: torch's setting). 1 by default: these small
    models gain little from a second thread, and on a loaded machine 2 threads collapsed to 4-11 windows/s
    against 112-131 with one (issue 19).
    photometric, mask: see the module docstring (given a scorer, its own settings hold).
    """
    with torch_threads(threads):
        return _surprise_trace(model, frames, stride=stride, batch_size=batch_size, fps=fps,
                               photometric=photometric, mask=mask)


def _surprise_trace(model: VJEPA2 | Runner | str | SurpriseScorer, frames: np.ndarray | Sequence[np.ndarray], *,
                    stride: int, batch_size: int, fps: float | None, photometric: str | None,
                    mask: RoiMask | str | os.PathLike | np.ndarray | None) -> list[SurpriseResult]:
    if isinstance(model, FrameCausalScorer):
        return model.trace(frames, stride=stride)
    causal = None if isinstance(model, SurpriseScorer) else _frame_causal(model)
    if causal is not None:
        return FrameCausalScorer(causal, stride=stride, fps=fps, photometric=photometric, mask=mask).trace(frames)
    scorer = model if isinstance(model, SurpriseScorer) else SurpriseScorer(model, stride=stride, fps=fps,
                                                                            photometric=photometric, mask=mask)
    arr = check_frames(frames)
    T = scorer.frames_per_window
    if len(arr) < T:
        warnings.warn(f"{len(arr)} frame(s) are fewer than one window of the model ({T} frames at "
                      f"{scorer.fps:g} fps): nothing was scored (every score is NaN); give at least {T} frames",
                      RuntimeWarning, stacklevel=3)
        return []
    scorer.normalizer.reset()  # a whole video: its photometric reference starts with its first frame
    inputs = np.stack([scorer.prepare(f) for f in arr], axis=1)  # [3, F, S, S]
    ends = list(range(T - 1, len(arr), stride))
    limit = scorer.runner.max_batch or batch_size
    results: list[SurpriseResult] = []
    for i in range(0, len(ends), limit):
        chunk = ends[i : i + limit]
        clips = torch.from_numpy(np.stack([inputs[:, e - T + 1 : e + 1] for e in chunk]))
        results += scorer.score_clips(clips, chunk)
    return results


def surprise_scores(model: VJEPA2 | Runner | str, frames: np.ndarray | Sequence[np.ndarray], *,
                    stride: int = 1, fps: float | None = None, threads: int | None = 1,
                    photometric: str | None = None,
                    mask: RoiMask | str | os.PathLike | np.ndarray | None = None) -> np.ndarray:
    """Surprise attributed to each frame: float [F], NaN until the first window is complete.

    frames: uint8 RGB [F, H, W, 3] of any resolution, at the model's frame rate (`model.config.clip.fps`);
    a frame-causal model also takes other rates (`fps=`). With stride > 1, frames between two scored windows
    carry the latest score. threads: torch CPU threads while scoring (see `surprise_trace`).
    """
    arr = check_frames(frames)
    scores = np.full(len(arr), np.nan, dtype=np.float64)
    for r in surprise_trace(model, arr, stride=stride, fps=fps, threads=threads, photometric=photometric, mask=mask):
        scores[r.frame_index : r.frame_index + stride] = r.score
    return scores


def max_surprise(scores: np.ndarray) -> float:
    valid = scores[np.isfinite(scores)]
    return float(valid.max()) if len(valid) else math.nan


def _check_frame(frame: np.ndarray) -> np.ndarray:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        desc = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise ValueError(f"expected a uint8 RGB frame [H, W, 3], got {desc}"
                         + (" (grey-scale: convert to RGB)" if isinstance(frame, np.ndarray) and frame.ndim == 2
                            else ""))
    return frame
