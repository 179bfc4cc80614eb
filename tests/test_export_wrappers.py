"""The export graphs compute exactly what the model computes, in both op sets, on any clip layout."""

from __future__ import annotations

import pytest
import torch

import edge_jepa
from edge_jepa.export.wrappers import LinearTubeletEmbed, surprise_graphs
from edge_jepa.models.layout import ClipLayout
from tests.conftest import TINY

# head dims 16 (4 dims left unrotated), 20 (2, with 3 rotary pairs per axis) and 24 (none)
CONFIGS = [TINY, TINY.replace(name="hd20", encoder={"width": 40, "heads": 2}, predictor={"width": 40, "heads": 2}),
           TINY.replace(name="hd24", encoder={"width": 48, "heads": 2}, clip={"frames": 6, "context_frames": 4})]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
@pytest.mark.parametrize("op_set", ["fused", "xnnpack"])
def test_graphs_equal_the_model(config, op_set):
    model = edge_jepa.create(config, seed=1).eval()
    layout = ClipLayout.of(model)
    graphs = surprise_graphs(model, op_set)
    clip = torch.randn(*layout.input_shapes()["encode_window"])
    ctx_idx, tgt_idx = model.surprise_indices()
    with torch.no_grad():
        context = model.encoder(clip[:, :, : layout.context_frames])
        expected = {"encode_context": context, "encode_window": model.encoder(clip),
                    "predict": model.predictor(context, ctx_idx[None], tgt_idx[None])}
        got = {"encode_context": graphs["encode_context"](clip[:, :, : layout.context_frames]),
               "encode_window": graphs["encode_window"](clip), "predict": graphs["predict"](context)}
    for method, shape in layout.output_shapes().items():
        assert got[method].shape == shape
        torch.testing.assert_close(got[method], expected[method], atol=2e-5, rtol=1e-4, msg=method)


def test_graphs_leave_the_model_alone():
    model = edge_jepa.create(TINY, seed=0).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    graphs = surprise_graphs(model, "xnnpack")
    assert graphs["encode_window"].encoder is not model.encoder
    assert graphs["encode_context"].encoder is graphs["encode_window"].encoder  # one copy, shared weights
    assert type(model.encoder.patch_embed).__name__ == "TubeletEmbed"
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="unknown op set 'fast'"):
        surprise_graphs(model, "fast")


def test_linear_tubelet_embed_equals_the_conv():
    embed = edge_jepa.create(TINY, seed=2).encoder.patch_embed
    clip = torch.randn(2, 3, 4, 48, 32)
    with torch.no_grad():
        torch.testing.assert_close(LinearTubeletEmbed(embed)(clip), embed(clip), atol=1e-5, rtol=1e-5)
