"""Write V-JEPA 2 weights in the layouts they are released in, from a transformers VJEPA2Model.

Test helper: builds checkpoints with the *real* key layouts (Hugging Face `save_pretrained`, and the
official facebookresearch/vjepa2 `.pt`) from small random configs, since released weights cannot be
downloaded here.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from transformers import VJEPA2Config, VJEPA2Model


def tiny_hf_model(seed: int = 0, **overrides) -> VJEPA2Model:
    """A tiny transformers VJEPA2Model with every parameter (mask tokens included) perturbed."""
    kw = dict(crop_size=32, frames_per_clip=4, hidden_size=96, num_attention_heads=3, num_hidden_layers=2,
              pred_hidden_size=48, pred_num_attention_heads=2, pred_num_hidden_layers=2, pred_num_mask_tokens=3,
              mlp_ratio=2.0, pred_mlp_ratio=3.0)
    kw.update(overrides)
    config = VJEPA2Config(**kw)
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = VJEPA2Model(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def official_state(hf: VJEPA2Model) -> dict[str, dict[str, torch.Tensor]]:
    """The official release layout: {'encoder'|'target_encoder'|'predictor': {'module.backbone.<key>': t}}."""
    enc: dict[str, torch.Tensor] = {}
    pred: dict[str, torch.Tensor] = {}
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    for k, v in hf.state_dict().items():
        v = v.clone()
        if k.startswith("pooler."):
            continue
        part, k = k.split(".", 1)
        k = k.replace("embeddings.patch_embeddings.", "patch_embed.")
        k = k.replace("embeddings.predictor_embeddings.", "predictor_embed.")
        k = re.sub(r"^layer\.", "predictor_blocks." if part == "predictor" else "blocks.", k)
        k = k.replace(".attention.proj.", ".attn.proj.")
        if part == "encoder":
            k = k.replace("layernorm.", "norm.")
        else:
            k = k.replace("layernorm.", "predictor_norm.").replace("proj.", "predictor_proj.", 1) \
                if k.startswith(("layernorm.", "proj.")) else k
        if k == "embeddings.mask_tokens":
            for i, t in enumerate(v):
                pred[f"mask_tokens.{i}"] = t.reshape(1, 1, -1)
            continue
        if m := re.fullmatch(r"(.*)\.attention\.(query|key|value)\.(weight|bias)", k):
            qkv.setdefault(f"{part}|{m.group(1)}.attn.qkv.{m.group(3)}", {})[m.group(2)] = v
            continue
        (enc if part == "encoder" else pred)[k] = v
    for key, parts in qkv.items():
        part, k = key.split("|")
        (enc if part == "encoder" else pred)[k] = torch.cat([parts["query"], parts["key"], parts["value"]])
    return {
        "encoder": {f"module.backbone.{k}": v for k, v in enc.items()},
        "predictor": {f"module.backbone.{k}": v for k, v in pred.items()},
    }


def write_official(hf: VJEPA2Model, path: Path) -> Path:
    """Save as the release does: the EMA `target_encoder` is the one the hub loader uses; `encoder` (the
    online encoder) is written with different weights so that picking the wrong one fails the parity test."""
    state = official_state(hf)
    online = {k: v + 0.5 for k, v in state["encoder"].items()}
    target = dict(state["encoder"])
    target["module.backbone.pos_embed"] = torch.zeros(1, 8, hf.config.hidden_size)  # unused with RoPE
    torch.save({"encoder": online, "target_encoder": target, "predictor": state["predictor"], "epoch": 10,
                "loss": 0.1, "batch_size": 8, "lr": 1e-4}, path)
    return path
