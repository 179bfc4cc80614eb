"""Load V-JEPA 2 weights from every layout they come in: `edge_jepa.load(source)`.

Layouts:
- official release `.pt`/`.pth` (facebookresearch/vjepa2): dicts `encoder`, `target_encoder`, `predictor`
  with `module.`/`backbone.` prefixes, fused qkv, a Conv3d patch embed, `mask_tokens.<i>`. Like the
  release's hub loader we take the encoder from `target_encoder` (the EMA encoder) when present.
- Hugging Face directory (`config.json` + `*.safetensors`, as `VJEPA2Model.save_pretrained` writes it):
  separate query/key/value, `predictor.embeddings.mask_tokens [M, 1, 1, Dp]`.
- edge-jepa directory (`edge_jepa.json` + `model.safetensors`, written by `VJEPA2.save`).
- `"default"` (alias `"world"`): the frame-causal world model shipped inside the package (`edge_jepa.models.world`);
  `"window"`: the window model shipped beside it (vit_pico, the released checkpoints' layout).

Only `torch.load(weights_only=True)` and safetensors are used: no pickled code is ever executed.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor

from edge_jepa.models.config import CONFIGS, ClipConfig, EncoderConfig, ModelConfig, PredictorConfig
from edge_jepa.models.encoder import conv3d_to_conv2d_weight
from edge_jepa.models.vjepa2 import CONFIG_FILE, VJEPA2, WEIGHTS_FILE, build

WORLD_MODEL_DIR = Path(__file__).parent / "assets" / "world"  # frame-causal world_pico: the default
WINDOW_MODEL_DIR = Path(__file__).parent / "assets" / "window"  # window vit_pico
DEFAULT_MODEL_DIR = WORLD_MODEL_DIR
# names of the models inside the package: "world" is an alias of "default"
EMBEDDED = {"default": DEFAULT_MODEL_DIR, "world": WORLD_MODEL_DIR, "window": WINDOW_MODEL_DIR}


def model_path(source: str | os.PathLike) -> Path:
    """The directory of an embedded model's name ("default" = "world", "window"), else `source` as a path."""
    return EMBEDDED.get(str(source)) or Path(source).expanduser()


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not match the architecture it claims."""


def load(source: str | os.PathLike, *, config: ModelConfig | str | None = None) -> VJEPA2:
    """Load a model (eval mode) from `"default"`/`"world"`/`"window"`, an official `.pt`, an HF dir or an edge-jepa dir.

    The size is inferred from the weights/config. `config` overrides the inference (a registered name or
    a ModelConfig), for checkpoints of non-registered sizes whose head count the weights cannot tell.
    """
    path = model_path(source)
    if not path.exists():
        if str(source) in EMBEDDED:
            raise CheckpointError(
                f"the embedded {source!r} model is missing from this install ({path}); reinstall edge-jepa "
                f"or rebuild it with `python -m edge_jepa.train.default_model --which {source}`"
            )
        hint = f" ({source!r} is a config name: use edge_jepa.create({source!r}) for a fresh model)" \
            if str(source) in CONFIGS else ""
        raise FileNotFoundError(
            f"{path}: no such file or directory; expected an official .pt/.pth checkpoint, a Hugging Face "
            f"model directory, an edge-jepa model directory or an embedded model ('default', 'world', 'window'){hint}"
        )
    override = CONFIGS[config] if isinstance(config, str) else config
    if path.is_dir():
        if (path / CONFIG_FILE).exists():
            cfg, state = _read_edge_jepa(path)
        elif (path / "config.json").exists():
            cfg, state = _read_hf_dir(path)
        elif artifacts := sorted(p.name for p in path.iterdir() if p.suffix in (".pte", ".onnx", ".mlpackage")):
            raise CheckpointError(
                f"{path}: looks like an export bundle ({', '.join(artifacts[:3])}) but its manifest.json is "
                "missing: restore it or re-export the bundle with `edge-jepa export`"
            )
        else:
            raise CheckpointError(
                f"{path}: directory holds neither manifest.json (an export bundle), {CONFIG_FILE} (edge-jepa "
                "format) nor config.json + *.safetensors (Hugging Face format)"
            )
    elif path.suffix == ".safetensors":
        state = _read_safetensors(path)
        state = _from_hf(state) if any(k.startswith(("encoder.embeddings.", "vjepa2.")) for k in state) else state
        cfg = _infer_config(state, path.name)
    else:
        cfg, state = _read_official(path)
    model = build(override or cfg)
    _load_strict(model, state, path, detected=cfg)
    if path.is_dir() and (path / CONFIG_FILE).exists():  # the surprise prior stored with it, for the detector
        from edge_jepa.models.persist import PRIOR_KEY, stored_prior

        setattr(model, PRIOR_KEY, stored_prior(path))
    return model.eval()


# --------------------------------------------------------------------------- readers
def _pickle_references_code(path: Path) -> bool:
    """A plain pickle (not torch.save's zip) that names classes or functions: scanned by pickletools, which
    reads opcodes without executing any."""
    import pickletools

    try:
        with open(path, "rb") as f:
            if f.read(1) != b"\x80":  # protocol 2+ pickles start with PROTO
                return False
            f.seek(0)
            return any(op.name in ("GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX")
                       for op, _, _ in pickletools.genops(f))
    except Exception:  # noqa: BLE001 - not a pickle after all
        return False


def _unpickler_detail(message: str) -> str:
    """What torch's weights-only unpickler objected to, without its generic text (which ends on advice to
    re-run with weights_only=False: never an option here)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    keep = [line.removeprefix("Please file an issue with the following so that we can make `weights_only=True` "
                              "compatible with your use case: ").removeprefix("WeightsUnpickler error:").strip()
            for line in lines
            if not line.startswith(("Weights only load failed", "Check the documentation"))]
    return "; ".join(k for k in keep if k)[:200]


def _read_edge_jepa(path: Path) -> tuple[ModelConfig, dict[str, Tensor]]:
    try:
        meta = json.loads((path / CONFIG_FILE).read_text())
        cfg = ModelConfig.from_dict(meta["config"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path / CONFIG_FILE}: not a valid edge-jepa model config ({e})") from None
    return cfg, _read_safetensors(path / WEIGHTS_FILE)


def _read_safetensors(path: Path) -> dict[str, Tensor]:
    if not path.exists():
        raise CheckpointError(f"{path}: weights file is missing")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: cannot read safetensors weights (truncated or corrupt?): {e}") from None


def _read_hf_dir(path: Path) -> tuple[ModelConfig, dict[str, Tensor]]:
    try:
        hf = json.loads((path / "config.json").read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path / 'config.json'}: not valid JSON ({e})") from None
    _check_hf_types(hf, path / "config.json")
    if hf.get("model_type") not in (None, "vjepa2"):
        raise CheckpointError(f"{path / 'config.json'}: model_type is {hf.get('model_type')!r}, expected 'vjepa2'")
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{path}: no *.safetensors weights beside config.json")
    state: dict[str, Tensor] = {}
    for f in files:
        state.update(_read_safetensors(f))
    return _config_from_hf(hf), _from_hf(state)


def _read_official(path: Path) -> tuple[ModelConfig, dict[str, Tensor]]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        detail = _unpickler_detail(str(e))
        if "GLOBAL" in detail or "global" in detail or _pickle_references_code(path):  # code, not weights
            raise CheckpointError(
                f"{path}: refused to unpickle: the file holds Python objects beyond tensors and containers "
                f"({detail}), and edge-jepa only loads weights (weights_only=True); re-save its state dicts only"
            ) from None
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint (random bytes, truncated or another format?): the "
            f"unpickler stopped at {detail or 'an invalid opcode'}"
        ) from None
    except Exception as e:  # the weights-only unpickler raises anything on garbage input
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint (truncated, corrupt or another format?): "
            f"{type(e).__name__}: {str(e).splitlines()[0].split('. ')[0][:200] if str(e) else ''}"
        ) from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict of state dicts, found {type(obj).__name__}")
    enc = obj.get("target_encoder", obj.get("encoder"))
    pred = obj.get("predictor")
    if enc is None and pred is None:  # a flat state dict of both
        flat = {_clean(k): v for k, v in obj.items() if isinstance(v, Tensor)}
        if not flat:
            raise CheckpointError(
                f"{path}: no 'encoder'/'target_encoder'/'predictor' entries and no tensors "
                f"(top-level keys: {sorted(obj)[:10]})"
            )
        enc = {k: v for k, v in flat.items() if not k.startswith(("predictor_", "mask_tokens"))}
        pred = {k: v for k, v in flat.items() if k.startswith(("predictor_", "mask_tokens"))}
    state = _from_official(dict(enc or {}), dict(pred or {}))
    return _infer_config(state, path.name), state


# --------------------------------------------------------------------------- key maps
def _clean(key: str) -> str:
    return key.replace("module.", "").replace("backbone.", "")


def _from_official(enc: dict[str, Tensor], pred: dict[str, Tensor]) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    for k, v in enc.items():
        k = _clean(k)
        if k in ("pos_embed",):  # absolute positions of the pre-RoPE code path; unused with RoPE
            continue
        if k == "patch_embed.proj.weight" and v.dim() == 5:
            v = conv3d_to_conv2d_weight(v)
        out["encoder." + k] = v
    masks: dict[int, Tensor] = {}
    for k, v in pred.items():
        k = _clean(k)
        if k == "predictor_pos_embed":
            continue
        if m := re.fullmatch(r"mask_tokens\.(\d+)", k):
            masks[int(m.group(1))] = v.reshape(-1)
            continue
        k = re.sub(r"^predictor_blocks\.", "blocks.", k)
        k = re.sub(r"^predictor_(embed|norm|proj)\.", r"\1.", k)
        out["predictor." + k] = v
    if masks:
        out["predictor.mask_tokens"] = torch.stack([masks[i] for i in sorted(masks)])
    return out


def _from_hf(state: dict[str, Tensor]) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    qkv: dict[str, dict[str, Tensor]] = {}
    for k, v in state.items():
        k = k.removeprefix("vjepa2.")
        if k.startswith(("pooler.", "classifier.")):  # classification head: not part of the world model
            continue
        k = k.replace("encoder.embeddings.patch_embeddings.proj.", "encoder.patch_embed.proj.")
        k = k.replace("encoder.layernorm.", "encoder.norm.")
        k = k.replace("predictor.embeddings.predictor_embeddings.", "predictor.embed.")
        k = k.replace("predictor.layernorm.", "predictor.norm.")
        k = re.sub(r"^(encoder|predictor)\.layer\.", r"\1.blocks.", k)
        k = k.replace(".attention.proj.", ".attn.proj.")
        if k == "predictor.embeddings.mask_tokens":
            out["predictor.mask_tokens"] = v.reshape(v.shape[0], -1)
            continue
        if k == "encoder.patch_embed.proj.weight" and v.dim() == 5:
            v = conv3d_to_conv2d_weight(v)
        if m := re.fullmatch(r"(.*)\.attention\.(query|key|value)\.(weight|bias)", k):
            qkv.setdefault(f"{m.group(1)}.attn.qkv.{m.group(3)}", {})[m.group(2)] = v
            continue
        out[k] = v
    for k, parts in qkv.items():
        if set(parts) == {"query", "key", "value"}:
            out[k] = torch.cat([parts["query"], parts["key"], parts["value"]], dim=0)
        else:  # report what is there; the strict check names the incomplete triple
            out.update({f"{k}[{name}]": t for name, t in parts.items()})
    return out


# --------------------------------------------------------------------------- configs
_HF_INTS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "tubelet_size", "frames_per_clip",
            "in_chans", "pred_hidden_size", "pred_num_hidden_layers", "pred_num_attention_heads",
            "pred_num_mask_tokens", "crop_size")
_HF_FLOATS = ("mlp_ratio", "pred_mlp_ratio", "layer_norm_eps")


def _check_hf_types(hf: object, file: Path) -> None:
    """config.json's fields have the types V-JEPA 2 uses (a string or null where a size belongs: CheckpointError)."""
    if not isinstance(hf, dict):
        raise CheckpointError(f"{file}: expected a JSON object of settings, found {type(hf).__name__}")

    def positive_int(v: object) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v > 0

    for key in _HF_INTS:
        if key in hf and not positive_int(hf[key]):
            raise CheckpointError(f"{file}: {key} is {json.dumps(hf[key])}, expected a positive integer")
    patch = hf.get("patch_size", 16)
    if not (positive_int(patch) or (isinstance(patch, list) and patch and all(positive_int(p) for p in patch))):
        raise CheckpointError(f"{file}: patch_size is {json.dumps(patch)}, expected a positive integer")
    for key in _HF_FLOATS:
        v = hf.get(key, 1.0)
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
            raise CheckpointError(f"{file}: {key} is {json.dumps(v)}, expected a positive number")
    if not isinstance(hf.get("qkv_bias", True), bool):
        raise CheckpointError(f"{file}: qkv_bias is {json.dumps(hf['qkv_bias'])}, expected true or false")


def _config_from_hf(hf: dict) -> ModelConfig:
    if hf.get("hidden_act", "gelu") != "gelu":
        raise CheckpointError(f"hidden_act {hf['hidden_act']!r} is not supported (V-JEPA 2 uses gelu)")
    patch = hf.get("patch_size", 16)
    patch = patch[0] if isinstance(patch, list | tuple) else patch
    tubelet, frames = hf.get("tubelet_size", 2), hf.get("frames_per_clip", 64)
    enc = EncoderConfig(width=hf.get("hidden_size", 1024), depth=hf.get("num_hidden_layers", 24),
                        heads=hf.get("num_attention_heads", 16), mlp_ratio=float(hf.get("mlp_ratio", 4.0)),
                        patch_size=patch, tubelet_size=tubelet, in_chans=hf.get("in_chans", 3),
                        qkv_bias=hf.get("qkv_bias", True), norm_eps=hf.get("layer_norm_eps", 1e-6))
    pred = PredictorConfig(width=hf.get("pred_hidden_size", 384), depth=hf.get("pred_num_hidden_layers", 12),
                           heads=hf.get("pred_num_attention_heads", 12),
                           mlp_ratio=float(hf.get("pred_mlp_ratio", 4.0)),
                           num_mask_tokens=hf.get("pred_num_mask_tokens", 10),
                           qkv_bias=hf.get("qkv_bias", True), norm_eps=hf.get("layer_norm_eps", 1e-6))
    clip = _clip_for(frames, hf.get("crop_size", 256), tubelet)
    name = _registered_name(enc, pred, clip.size) or f"hf-{enc.width}x{enc.depth}"
    return ModelConfig(name=name, encoder=enc, predictor=pred, clip=clip)


def _clip_for(frames: int, size: int, tubelet: int) -> ClipConfig:
    frames = max(frames - frames % tubelet, 2 * tubelet)
    context = max(tubelet, (frames // 2) // tubelet * tubelet)
    return ClipConfig(frames=frames, size=size, fps=4.0, context_frames=context)


def _registered_name(enc: EncoderConfig, pred: PredictorConfig, size: int | None) -> str | None:
    for name, c in CONFIGS.items():
        if (c.encoder.width, c.encoder.depth, c.predictor.width, c.predictor.depth) == \
                (enc.width, enc.depth, pred.width, pred.depth) and (size is None or c.clip.size == size):
            return name
    return None


def _count_blocks(state: dict[str, Tensor], prefix: str) -> int:
    idx = [int(m.group(1)) for k in state if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))]
    return max(idx) + 1 if idx else 0


def _infer_config(state: dict[str, Tensor], filename: str) -> ModelConfig:
    """Architecture from weight shapes; head counts and clip from the matching released config."""
    try:
        pw = state["encoder.patch_embed.proj.weight"]  # [D, t*C, p, p]
        width, patch = pw.shape[0], pw.shape[-1]
        enc_depth = _count_blocks(state, "encoder.blocks.")
        enc_hidden = state["encoder.blocks.0.mlp.fc1.weight"].shape[0]
        pwidth = state["predictor.embed.weight"].shape[0]
        pred_depth = _count_blocks(state, "predictor.blocks.")
        pred_hidden = state["predictor.blocks.0.mlp.fc1.weight"].shape[0]
        n_masks = state["predictor.mask_tokens"].shape[0]
    except KeyError as e:
        found = sorted({".".join(k.split(".")[:2]) for k in state})[:12]
        raise CheckpointError(
            f"{filename}: cannot infer the model size, key {e.args[0]} is missing (found key groups: {found})"
        ) from None
    qkv_bias = "encoder.blocks.0.attn.qkv.bias" in state
    base = None
    for c in CONFIGS.values():
        if (c.encoder.width, c.encoder.depth, c.predictor.width, c.predictor.depth) == (width, enc_depth, pwidth,
                                                                                      pred_depth):
            base = c
            if ("384" in filename) == (c.clip.size == 384):
                break
    enc_heads = base.encoder.heads if base else max(1, width // 64)
    pred_heads = base.predictor.heads if base else max(1, pwidth // 32)
    tc = pw.shape[1]
    tubelet = base.encoder.tubelet_size if base else (2 if tc % 2 == 0 and tc > 3 else 1)
    enc = EncoderConfig(width=width, depth=enc_depth, heads=enc_heads, mlp_ratio=enc_hidden / width,
                        patch_size=patch, tubelet_size=tubelet, in_chans=tc // tubelet, qkv_bias=qkv_bias)
    pred = PredictorConfig(width=pwidth, depth=pred_depth, heads=pred_heads, mlp_ratio=pred_hidden / pwidth,
                           num_mask_tokens=n_masks, qkv_bias="predictor.blocks.0.attn.qkv.bias" in state)
    clip = base.clip if base else ClipConfig(frames=16, size=256, fps=4.0, context_frames=8)
    return ModelConfig(name=base.name if base else f"custom-{width}x{enc_depth}", encoder=enc, predictor=pred,
                       clip=clip)


def _describe(cfg: ModelConfig) -> str:
    e, p = cfg.encoder, cfg.predictor
    return (f"{cfg.name} (encoder {e.width}w x {e.depth} blocks, {e.heads} heads; predictor {p.width}w x "
            f"{p.depth} blocks, {p.heads} heads)")


def _load_strict(model: VJEPA2, state: dict[str, Tensor], path: Path, detected: ModelConfig) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = sorted(
        f"{k}: expected {tuple(expected[k].shape)}, got {tuple(state[k].shape)}"
        for k in set(expected) & set(state) if expected[k].shape != state[k].shape
    )
    if missing or unexpected or misshaped:
        def few(items: list[str]) -> str:
            return ", ".join(items[:8]) + (f", ... ({len(items)} in all)" if len(items) > 8 else "")

        parts = [f"{label} keys: {few(items)}" for label, items in
                 (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)) if items]
        raise CheckpointError(
            f"{path}: weights do not match the detected size {_describe(detected)}"
            + (f" / requested {_describe(model.config)}" if model.config != detected else "")
            + ";\n  " + ";\n  ".join(parts)
        )
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)
