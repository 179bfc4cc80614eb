"""Opening bundles as Runners: dispatch, integrity checks, errors, and scoring like the source model."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

import edge_jepa
from edge_jepa.data import WorldConfig, render_long_video, write_mp4
from edge_jepa.export import export_bundle
from edge_jepa.runtime import Runner
from edge_jepa.runtime.bundle import BundleError, open_bundle, read_manifest
from edge_jepa.runtime.onnx_runner import OnnxRunner
from edge_jepa.surprise import SurpriseScorer
from edge_jepa.video import read_video
from tests.conftest import TINY


@pytest.fixture(scope="module")
def model():
    return edge_jepa.create(TINY, seed=0).eval()


@pytest.fixture(scope="module")
def bundle(model, tmp_path_factory):
    return export_bundle(model, "onnx", out=tmp_path_factory.mktemp("rt") / "onnx", verify_clips=1)


@pytest.fixture
def copy_of(bundle, tmp_path):
    return shutil.copytree(bundle, tmp_path / "copy")


def test_runner_open_dispatches_on_the_manifest(bundle):
    runner = Runner.open(bundle)
    assert isinstance(runner, OnnxRunner) and Runner.open(runner) is runner
    assert runner.context_idx.tolist() == [0, 1, 2, 3] and runner.target_idx.tolist() == [4, 5, 6, 7]
    assert "OnnxRunner" in repr(runner) and "onnx/fp32" in repr(runner)


def test_scores_of_an_exported_fp32_bundle_match_eager_on_the_same_video(bundle, model, tmp_path):
    scene = render_long_video(21, 3.0, WorldConfig(size=64, fps=10.0), [(1.5, "teleport")])
    path = write_mp4(scene.frames, tmp_path / "scene.mp4", fps=10.0)
    frames = read_video(path, fps=model.config.clip.fps).frames
    eager = edge_jepa.surprise_scores(model, frames)
    exported = edge_jepa.surprise_scores(bundle, frames)  # a bundle path works wherever a model does
    assert len(exported) == len(frames) == 30 and np.isfinite(exported[3:]).all()
    np.testing.assert_allclose(exported, eager, rtol=1e-4, equal_nan=True)
    scorer = SurpriseScorer(Runner.open(bundle))  # the incremental stream scorer too
    streamed = [scorer.push(f) for f in frames]
    assert streamed[:3] == [None] * 3
    np.testing.assert_allclose([r.score for r in streamed[3:]], eager[3:], rtol=1e-4)


def test_a_modified_file_is_refused(copy_of):
    manifest = json.loads((copy_of / "manifest.json").read_text())
    manifest["files"]["predict.onnx"]["sha256"] = "0" * 64  # the file no longer matches its recorded hash
    (copy_of / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="predict.onnx does not match its sha256"):
        Runner.open(copy_of)
    assert isinstance(open_bundle(copy_of, check_hashes=False), OnnxRunner)  # explicit opt-out
    (copy_of / "predict.onnx").unlink()
    with pytest.raises(BundleError, match="predict.onnx is missing"):
        open_bundle(copy_of)


def test_broken_manifests_are_named(copy_of, tmp_path):
    with pytest.raises(BundleError, match="not an export bundle"):
        read_manifest(tmp_path)
    manifest = json.loads((copy_of / "manifest.json").read_text())
    (copy_of / "manifest.json").write_text(json.dumps({**manifest, "bundle_format_version": 99}))
    with pytest.raises(BundleError, match="bundle format version 99 is not supported"):
        open_bundle(copy_of)
    (copy_of / "manifest.json").write_text(json.dumps({**manifest, "format": "tflite"}))
    with pytest.raises(BundleError, match="unknown export format 'tflite'"):
        open_bundle(copy_of)
    (copy_of / "manifest.json").write_text("{")
    with pytest.raises(BundleError, match="invalid JSON"):
        open_bundle(copy_of)


def test_wrong_shape_or_dtype_states_the_expected_shape(bundle):
    runner = Runner.open(bundle)
    with pytest.raises(ValueError, match=r"expects a clip \[B, 3, 4, 32, 32\].*got \(1, 3, 4, 64, 64\)"):
        runner.run(torch.zeros(1, 3, 4, 64, 64))
    with pytest.raises(ValueError, match=r"encode_window expects clip float32 \[1, 3, 4, 32, 32\].*got torch.float16"):
        runner.call("encode_window", torch.zeros(1, 3, 4, 32, 32, dtype=torch.float16))
    with pytest.raises(ValueError, match="unknown method 'decode'"):
        runner.call("decode", torch.zeros(1))
