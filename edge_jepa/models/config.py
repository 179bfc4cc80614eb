"""Model configurations: the released V-JEPA 2 sizes, small students, and the clip a model works on.

A `ModelConfig` is everything needed to rebuild a model (architecture) and to use it (clip shape,
frame rate, context/target split for surprise scoring). It round-trips through JSON.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

PREPROCESS_MODES = ("center_crop", "resize")
# "window": V-JEPA 2's layout (encode a window, predict its last tubelets from its first ones; the released
# checkpoints). "frame_causal": each frame encoded alone, a block-causal predictor guesses frame t+1's tokens
# from frames <= t (V-JEPA 2-AC's predictor layout without actions; edge_jepa.models.world).
MODEL_KINDS = ("window", "frame_causal")


@dataclass(frozen=True)
class EncoderConfig:
    width: int = 1024  # token dimension D
    depth: int = 24
    heads: int = 16
    mlp_ratio: float = 4.0
    patch_size: int = 16
    tubelet_size: int = 2
    in_chans: int = 3
    qkv_bias: bool = True
    norm_eps: float = 1e-6

    @property
    def head_dim(self) -> int:
        return self.width // self.heads


@dataclass(frozen=True)
class PredictorConfig:
    width: int = 384
    depth: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    num_mask_tokens: int = 10
    qkv_bias: bool = True
    norm_eps: float = 1e-6
    # frame-causal models: predict the change from the current frame's (LayerNorm-ed) tokens, so that an
    # untrained predictor starts at "copy the last frame" and learns only what moves
    residual: bool = False

    @property
    def head_dim(self) -> int:
        return self.width // self.heads


@dataclass(frozen=True)
class ClipConfig:
    """The clip a model is used on: shape, frame rate and the surprise layout.

    `size` is also the RoPE grid the predictor assumes for flat token indices when no grid is given,
    exactly like the release (its predictor derives the grid from `img_size`).
    """

    frames: int = 64
    size: int = 256
    fps: float = 4.0  # the release samples clips at 4 fps for V-JEPA 2 pretraining
    context_frames: int = 32  # surprise: encode the first `context_frames`, predict the rest
    # "center_crop": the release's eval transform (short side to size*256/224, center crop);
    # "resize": the whole frame squashed to size x size (keeps the edges of a camera's view).
    preprocess: str = "center_crop"

    @property
    def target_frames(self) -> int:
        return self.frames - self.context_frames


@dataclass(frozen=True)
class ModelConfig:
    name: str
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)
    kind: str = "window"

    def __post_init__(self) -> None:
        validate(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        def pick(kind: type, values: dict[str, Any] | None) -> Any:
            names = {f.name for f in dataclasses.fields(kind)}
            unknown = set(values or {}) - names
            if unknown:
                raise ValueError(f"unknown {kind.__name__} fields {sorted(unknown)}; known: {sorted(names)}")
            return kind(**(values or {}))

        return cls(
            name=str(d.get("name", "custom")),
            encoder=pick(EncoderConfig, d.get("encoder")),
            predictor=pick(PredictorConfig, d.get("predictor")),
            clip=pick(ClipConfig, d.get("clip")),
            kind=str(d.get("kind", "window")),
        )

    def replace(self, **changes: Any) -> ModelConfig:
        """Copy with top-level fields replaced; `clip=dict(...)` updates only the given clip fields."""
        for key in ("encoder", "predictor", "clip"):
            if isinstance(changes.get(key), dict):
                changes[key] = dataclasses.replace(getattr(self, key), **changes[key])
        return dataclasses.replace(self, **changes)


def validate(cfg: ModelConfig) -> None:
    e, p, c = cfg.encoder, cfg.predictor, cfg.clip
    if cfg.kind not in MODEL_KINDS:
        raise ValueError(f"{cfg.name}: kind must be one of {MODEL_KINDS}, got {cfg.kind!r}")
    if p.residual and cfg.kind != "frame_causal":
        raise ValueError(f"{cfg.name}: a residual predictor is for frame-causal models")
    if cfg.kind == "frame_causal" and e.tubelet_size != 1:
        raise ValueError(f"{cfg.name}: a frame-causal model encodes frames alone (tubelet_size 1), "
                         f"got {e.tubelet_size}")
    for what, width, heads in (("encoder", e.width, e.heads), ("predictor", p.width, p.heads)):
        if width % heads:
            raise ValueError(f"{cfg.name}: {what} width {width} is not divisible by its {heads} heads")
        if (width // heads) % 2:
            raise ValueError(f"{cfg.name}: {what} head dim {width // heads} must be even for rotary embedding")
    if c.frames % e.tubelet_size or c.context_frames % e.tubelet_size:
        raise ValueError(
            f"{cfg.name}: clip frames ({c.frames}) and context frames ({c.context_frames}) must be multiples "
            f"of the tubelet size {e.tubelet_size}"
        )
    if not 0 < c.context_frames < c.frames:
        raise ValueError(f"{cfg.name}: context_frames must be in (0, {c.frames}), got {c.context_frames}")
    if c.preprocess not in PREPROCESS_MODES:
        raise ValueError(f"{cfg.name}: preprocess must be one of {PREPROCESS_MODES}, got {c.preprocess!r}")
    if c.size % e.patch_size:
        raise ValueError(f"{cfg.name}: clip size {c.size} is not a multiple of the patch size {e.patch_size}")


def _released(name: str, width: int, depth: int, heads: int, mlp_ratio: float, size: int) -> ModelConfig:
    return ModelConfig(
        name=name,
        encoder=EncoderConfig(width=width, depth=depth, heads=heads, mlp_ratio=mlp_ratio),
        predictor=PredictorConfig(width=384, depth=12, heads=12, num_mask_tokens=10),
        clip=ClipConfig(frames=64, size=size, fps=4.0, context_frames=32),
    )


def _student(name: str, width: int, depth: int, heads: int, pred: PredictorConfig, clip: ClipConfig) -> ModelConfig:
    return ModelConfig(name=name, encoder=EncoderConfig(width=width, depth=depth, heads=heads), predictor=pred,
                       clip=clip)


# The operating point of small models: 8 frames at 10 fps (0.8 s), 4 context frames, the whole view at 128 px.
STREAM_CLIP = ClipConfig(frames=8, size=128, fps=10.0, context_frames=4, preprocess="resize")

CONFIGS: dict[str, ModelConfig] = {
    # Released V-JEPA 2 (facebookresearch/vjepa2, "fpc64" checkpoints).
    "vit_large": _released("vit_large", 1024, 24, 16, 4.0, 256),
    "vit_huge": _released("vit_huge", 1280, 32, 16, 4.0, 256),
    "vit_giant": _released("vit_giant", 1408, 40, 22, 48 / 11, 256),
    "vit_giant_384": _released("vit_giant_384", 1408, 40, 22, 48 / 11, 384),
    # Students.
    "vit_small": _student("vit_small", 384, 12, 6, PredictorConfig(width=192, depth=6, heads=6), STREAM_CLIP),
    "vit_tiny": _student("vit_tiny", 192, 12, 3, PredictorConfig(width=192, depth=6, heads=6), STREAM_CLIP),
    "vit_mini": _student("vit_mini", 192, 6, 3, PredictorConfig(width=128, depth=4, heads=4), STREAM_CLIP),
    "vit_pico": _student(
        "vit_pico", 128, 6, 4, PredictorConfig(width=96, depth=4, heads=3, num_mask_tokens=4),
        ClipConfig(frames=8, size=64, fps=10.0, context_frames=6, preprocess="resize"),
    ),
    # One-frame-tubelet alternative to the window vit_pico (each frame its own tokens; the surprise step predicts the
    # 8th frame of a 30 fps window from the first 7), narrower than vit_pico so that its 128 tokens cost 0.51 GFLOPs
    # against vit_pico's 64 at 0.41. Better surprise, slower .pte (docs/world-model.md: "The embedded window model").
    "vit_pico_t1": ModelConfig(
        name="vit_pico_t1", encoder=EncoderConfig(width=96, depth=6, heads=4, tubelet_size=1),
        predictor=PredictorConfig(width=64, depth=4, heads=2, num_mask_tokens=4),
        clip=ClipConfig(frames=8, size=64, fps=30.0, context_frames=7, preprocess="resize"),
    ),
    # Distillation student of the embedded window model (a vit_pico trained at 30 fps): < 1/10 of its parameters
    # (178 K vs 1.86 M), same patch/tubelet and clip, so its token grid and frame rate equal the teacher's.
    "vit_nano": ModelConfig(
        name="vit_nano", encoder=EncoderConfig(width=48, depth=4, heads=4, mlp_ratio=2.0),
        predictor=PredictorConfig(width=32, depth=2, heads=2, num_mask_tokens=4),
        clip=ClipConfig(frames=8, size=64, fps=30.0, context_frames=6, preprocess="resize"),
    ),
    # Frame-causal world model (edge_jepa.models.world): each 64 px frame encoded alone (16 tokens), a
    # block-causal predictor guesses the next frame's tokens from up to 7 earlier frames (an 8-frame window).
    "world_pico": ModelConfig(
        name="world_pico", encoder=EncoderConfig(width=128, depth=4, heads=4, tubelet_size=1),
        predictor=PredictorConfig(width=128, depth=4, heads=4, num_mask_tokens=1),
        clip=ClipConfig(frames=8, size=64, fps=30.0, context_frames=7, preprocess="resize"),
        kind="frame_causal",
    ),
    # world_pico on a finer grid, for when location matters: 8 px patches at 64 px, so 8x8 = 64 tokens per frame
    # (peaks at 1/16, 3/16, ... of the frame instead of 1/8, 3/8, ...). About 5x world_pico's cost per update
    # (benchmarks/README.md: "A finer token grid"); not shipped: train it with `edge-jepa pretrain --model
    # world_pico_p8` or on your footage with `edge-jepa fit`.
    "world_pico_p8": ModelConfig(
        name="world_pico_p8", encoder=EncoderConfig(width=128, depth=4, heads=4, patch_size=8, tubelet_size=1),
        predictor=PredictorConfig(width=128, depth=4, heads=4, num_mask_tokens=1),
        clip=ClipConfig(frames=8, size=64, fps=30.0, context_frames=7, preprocess="resize"),
        kind="frame_causal",
    ),
    # Distillation student of world_pico (edge-jepa distill --teacher world --student world_nano): half its width,
    # the same depth, grid, window and rate: 0.27x its parameters (0.46 M, 1.8 MB fp32) and 0.28x its FLOPs per
    # stream update (0.017 vs 0.059 GFLOPs, kv step).
    "world_nano": ModelConfig(
        name="world_nano", encoder=EncoderConfig(width=64, depth=4, heads=4, tubelet_size=1),
        predictor=PredictorConfig(width=64, depth=4, heads=4, num_mask_tokens=1),
        clip=ClipConfig(frames=8, size=64, fps=30.0, context_frames=7, preprocess="resize"),
        kind="frame_causal",
    ),
    # The same with a residual predictor (next frame = this frame's LayerNorm-ed tokens + the predicted change).
    "world_pico_res": ModelConfig(
        name="world_pico_res", encoder=EncoderConfig(width=128, depth=4, heads=4, tubelet_size=1),
        predictor=PredictorConfig(width=128, depth=4, heads=4, num_mask_tokens=1, residual=True),
        clip=ClipConfig(frames=8, size=64, fps=30.0, context_frames=7, preprocess="resize"),
        kind="frame_causal",
    ),
}


def get_config(name: str) -> ModelConfig:
    try:
        return CONFIGS[name]
    except KeyError:
        raise KeyError(f"unknown model config {name!r}; registered: {', '.join(CONFIGS)}") from None


def register_config(cfg: ModelConfig, *, overwrite: bool = False) -> None:
    if cfg.name in CONFIGS and not overwrite:
        raise KeyError(f"config {cfg.name!r} is already registered (pass overwrite=True to replace it)")
    CONFIGS[cfg.name] = cfg
