"""Distillation: compress a V-JEPA 2 teacher's encoder and predictor into a small student.

    from edge_jepa.distill import DistillConfig, distill
    result = distill("default", "world_nano", "synthetic", "runs/world_nano")  # frame-causal (distill.frame_causal)
    result = distill("window", "vit_nano", "synthetic", "runs/nano", DistillConfig(steps=2000))

Command line: `edge-jepa distill ...`, or data-parallel `torchrun --nproc_per_node N -m edge_jepa.distill ...`
with the same flags. See docs/distillation.md.
"""

from edge_jepa._verbs import callable_module
from edge_jepa.distill.align import ALIGN_MODES, Alignment, DistillError, plan
from edge_jepa.distill.api import distill, student_config
from edge_jepa.distill.losses import LossWeights, StudentWithHeads
from edge_jepa.distill.report import FidelityReporter
from edge_jepa.distill.trainer import DistillConfig, Distiller, DistillResult
from edge_jepa.io import CheckpointWriteError

__all__ = ["ALIGN_MODES", "Alignment", "CheckpointWriteError", "DistillConfig", "DistillError", "DistillResult",
           "Distiller", "FidelityReporter", "LossWeights", "StudentWithHeads", "distill", "plan", "student_config"]

callable_module(__name__, distill)  # edge_jepa.distill(teacher, student, data, out_dir, cfg) (see edge_jepa._verbs)
