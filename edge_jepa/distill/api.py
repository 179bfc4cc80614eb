"""The one-call API: `distill(teacher, student, data, out_dir, cfg)`."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path

from edge_jepa.distill.align import DistillError, plan
from edge_jepa.distill.data import ClipSource
from edge_jepa.distill.trainer import CHECKPOINT, DistillConfig, Distiller, DistillResult, StepCallback
from edge_jepa.models.config import CONFIGS, ModelConfig
from edge_jepa.models.vjepa2 import VJEPA2
from edge_jepa.models.world import FrameCausalJEPA
from edge_jepa.train.dist import DistContext


def student_config(spec: str | os.PathLike | ModelConfig, **clip: object) -> ModelConfig:
    """A registered config name or a JSON file holding a ModelConfig dict; `clip` overrides clip fields."""
    if isinstance(spec, ModelConfig):
        cfg = spec
    elif str(spec) in CONFIGS:
        cfg = CONFIGS[str(spec)]
    elif str(spec).endswith(".json") and Path(spec).is_file():
        try:
            cfg = ModelConfig.from_dict(json.loads(Path(spec).read_text()))
        except (json.JSONDecodeError, ValueError, TypeError) as e:
            raise DistillError(f"{spec}: not a valid model config JSON ({e})") from None
    else:
        raise DistillError(f"unknown student {str(spec)!r}: give a registered config ({', '.join(CONFIGS)}) or a "
                           ".json file with a ModelConfig")
    overrides = {k: v for k, v in clip.items() if v is not None}
    try:
        return cfg.replace(clip=overrides) if overrides else cfg
    except ValueError as e:
        raise DistillError(f"student clip {overrides}: {e}") from None


def distill(teacher: VJEPA2 | str | os.PathLike, student: VJEPA2 | ModelConfig | str, data: str | ClipSource,
            out_dir: str | os.PathLike, cfg: DistillConfig | None = None, *, resume: bool = False,
            ctx: DistContext | None = None, base_card: dict | None = None,
            on_start: Callable[[Distiller], None] | None = None, on_step: StepCallback | None = None,
            on_cache: Callable[[int, int], None] | None = None,
            on_report: Callable[[dict], None] | None = None) -> DistillResult:
    """Distil `teacher` (a model or anything edge_jepa.load takes) into `student` (a model, a config or a
    registered name: fresh weights seeded by cfg.seed) on `data` ('synthetic', a video file/folder,
    'synthetic+PATH' or a clip source). The student is saved to OUT/student; returns the result.
    Teacher and student are both window models, or both frame-causal (edge_jepa.distill.frame_causal: synthetic
    data at a frame rate drawn per batch from cfg.rates; videos at the student's fps).

    A checkpoint in `out_dir` is continued with resume=True and refused otherwise. Progress: `on_start(run)`
    once the run is set up (checkpoint loaded), then `Distiller.run`'s on_step / on_cache / on_report.
    Ctrl-C / SIGTERM save a checkpoint and raise KeyboardInterrupt.
    """
    import edge_jepa
    from edge_jepa.train.data import make_source

    cfg = cfg or DistillConfig()
    teacher_model = teacher if isinstance(teacher, VJEPA2 | FrameCausalJEPA) else edge_jepa.load(teacher)
    student_model = student if isinstance(student, VJEPA2 | FrameCausalJEPA) else \
        edge_jepa.create(student_config(student), seed=cfg.seed)
    tk, sk = teacher_model.config.kind, student_model.config.kind
    if tk != sk:
        raise DistillError(f"teacher {teacher_model.config.name} is a {tk} model and student "
                           f"{student_model.config.name} a {sk} one: distillation pairs models of one kind; pick a "
                           f"{tk} student (e.g. {'world_nano' if tk == 'frame_causal' else 'vit_nano'})")
    runner: type[Distiller] = Distiller
    if tk == "frame_causal":
        from edge_jepa.distill.frame_causal import FrameCausalDistiller
        from edge_jepa.train.world import MultiRateSource

        if isinstance(data, str):
            clip = student_model.config.clip
            data = MultiRateSource(clip, cfg.seed, cfg.rates) if data == "synthetic" else \
                make_source(data, clip, cfg.seed)
        runner = FrameCausalDistiller
    elif isinstance(data, str):
        alignment = plan(teacher_model.config, student_model.config, teacher_size=cfg.teacher_size,
                         stride=cfg.frame_stride, mode=cfg.align)
        data = make_source(data, alignment.teacher_clip, cfg.seed)
    if base_card is not None and "distillation" in base_card:
        base_card["distillation"].setdefault("data", data.describe())
    run = runner(teacher_model, student_model, data, out_dir, cfg, ctx=ctx, base_card=base_card)
    if (Path(out_dir) / CHECKPOINT).exists() and not resume:
        raise DistillError(f"{Path(out_dir) / CHECKPOINT} exists: pass --resume (resume=True) to continue it, or "
                           "choose another --out")
    if resume and not run.load_checkpoint() and (ctx is None or ctx.is_main):
        warnings.warn(f"--resume: there is no checkpoint at {Path(out_dir) / CHECKPOINT}; starting a new run from "
                      "step 0", RuntimeWarning, stacklevel=2)
    if on_start:
        on_start(run)
    return run.run(on_step, on_cache, on_report)
