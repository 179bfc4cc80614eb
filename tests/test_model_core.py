"""Model core: shapes on any grid, op sets, FLOPs, export-friendliness, preprocessing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import edge_jepa
from edge_jepa.models import CONFIGS, set_op_set
from edge_jepa.models.encoder import conv2d_to_conv3d_weight


@pytest.fixture(scope="module")
def pico():
    return edge_jepa.create("vit_pico").eval()


@pytest.mark.parametrize("shape", [(1, 3, 2, 16, 16), (2, 3, 8, 64, 96), (1, 3, 6, 48, 32)])
def test_encoder_any_grid_no_rebuild(pico, shape):
    B, _, T, H, W = shape
    with torch.no_grad():
        tokens = pico.encoder(torch.randn(shape))
    assert tokens.shape == (B, (T // 2) * (H // 16) * (W // 16), pico.config.encoder.width)


def test_tubelet_conv2d_equals_release_conv3d(pico):
    w2 = pico.encoder.patch_embed.proj.weight
    conv3d = torch.nn.Conv3d(3, w2.shape[0], (2, 16, 16), stride=(2, 16, 16))
    with torch.no_grad():
        conv3d.weight.copy_(conv2d_to_conv3d_weight(w2, 2))
        conv3d.bias.copy_(pico.encoder.patch_embed.proj.bias)
        clip = torch.randn(2, 3, 4, 32, 48)
        ref = conv3d(clip).flatten(2).transpose(1, 2)  # [B, N, D], time-row-column order
        assert torch.allclose(pico.encoder.patch_embed(clip), ref, atol=1e-5)


def test_bad_clip_shapes_explain(pico):
    with pytest.raises(ValueError, match=r"multiple of 2"):
        pico.encoder(torch.randn(1, 3, 3, 32, 32))
    with pytest.raises(ValueError, match=r"channels last"):
        pico.encoder(torch.randn(1, 8, 32, 32, 3))
    with pytest.raises(ValueError, match=r"context_idx has 3 indices"):
        pico.predictor(torch.randn(1, 4, 128), torch.arange(3)[None], torch.arange(3, 6)[None])


def test_plain_and_fused_op_sets_agree():
    model = edge_jepa.create("vit_pico").eval()
    clip = torch.randn(1, 3, 8, 96, 96)
    ctx, tgt = model.surprise_indices()
    context = torch.randn(1, len(ctx), 128)
    with torch.no_grad():
        a = model.encoder(clip), model.predictor(context, ctx[None], tgt[None])
        set_op_set(model, plain_attention=True, decomposed_layernorm=True)
        b = model.encoder(clip), model.predictor(context, ctx[None], tgt[None])
    assert torch.allclose(a[0], b[0], atol=1e-5) and torch.allclose(a[1], b[1], atol=1e-5)


def test_flops_match_torch_flop_counter():
    pico = set_op_set(edge_jepa.create("vit_pico").eval(), plain_attention=True, decomposed_layernorm=False)
    f = pico.flops(frames=8, size=96)  # (plain attention: the counter does not see into CPU fused SDPA)
    clip = torch.randn(1, 3, 8, 96, 96)
    ctx, tgt = pico.surprise_indices(frames=8, size=96)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        pico.encoder(clip)
    measured = fc.get_total_flops()
    assert abs(measured - f.window_encoder) / f.window_encoder < 0.02
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        pico.predictor(torch.randn(1, len(ctx), 128), ctx[None], tgt[None], grid=(6, 6))
    assert abs(fc.get_total_flops() - f.predictor) / f.predictor < 0.05


def test_released_sizes_param_counts():
    # Encoder parameter counts of the released checkpoints (ViT-L ~303M, ViT-H ~631M, ViT-g ~1012M).
    expected = {"vit_large": 303e6, "vit_huge": 631e6, "vit_giant": 1012e6}
    with torch.device("meta"):
        for name, n in expected.items():
            model = edge_jepa.VJEPA2(CONFIGS[name])
            assert abs(model.num_params("encoder") - n) / n < 0.01, name


def test_export_keeps_tensors_at_most_5d(pico):
    clip = torch.randn(1, 3, 8, 96, 96)
    set_op_set(pico, plain_attention=True, decomposed_layernorm=True)
    try:
        ep = torch.export.export(pico.encoder, (clip,))
    finally:
        set_op_set(pico, plain_attention=False, decomposed_layernorm=False)
    ranks = [len(n.meta["val"].shape) for n in ep.graph.nodes if isinstance(n.meta.get("val"), torch.Tensor)]
    assert ranks and max(ranks) <= 5
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert not any("conv3d" in t or "convolution" in t and "3d" in t for t in targets)
    assert torch.allclose(ep.module()(clip), pico.encoder(clip), atol=1e-5)


def test_preprocess_release_transform():
    frames = np.random.default_rng(0).integers(0, 256, (6, 120, 200, 3), dtype=np.uint8)
    clip = edge_jepa.preprocess(frames, 64)
    assert clip.shape == (1, 3, 6, 64, 64) and clip.dtype == torch.float32
    white = edge_jepa.preprocess(np.full((2, 50, 80, 3), 255, np.uint8), 32)
    assert torch.allclose(white[0, :, 0, 0, 0], torch.tensor([(1 - 0.485) / 0.229, (1 - 0.456) / 0.224,
                                                              (1 - 0.406) / 0.225]), atol=1e-5)
    same_list = edge_jepa.preprocess(list(frames), 64)
    assert torch.equal(clip, same_list)


@pytest.mark.parametrize(
    "frames, match",
    [
        (np.zeros((4, 32, 32), np.uint8), "grey-scale"),
        (np.zeros((4, 32, 32, 3), np.float32), "uint8"),
        ([np.zeros((32, 32, 3), np.uint8), np.zeros((30, 32, 3), np.uint8)], "frame 1"),
        (np.zeros((4, 32, 32, 4), np.uint8), r"RGB \[T, H, W, 3\]"),
    ],
)
def test_preprocess_rejects_bad_frames(frames, match):
    with pytest.raises(ValueError, match=match):
        edge_jepa.preprocess(frames, 32)


def test_vit_pico_t1_predicts_the_last_frame_of_its_window():
    """One-frame tubelets: 8 token steps per 8-frame window; the surprise target is the 8th frame's 4x4 tokens."""
    model = edge_jepa.create("vit_pico_t1").eval()
    assert model.token_grid() == (8, 4, 4)
    ctx, tgt = model.surprise_indices()
    assert len(ctx) == 112 and tgt.tolist() == list(range(112, 128))
    pico = edge_jepa.create(CONFIGS["vit_pico"])
    assert model.flops().total < 1.3 * pico.flops().total and model.num_params() < pico.num_params() / 1.9
    with torch.inference_mode():
        context = model.encoder(torch.randn(1, 3, 7, 64, 64))  # the 7 context frames alone
        pred = model.predictor(context, ctx[None], tgt[None])
    assert context.shape == (1, 112, 96) and pred.shape == (1, 16, 96)


def test_at_clip_is_the_same_weights_on_another_clip(pico):
    assert pico.at_clip() is pico and pico.at_clip(pico.config.clip.frames) is pico  # nothing changes
    c = pico.config.clip
    longer = pico.at_clip(frames=2 * c.frames, size=2 * c.size, fps=2 * c.fps)
    assert longer.config.clip.frames == 2 * c.frames and longer.config.clip.size == 2 * c.size
    assert longer.config.clip.context_frames == 2 * c.context_frames  # the context keeps the model's share
    assert longer.config.clip.fps == 2 * c.fps and longer.config.encoder == pico.config.encoder
    assert all(torch.equal(a, b) for a, b in zip(longer.state_dict().values(), pico.state_dict().values(), strict=True))
    assert longer.training == pico.training and longer.layout().grid == (c.frames, c.size // 8, c.size // 8)
    with torch.device("meta"):
        meta = edge_jepa.create("vit_large", seed=None)
    assert next(meta.at_clip(frames=8, size=64).parameters()).is_meta  # weightless stays weightless
    with pytest.raises(ValueError, match="does not fit"):
        pico.at_clip(frames=c.frames + 1)
