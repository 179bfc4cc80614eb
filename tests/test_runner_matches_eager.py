"""Every (format, precision) the format table offers: exported, opened with Runner.open, run like eager.

One test for all rows of edge_jepa.formats.FORMATS; a row this machine cannot export or run is skipped with
the row's own "unavailable because" reason (CoreML prediction needs macOS, the CoreML ExecuTorch delegate an
Apple build of the runtime). The per-format test files keep only what is specific to their format.
"""

from __future__ import annotations

import pytest
import torch

import edge_jepa
from edge_jepa.formats import FORMATS, MIN_COSINE
from edge_jepa.quantize import calibration_clips
from edge_jepa.runtime import EagerRunner, Runner
from tests.conftest import TINY

CASES = [(f.name, p) for f in FORMATS.values() for p in f.precisions]
OUTPUTS = ("context_tokens", "window_tokens", "predicted")


@pytest.fixture(scope="module")
def model():
    return edge_jepa.create(TINY, seed=0).eval()


def test_the_cases_cover_the_table():
    assert {f for f, _ in CASES} == set(FORMATS) and len(CASES) == sum(len(f.precisions) for f in FORMATS.values())


@pytest.mark.parametrize("fmt, precision", CASES, ids=[f"{f}-{p}" for f, p in CASES])
def test_runner_matches_eager(fmt, precision, model, tiny_bundles):
    row = FORMATS[fmt]
    reason = row.export_unavailable() or row.run_unavailable()
    if reason:
        pytest.skip(reason)
    runner = Runner.open(tiny_bundles(fmt, precision))
    assert (runner.backend, runner.precision) == (fmt, precision) and runner.config == model.config
    clip = calibration_clips(model.config, 1, seed_base=5)[0]
    got, ref = runner.run(clip), EagerRunner(model).run(clip)
    for name in OUTPUTS:
        a, b = getattr(got, name), getattr(ref, name)
        assert a.shape == b.shape and a.dtype == torch.float32, name
        if precision == "fp32":
            assert torch.allclose(a, b, atol=1e-4), name
        cosine = torch.nn.functional.cosine_similarity(a, b, dim=-1).mean()
        assert cosine >= MIN_COSINE[precision], (name, float(cosine))
