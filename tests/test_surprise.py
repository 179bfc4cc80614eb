"""Surprise scoring: per-frame scores, incremental scorer, runner contract, bad input."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import torch

import edge_jepa
from edge_jepa.data import WorldConfig, generate_clip
from edge_jepa.runtime import Runner
from edge_jepa.surprise import SurpriseScorer, surprise_scores, surprise_trace


@pytest.fixture
def video():
    return generate_clip(3, WorldConfig(size=64, num_frames=12, fps=10.0)).frames


def test_scores_are_causal_per_frame(tiny_model, video):
    scores = surprise_scores(tiny_model, video)
    T = tiny_model.config.clip.frames
    assert scores.shape == (len(video),) and scores.dtype == np.float64
    assert np.isnan(scores[: T - 1]).all() and np.isfinite(scores[T - 1 :]).all()
    assert (scores[T - 1 :] > 0).all()


def test_stride_fills_between_windows(tiny_model, video):
    full = surprise_scores(tiny_model, video)
    strided = surprise_scores(tiny_model, video, stride=3)
    T = tiny_model.config.clip.frames
    assert np.allclose(strided[T - 1], full[T - 1])
    assert strided[T] == strided[T - 1] and np.isclose(strided[T + 2], full[T + 2])


def test_incremental_scorer_matches_batch_and_any_resolution(tiny_model, video):
    batch = surprise_trace(tiny_model, video)
    scorer = SurpriseScorer(tiny_model)
    online = [r for f in video if (r := scorer.push(f)) is not None]
    assert [r.frame_index for r in online] == [r.frame_index for r in batch]
    assert np.allclose([r.score for r in online], [r.score for r in batch], atol=1e-5)
    assert online[0].heatmap.shape == (2, 2)  # 32 px / 16 px patches
    big = np.repeat(np.repeat(video, 3, axis=1), 2, axis=2)  # 192 x 128: another resolution and aspect
    assert np.isfinite(surprise_scores(tiny_model, big)[3:]).all()


def test_runner_contract_and_shape_errors(tiny_model):
    runner = Runner.open(tiny_model)
    out = runner.run(torch.randn(2, 3, 4, 32, 32))
    assert out.context_tokens.shape == (2, 4, 32) and out.window_tokens.shape == (2, 8, 32)
    assert out.predicted.shape == (2, 4, 32)
    with pytest.raises(ValueError, match=r"expects a clip \[B, 3, 4, 32, 32\]"):
        runner.run(torch.randn(1, 3, 8, 32, 32))
    with pytest.raises(ValueError, match="float32"):
        runner.run(torch.randn(1, 3, 4, 32, 32, dtype=torch.float64))


def test_bad_frames_are_named(tiny_model, video):
    with pytest.raises(ValueError, match=r"grey-scale.*np\.repeat\(frames\[\.\.\., None\], 3, -1\)"):
        surprise_scores(tiny_model, video[..., 0])
    with pytest.raises(ValueError, match=r"grey-scale.*np\.repeat\(frames, 3, -1\)"):  # [T, H, W, 1]
        surprise_scores(tiny_model, video[..., :1])
    with pytest.raises(ValueError, match=r"uint8.*floats in 0\.\.1"):
        surprise_scores(tiny_model, video.astype(np.float32))
    with pytest.raises(ValueError, match="grey-scale"):
        SurpriseScorer(tiny_model).push(video[0, :, :, 0])


def test_nan_model_raises_instead_of_garbage(tiny_model, video):
    with torch.no_grad():
        tiny_model.predictor.proj.weight[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="NaN"):
        surprise_scores(tiny_model, video)


def test_model_clip_layout_is_in_saved_config(tiny_model_dir, video):
    model = edge_jepa.load(tiny_model_dir)
    assert model.config.clip.frames == 4 and model.config.clip.context_frames == 2
    assert np.allclose(surprise_scores(tiny_model_dir, video)[3:], surprise_scores(model, video)[3:])


def test_saved_model_files_get_normal_permissions(tiny_model, tmp_path):
    """Atomic writes go through mkstemp (0600); the saved model must be readable like any created file."""
    old = os.umask(0o022)
    try:
        tiny_model.save(tmp_path / "m")
    finally:
        os.umask(old)
    for name in ("model.safetensors", "edge_jepa.json"):
        assert stat.S_IMODE((tmp_path / "m" / name).stat().st_mode) == 0o644, name
