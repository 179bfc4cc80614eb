"""Numerical parity with transformers' VJEPA2Model (the reference implementation), in every layout."""

from __future__ import annotations

import pytest
import torch

import edge_jepa
from tests.layouts import tiny_hf_model, write_official

ATOL = 1e-4


def _hf_outputs(hf, clip: torch.Tensor, ctx: torch.Tensor, tgt: torch.Tensor):
    with torch.no_grad():
        out = hf(clip.permute(0, 2, 1, 3, 4), context_mask=[ctx], target_mask=[tgt])  # HF wants [B, T, C, H, W]
    return out.last_hidden_state, out.predictor_output.last_hidden_state


def _ours(model, clip, ctx, tgt, **kw):
    with torch.no_grad():
        tokens = model.encoder(clip)
        pred = model.predictor(tokens[:, ctx[0]], ctx, tgt, **kw)
    return tokens, pred


def _check(model, hf, frames: int, size: int, **kw) -> None:
    torch.manual_seed(frames)
    clip = torch.randn(2, 3, frames, size, size)
    n = (frames // 2) * (size // 16) ** 2
    n_ctx = n // 2
    ctx = torch.arange(n_ctx).expand(2, -1)
    tgt = torch.arange(n_ctx, n).expand(2, -1)
    ref_tokens, ref_pred = _hf_outputs(hf, clip, ctx, tgt)
    tokens, pred = _ours(model, clip, ctx, tgt, **kw)
    assert tokens.shape == ref_tokens.shape == (2, n, hf.config.hidden_size)
    assert pred.shape == ref_pred.shape == (2, n - n_ctx, hf.config.hidden_size)
    assert (tokens - ref_tokens).abs().max().item() <= ATOL
    assert (pred - ref_pred).abs().max().item() <= ATOL


@pytest.mark.parametrize(
    "overrides",
    [
        {},  # head dims 32 / 24: leftover rotary dims and none
        dict(hidden_size=128, num_attention_heads=2, pred_hidden_size=64, pred_num_attention_heads=2,
             crop_size=48, qkv_bias=False),  # head dims 64 / 32 as the release, no qkv bias
    ],
)
def test_hf_directory_parity(tmp_path, overrides):
    hf = tiny_hf_model(**overrides)
    hf.save_pretrained(tmp_path / "hf")
    model = edge_jepa.load(tmp_path / "hf")
    size = hf.config.crop_size  # transformers derives RoPE rows/cols from crop_size: clips must match it
    for frames in (4, 8):
        _check(model, hf, frames, size)


def test_official_layout_parity(tmp_path):
    hf = tiny_hf_model(hidden_size=128, num_attention_heads=2, pred_hidden_size=64, pred_num_attention_heads=2)
    path = write_official(hf, tmp_path / "vjepa2-tiny.pt")
    model = edge_jepa.load(path)  # size inferred from the weights alone
    assert model.config.encoder.width == 128 and model.config.encoder.depth == 2
    assert model.config.predictor.num_mask_tokens == 3
    for frames in (4, 6):
        _check(model, hf, frames, 32, grid=(2, 2))


def test_official_layout_with_explicit_config(tmp_path):
    hf = tiny_hf_model()  # 3 encoder heads: not inferable from weights, so name the config
    cfg = edge_jepa.load(_save_hf(hf, tmp_path)).config
    model = edge_jepa.load(write_official(hf, tmp_path / "x.pt"), config=cfg)
    _check(model, hf, 4, 32)


def _save_hf(hf, tmp_path):
    hf.save_pretrained(tmp_path / "hf")
    return tmp_path / "hf"


def test_save_load_roundtrip_is_exact(tmp_path):
    model = edge_jepa.load(_save_hf(tiny_hf_model(), tmp_path))
    model.save(tmp_path / "ours")
    again = edge_jepa.load(tmp_path / "ours")
    assert again.config == model.config
    for (k, a), (k2, b) in zip(model.state_dict().items(), again.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b), k
    clip = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.encoder(clip), again.encoder(clip))


def test_gradients_flow_through_encoder_and_predictor():
    model = edge_jepa.create("vit_pico").train()
    clip = torch.randn(2, 3, 8, 64, 64)
    tokens = model.encoder(clip)
    ctx, tgt = model.surprise_indices(8, 64)
    pred = model.predictor(tokens[:, ctx], ctx.expand(2, -1), tgt.expand(2, -1), grid=(4, 4))
    pred.abs().mean().backward()
    for name, p in model.named_parameters():
        if name.startswith("predictor.mask_tokens"):
            continue  # only the used mask token gets a gradient
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    assert model.predictor.mask_tokens.grad[1].abs().sum() > 0
