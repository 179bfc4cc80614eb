"""Shared fixtures: tiny models that run in milliseconds, the shared real videos."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import edge_jepa
from edge_jepa.models.config import ClipConfig, EncoderConfig, ModelConfig, PredictorConfig

SHARED_VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "videos"

TINY = ModelConfig(
    name="test-tiny",
    encoder=EncoderConfig(width=32, depth=1, heads=2),
    predictor=PredictorConfig(width=32, depth=1, heads=2, num_mask_tokens=2),
    clip=ClipConfig(frames=4, size=32, fps=10.0, context_frames=2, preprocess="resize"),
)


@pytest.fixture
def tiny_model():
    return edge_jepa.create(TINY, seed=0).eval()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "tiny"
    edge_jepa.create(TINY, seed=0).save(path)
    return path


@pytest.fixture(scope="session")
def tiny_bundles(tmp_path_factory):
    """bundle(format, precision): the tiny model (TINY, seed 0) exported once per session and verified on 2 clips,
    shared by the parametrized runner test and the per-format files (exports are the slow part)."""
    from edge_jepa.export import export_bundle

    model = edge_jepa.create(TINY, seed=0).eval()
    root = tmp_path_factory.mktemp("bundles")
    cache: dict[tuple[str, str], Path] = {}

    def bundle(fmt: str, precision: str) -> Path:
        if (fmt, precision) not in cache:
            cache[fmt, precision] = export_bundle(model, fmt, precision, out=root / f"{fmt}-{precision}",
                                                  verify_clips=2)
        return cache[fmt, precision]

    return bundle


@pytest.fixture(scope="module")
def one_inference_thread():
    """Torch on one thread: the test machines share 2 cores with other jobs, where 2 threads spin and stall."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def shared_video(name: str) -> Path:
    path = SHARED_VIDEOS / name
    if not path.exists():
        pytest.skip(f"shared video {path} is absent (the ../shared folder beside the checkout holds the real clips)")
    return path
