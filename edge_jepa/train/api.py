"""The training verbs: `pretrain` (a fresh or loaded model on the synthetic world and/or videos) and `fit`
(continue a model on your own footage so it learns the scene's normal). The CLI commands of the same name
parse options, show progress through the callbacks and print; everything else happens here.

    import edge_jepa
    path = edge_jepa.pretrain("vit_pico", "synthetic", "runs/pico", PretrainConfig(steps=3000))  # runs/pico/model
    run = edge_jepa.fit("street.mp4", "street-model", minutes=10)  # run.check: held-out before/after
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from edge_jepa.models.config import CONFIGS
from edge_jepa.models.vjepa2 import VJEPA2
from edge_jepa.train.common import CHECKPOINT, LOSS_LOG
from edge_jepa.train.dist import DistContext
from edge_jepa.train.pretrain import PretrainConfig, PretrainResult, Trainer
from edge_jepa.train.world import WorldTraining

if TYPE_CHECKING:
    from edge_jepa.train.heldout import ModelCheck

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


@dataclass
class FitCheck:
    """What `fit` proves: the model before and after training on held-out footage it never trained on."""

    held_out: list[dict]  # per slice: video, start_s, seconds
    before: ModelCheck
    after: ModelCheck
    stopped_by: str  # "time" (the --minutes budget ran out first), "steps" (the step cap was reached first)
    footage_seconds: float  # all footage read, at the model's fps
    decode_seconds: float  # wall time spent decoding it

    def summary(self) -> dict[str, Any]:
        """The model card's "fit" section."""
        return {"held_out": self.held_out, "held_out_seconds": round(sum(h["seconds"] for h in self.held_out), 2),
                "footage_seconds": round(self.footage_seconds, 2), "decode_seconds": round(self.decode_seconds, 1),
                "stopped_by": self.stopped_by, "before": self.before.summary(), "after": self.after.summary()}


@dataclass
class FitRun(TrainingRun):
    """`fit`'s report: the training run, and the held-out check before and after (`check.after.scores` are the
    fitted model's surprise on the held-out slices, e.g. to calibrate a detector)."""

    check: FitCheck | None = None


ProgressCallback = Callable[[str, float, float | None], None]  # (stage, done, total or None)
RECOMMENDED_SECONDS = 60.0  # less footage fits, with a warning


def fit(source: str | os.PathLike, out: str | os.PathLike, model: str | VJEPA2 = "default", *,
        minutes: float = 10.0, steps: int = 100_000, batch_size: int = 16, lr: float = 2e-4,
        synthetic_share: float = 0.25, holdout: float = 0.2, seed: int = 0, resume: bool = False,
        threads: int | None = None, command: str = "", on_start: Callable[[Trainer], None] | None = None,
        on_step: StepCallback | None = None, on_progress: ProgressCallback | None = None) -> FitRun:
    """Continue `model` (window or frame-causal) on your footage (a video file or a folder of videos), mixing in a
    `synthetic_share` of synthetic clips to keep the physics prior, until `minutes` of training or `steps`
    steps, whichever comes first; writes the model to `out` (its training state to OUT.run/, resumable).

    Footage is decoded at the model's size and frame rate while reading (memory follows the model, not the
    source). The last `holdout` share of each video is never trained on: the model is checked on it before and
    after training (`edge_jepa.train.heldout`: prediction loss, surprise median/p95/max, the events `watch`
    would raise there); the result's `check` and the model card's "fit" section hold the figures.
    Footage too short to train and check raises `FootageTooShort`; less than a minute warns.
    on_progress(stage, done, total) reports decoding ("decode", seconds of video) and the checks
    ("check before" / "check after", frames).
    """
    import time

    from edge_jepa.checkpoints import load
    from edge_jepa.outputs import check_replaceable
    from edge_jepa.stream.events import EventDetector
    from edge_jepa.stream.prior import write_prior
    from edge_jepa.train.data import MixedSource, SyntheticSource, VideoSource
    from edge_jepa.train.heldout import check_model

    if not 0.05 <= holdout <= 0.5:
        raise ValueError(f"holdout {holdout:g}: hold out between 5% and 50% of the footage (0.05 to 0.5)")
    out = Path(out)
    check_replaceable(out, what="model directory")  # before minutes of training, not after
    net, origin = prepare_model(model, seed=seed)  # training takes `threads` (PretrainConfig); the checks score on one
    clip = net.config.clip

    def stage(name: str) -> Callable[..., None] | None:
        return (lambda done, total: on_progress(name, done, total)) if on_progress else None

    decode = stage("decode")
    t0 = time.monotonic()
    videos = VideoSource(Path(source), clip, seed, holdout=holdout,
                         on_progress=(lambda i, done, total: decode(done, total)) if decode else None)
    decode_s = time.monotonic() - t0
    warmup = EventDetector().warmup_s
    if videos.decoded_seconds < RECOMMENDED_SECONDS:
        warnings.warn(f"{source}: {videos.decoded_seconds:.1f} s of footage is little to learn a scene's normal "
                      f"from ({videos.held_out_seconds:.1f} s of it held out); a minute or more is recommended",
                      RuntimeWarning, stacklevel=2)
    if videos.held_out_seconds < warmup + 5.0:
        warnings.warn(f"the held-out slice ({videos.held_out_seconds:.1f} s) is shorter than the event detector's "
                      f"{warmup:g} s warm-up + 5 s: it can raise few or no events there", RuntimeWarning,
                      stacklevel=2)
    before = check_model(net.eval(), videos.held_out, on_progress=stage("check before"))
    src = MixedSource(SyntheticSource(clip, seed), videos, synthetic_share) if synthetic_share > 0 else videos
    cfg = PretrainConfig(steps=steps, batch_size=batch_size, lr=lr, min_lr=lr, warmup=min(20, max(1, steps // 10)),
                         seed=seed, max_minutes=minutes, ema=(0.995, 0.995), checkpoint_every=50, threads=threads,
                         extra={"model": origin, "source": str(source), "holdout": holdout})
    run = train(net, src, out.with_name(out.name + ".run"), cfg, resume=resume, command=command,
                on_start=on_start, on_step=on_step)
    after = check_model(run.result.model, videos.held_out, on_progress=stage("check after"))
    check = FitCheck([{"video": h.name, "start_s": round(h.start_s, 3), "seconds": round(h.seconds, 3)}
                      for h in videos.held_out], before, after,
                     "time" if run.result.stopped_early else "steps", videos.decoded_seconds, decode_s)
    card = {**run.card, "fit": check.summary()}
    load(run.model_dir).save(out, card=card)
    write_prior(out, fitted_prior(run.result.model, after, str(source)))  # the detector's start, from this scene
    return FitRun(out, run.loss_log, run.result, card, check)


def fitted_prior(model, after, source: str) -> dict:
    """The surprise prior of a fitted model from its own scores on the held-out footage (`edge_jepa.stream.prior`):
    `watch` then judges a stream's first seconds against this scene's normal, not the synthetic world's."""
    from edge_jepa.models.world import DEFAULT_SCORING, FrameCausalJEPA
    from edge_jepa.stream.prior import prior_entry, prior_record

    scoring = DEFAULT_SCORING if isinstance(model, FrameCausalJEPA) else None
    entry = prior_entry(after.scores, model.config.clip.fps, scoring)
    return prior_record(model.config.name, [entry], f"fit footage, held-out slices: {source}",
                        "edge_jepa.train.api.fit")
