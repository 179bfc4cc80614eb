"""Eager quantization schemes (torchao), the PT2E path, and the fidelity report."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

import edge_jepa
from edge_jepa.evaluation import spearman as _spearman
from edge_jepa.export.wrappers import PairRotation, surprise_graphs
from edge_jepa.quantize import (
    SCHEMES,
    Fidelity,
    calibration_clips,
    fidelity_report,
    pt2e_quantize,
    quantize,
    state_size,
    token_cosine,
)
from edge_jepa.runtime import EagerRunner
from tests.conftest import TINY

# A model whose Linears dominate its size (TINY's is mostly the tubelet Conv2d, which torchao leaves alone).
WIDE = TINY.replace(name="test-wide", encoder={"width": 64, "depth": 2})
MIN_COSINE = {"int8-dynamic": 0.99, "int8-weight": 0.99, "int4-weight": 0.98, "fp16": 0.999}


@pytest.fixture(scope="module")
def model():
    return edge_jepa.create(WIDE, seed=0).eval()


@pytest.fixture(scope="module")
def clips(model):
    return calibration_clips(model.config, 2, seed_base=123)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_scheme_keeps_tokens_and_the_call(model, clips, scheme):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    q = quantize(model, scheme)
    assert q.quantization == scheme and q is not model
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the original is untouched
    runner, ref = EagerRunner(q, precision=scheme), EagerRunner(model)
    for clip in clips:
        out, expected = runner.run(clip), ref.run(clip)
        for name in ("context_tokens", "window_tokens", "predicted"):
            got = getattr(out, name)
            assert got.dtype == torch.float32 and got.shape == getattr(expected, name).shape
            assert token_cosine(got, getattr(expected, name))[0] >= MIN_COSINE[scheme], (scheme, name)


def test_quantized_weights_are_smaller(model):
    fp32 = state_size(model)
    sizes = {s: state_size(quantize(model, s)) for s in SCHEMES}
    assert sizes["fp16"] < 0.55 * fp32
    assert sizes["int8-weight"] < 0.5 * fp32 and sizes["int8-dynamic"] < 0.5 * fp32
    assert sizes["int4-weight"] < sizes["int8-weight"]
    linear = quantize(model, "int8-weight").encoder.blocks[0].attn.qkv.weight
    assert type(linear).__name__ == "Int8Tensor"


def test_unknown_scheme_lists_the_known_ones(model):
    with pytest.raises(ValueError, match="unknown quantization scheme 'int3'; choose one of int8-dynamic, int8-weight"):
        quantize(model, "int3")


def test_calibration_clips_are_real_preprocessed_scenes(model):
    a, b = calibration_clips(model.config, 2)
    assert a.shape == (1, 3, 4, 32, 32) and a.dtype == torch.float32
    assert not torch.equal(a, b) and -3 < float(a.min()) < float(a.max()) < 3  # ImageNet-normalized pixels
    assert torch.equal(a, calibration_clips(model.config, 1)[0])  # deterministic


def test_pt2e_int8_dynamic_and_static(model, clips):
    graph = surprise_graphs(model, "xnnpack")["encode_window"]
    example = (torch.zeros(1, 3, 4, 32, 32),)
    linears = sum(type(m) is torch.nn.Linear for m in graph.modules())  # PairRotation's F.linear is not one

    def ops(q):
        return Counter(str(n.target).split(".")[1] + "." + str(n.target).split(".")[2]
                       for n in q.graph.nodes if n.op == "call_function" and "quantized_decomposed" in str(n.target))

    dynamic = pt2e_quantize(graph, example, exclude=(PairRotation,))
    static = pt2e_quantize(graph, example, [(c,) for c in clips], exclude=(PairRotation,),
                           dynamic=("encoder.patch_embed.proj",))
    # dynamic: a run-time scale per Linear input; static: fixed (calibrated) scales, but the tubelet embedding
    d, s = ops(dynamic), ops(static)
    assert d["choose_qparams.tensor"] == linears and d["quantize_per_tensor.default"] == 0
    assert s["choose_qparams.tensor"] == 1 and s["quantize_per_tensor.default"] >= linears - 1
    assert d["dequantize_per_channel.default"] == s["dequantize_per_channel.default"] == linears  # weights
    with torch.no_grad():
        for q in (dynamic, static):
            assert token_cosine(q(clips[0]), graph(clips[0]))[0] > 0.99
    # the static graph (the export default is dynamic, lowered in test_export_executorch) lowers completely too
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

    from edge_jepa.export.executorch import delegation_report, lower

    tiny = surprise_graphs(edge_jepa.create(TINY, seed=0), "xnnpack")["encode_context"]  # 1 block: quicker
    small = pt2e_quantize(tiny, (clips[0][:, :, :2],), [(clips[0][:, :, :2],)], exclude=(PairRotation,),
                          dynamic=("encoder.patch_embed.proj",))
    lowered = lower({"forward": torch.export.export(small, (clips[0][:, :, :2],))}, [XnnpackPartitioner()])
    assert delegation_report(lowered)["forward"]["non_delegated_ops"] == {}
    with pytest.raises(ValueError, match="at least one calibration input"):
        pt2e_quantize(graph, example, [])


def test_fidelity_report_rows(model):
    rows = fidelity_report(model, ["int8-weight"], clips=2, video_seconds=3.0, pairs_per_type=1,
                           violations=["teleport", "vanish"])
    assert [r.scheme for r in rows] == ["fp32", "int8-weight"]
    base = rows[0]
    assert isinstance(base, Fidelity) and base.backend == "eager/fp32"
    assert base.window_cosine == pytest.approx(1.0) and base.surprise_spearman == pytest.approx(1.0)
    for r in rows[1:]:
        assert 0.99 <= r.window_cosine <= 1.0 + 1e-6 and 0.99 <= r.predicted_cosine <= 1.0 + 1e-6
        assert r.surprise_spearman > 0.9 and 0.0 <= r.surprise_auroc <= 1.0 and r.latency_ms > 0
        assert r.size_bytes < base.size_bytes
    assert not math.isnan(base.surprise_auroc) and set(base.to_dict()) >= {"scheme", "surprise_auroc", "size_bytes"}


# ------------------------------------------------------------------------------------------ frame-causal models


@pytest.fixture(scope="module")
def world():
    from tests.test_world_model import WORLD_TINY

    return edge_jepa.create(WORLD_TINY, seed=0).eval()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_frame_causal_model_quantizes_through_its_forward_and_its_kv_step(world, scheme):
    import copy

    from edge_jepa.data.synthetic import WorldConfig, generate_clip
    from edge_jepa.surprise import FrameCausalScorer, surprise_scores

    before = {k: v.clone() for k, v in world.state_dict().items()}
    q = quantize(world, scheme)
    assert q.quantization == scheme and all(torch.equal(before[k], v) for k, v in world.state_dict().items())
    assert state_size(q) < 0.6 * state_size(world)  # the weights really are smaller
    stream = calibration_clips(world.config, 1, seed_base=321, frames=10)[0]  # 10 frames: the window (4) slides
    with torch.no_grad():
        (z, pred, _), (qz, qpred, qlog_b) = world(stream), q(stream)
    assert qz.dtype == qpred.dtype == qlog_b.dtype == torch.float32
    assert token_cosine(qz, z)[0] >= MIN_COSINE[scheme] and token_cosine(qpred, pred)[0] >= MIN_COSINE[scheme]
    # the KV stream step (predictor.step, a method: no forward hooks) runs quantized too, also in a deep copy
    frames = generate_clip(4, WorldConfig(size=32, num_frames=12, fps=30.0)).frames
    ref = surprise_scores(FrameCausalScorer(world, cache="kv"), frames)
    for model in (q, copy.deepcopy(q)):
        assert model.predictor.step.__self__ is model.predictor
        got = surprise_scores(FrameCausalScorer(model, cache="kv"), frames)
        assert np.isfinite(got[3:]).all() and _spearman(got[3:], ref[3:]) > 0.9
        np.testing.assert_allclose(got[3:], ref[3:], rtol=0.1 if scheme == "int4-weight" else 0.03)
