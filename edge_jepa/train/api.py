"""The training verbs: `pretrain` (a fresh or loaded model on the synthetic world and/or videos) and `fit`
(continue a model on your own footage so it learns the scene's normal). The CLI commands of the same name
parse options, show progress through the callbacks and print; everything else happens here.

    import edge_jepa
    path = edge_jepa.pretrain("vit_pico", "synthetic", "runs/pico", PretrainConfig(steps=3000))  # runs/pico/model
    path = edge_jepa.fit("street.mp4", "street-model", minutes=10)
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from edge_jepa.models.config import CONFIGS
from edge_jepa.models.vjepa2 import VJEPA2
from edge_jepa.train.common import CHECKPOINT, LOSS_LOG
from edge_jepa.train.dist import DistContext
from edge_jepa.train.pretrain import PretrainConfig, PretrainResult, Trainer
from edge_jepa.train.world import WorldTraining

StepCallback = Callable[[int, float], None]  # (step, loss) after each optimizer step


@dataclass
class TrainingRun:
    """What `train` reports: where the model and the loss log are, the result and the model card written."""

    model_dir: Path
    loss_log: Path
    result: PretrainResult
    card: dict[str, Any]


def prepare_model(model: str | VJEPA2, *, seed: int = 0, tubelet: int | None = None,
                  **clip: Any) -> tuple[VJEPA2, str]:
    """(model, where it came from): a registered config name (fresh weights seeded by `seed`), a model, or
    anything edge_jepa.load takes; `clip` overrides clip fields (frames, size, fps, context_frames,
    preprocess; None = keep). `tubelet` changes the weights' shapes, so it applies to fresh configs only."""
    from edge_jepa.checkpoints import load
    from edge_jepa.models.vjepa2 import create

    clip = {k: v for k, v in clip.items() if v is not None}
    if isinstance(model, str) and model in CONFIGS:
        encoder = {"tubelet_size": tubelet} if tubelet is not None else {}
        return create(CONFIGS[model].replace(clip=clip, encoder=encoder), seed=seed), f"fresh {model}"
    loaded = model if isinstance(model, torch.nn.Module) else load(model)
    if tubelet is not None and tubelet != loaded.config.encoder.tubelet_size:
        raise ValueError(f"tubelet {tubelet}: {model} has trained weights with tubelets of "
                         f"{loaded.config.encoder.tubelet_size} frames; a new tubelet size needs a fresh config "
                         f"({', '.join(CONFIGS)})")
    if clip and loaded.config.kind == "frame_causal":
        raise ValueError(f"{model}: clip overrides ({', '.join(clip)}) apply to window models; a frame-causal model "
                         "keeps its window (fresh configs take them)")
    if clip:
        clip.setdefault("context_frames", loaded.config.clip.context_frames)  # the same context unless given
        loaded = loaded.at_clip(**clip)
    return loaded, f"continued from {model}" if isinstance(model, str) else "continued from an in-memory model"


def train(model: VJEPA2, source: Any, out: str | os.PathLike, cfg: PretrainConfig, *, resume: bool = False,
          command: str = "", base_card: dict | None = None, on_start: Callable[[Trainer], None] | None = None,
          on_step: StepCallback | None = None, world: WorldTraining | None = None,
          ctx: DistContext | None = None, device: str = "auto") -> TrainingRun:
    """Train `model` on a clip source in the run directory `out` and save OUT/model (edge-jepa format with
    card.json). A checkpoint in `out` is continued with resume=True and refused otherwise. `on_start(trainer)`
    runs once the checkpoint (if any) is loaded; Ctrl-C / SIGTERM save a checkpoint and raise KeyboardInterrupt.
    A frame-causal model trains with the frame-causal objective (`world`: its options). Under torchrun (or
    with `ctx`) the run is data-parallel: rank 0 reports through the callbacks and writes the files.
    device: "auto" (CUDA when available), "cpu" or "cuda"; `cfg.amp` adds bfloat16 autocast.
    """
    from edge_jepa.outputs import check_writable
    from edge_jepa.train import dist

    own = ctx is None
    ctx = ctx or dist.setup(device=device)
    try:
        out = Path(out)
        check_writable(out, folder=True)  # before the training, not after
        if model.config.kind == "frame_causal":
            from edge_jepa.train.world import FrameCausalTrainer

            trainer: Trainer = FrameCausalTrainer(model, source, out, cfg, (world or WorldTraining()).loss,
                                                  base_card=base_card, ctx=ctx)
        else:
            trainer = Trainer(model, source, out, cfg, base_card=base_card, ctx=ctx)
        if (out / CHECKPOINT).exists() and not resume:
            raise FileExistsError(f"{out / CHECKPOINT} exists: pass --resume to continue it, or choose another --out")
        if resume and not trainer.load_checkpoint() and ctx.is_main:
            warnings.warn(f"--resume: there is no checkpoint at {out / CHECKPOINT}; starting a new run from step 0",
                          RuntimeWarning, stacklevel=2)
        if on_start and ctx.is_main:
            on_start(trainer)
        result = trainer.run(on_step if ctx.is_main else None)
        card = trainer.card(result, command, source.describe())
        if ctx.distributed:
            card["training"]["processes"] = ctx.world
        if ctx.is_main:
            result.model.save(out / "model", card=card)
        ctx.barrier()  # the model is written before any rank returns
        return TrainingRun(out / "model", out / LOSS_LOG, result, card)
    finally:
        if own:
            dist.teardown(ctx)


def pretrain(model: str | VJEPA2, data: str, out: str | os.PathLike, cfg: PretrainConfig | None = None, *,
             resume: bool = False, tubelet: int | None = None, command: str = "",
             on_start: Callable[[Trainer], None] | None = None, on_step: StepCallback | None = None,
             world: WorldTraining | None = None, device: str = "auto", **clip: Any) -> TrainingRun:
    """Self-supervised V-JEPA training of `model` (see `prepare_model`) on `data` ('synthetic', a video file
    or folder, or 'synthetic+PATH'); the model goes to OUT/model. `clip` overrides clip fields. A frame-causal
    model (e.g. "world_pico") trains on the synthetic world at `world.rates`."""
    from edge_jepa.train.data import make_source

    cfg = cfg or PretrainConfig()
    net, origin = prepare_model(model, seed=cfg.seed, tubelet=tubelet, **clip)
    if net.config.kind == "frame_causal":
        from edge_jepa.train.world import MultiRateSource

        world = world or WorldTraining()
        if data != "synthetic":
            raise ValueError(f"data {data!r}: frame-causal models train on the synthetic world only so far")
        source: Any = MultiRateSource(net.config.clip, cfg.seed, world.rates, world.clip_frames)
        cfg.extra.update({"rates": list(world.rates), "clip_frames": source.frames,
                          "world_loss": dataclasses.asdict(world.loss)})
    else:
        source = make_source(data, net.config.clip, cfg.seed)
    cfg.extra.setdefault("model", origin)
    return train(net, source, out, cfg, resume=resume, command=command, on_start=on_start, on_step=on_step,
                 world=world, device=device)


def fit(source: str | os.PathLike, out: str | os.PathLike, model: str | VJEPA2 = "default", *,
        minutes: float = 10.0, steps: int = 100_000, batch_size: int = 16, lr: float = 2e-4,
        synthetic_share: float = 0.25, seed: int = 0, resume: bool = False, command: str = "",
        on_start: Callable[[Trainer], None] | None = None, on_step: StepCallback | None = None) -> TrainingRun:
    """Continue `model` on your footage (a video file or a folder of videos) for `minutes`, mixing in a
    `synthetic_share` of synthetic clips to keep the physics prior; writes the model to `out` (its training
    state to OUT.run/, resumable); the returned run's model_dir is `out`."""
    from edge_jepa.checkpoints import load
    from edge_jepa.outputs import check_replaceable
    from edge_jepa.train.data import MixedSource, SyntheticSource, VideoSource

    out = Path(out)
    check_replaceable(out, what="model directory")  # before minutes of training, not after
    net, origin = prepare_model(model, seed=seed)
    videos = VideoSource(Path(source), net.config.clip, seed)
    src = MixedSource(SyntheticSource(net.config.clip, seed), videos, synthetic_share) if synthetic_share > 0 \
        else videos
    cfg = PretrainConfig(steps=steps, batch_size=batch_size, lr=lr, min_lr=lr, warmup=20, seed=seed,
                         max_minutes=minutes, ema=(0.995, 0.995), checkpoint_every=50,
                         extra={"model": origin, "source": str(source)})
    run = train(net, src, out.with_name(out.name + ".run"), cfg, resume=resume, command=command,
                on_start=on_start, on_step=on_step)
    load(run.model_dir).save(out, card=run.card)
    return TrainingRun(out, run.loss_log, run.result, run.card)
