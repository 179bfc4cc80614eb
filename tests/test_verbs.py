"""The library verbs behind the commands are callable from Python, and `import edge_jepa` stays light."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

import edge_jepa
from edge_jepa.train.pretrain import PretrainConfig


def test_import_edge_jepa_and_the_cli_do_not_import_torch():
    code = ("import sys, edge_jepa, edge_jepa.cli; "
            "print(sorted(m for m in ('torch', 'cv2', 'executorch') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "[]"


def test_every_verb_is_a_callable_public_name():
    for name in ("load", "create", "save", "preprocess", "surprise_scores", "SurpriseScorer", "pretrain", "fit",
                 "distill", "export", "watch", "bench"):
        assert name in edge_jepa.__all__ and callable(getattr(edge_jepa, name)), name
    # the verbs that share a module's name are that module, callable: both uses work
    assert edge_jepa.export.export_bundle is not None and edge_jepa.distill.DistillConfig is not None
    clip = edge_jepa.preprocess(np.zeros((2, 40, 50, 3), np.uint8), 32)
    assert clip.shape == (1, 3, 2, 32, 32)


def test_pretrain_from_python_reports_progress_and_saves_the_model(tmp_path):
    steps, started = [], []
    cfg = PretrainConfig(steps=3, batch_size=2, warmup=1, checkpoint_every=2, log_every=1)
    run = edge_jepa.pretrain("vit_pico", "synthetic", tmp_path / "run", cfg, frames=4, context_frames=3, size=32,
                             tubelet=1, on_start=started.append, on_step=lambda step, loss: steps.append((step, loss)))
    assert len(started) == 1 and [s for s, _ in steps] == [1, 2, 3] and all(np.isfinite(loss) for _, loss in steps)
    model = edge_jepa.load(run.model_dir)
    assert model.config.clip.frames == 4 and model.config.clip.size == 32
    card = json.loads((run.model_dir / "card.json").read_text())
    assert card["training"]["steps"] == 3 and card["training"]["config"]["model"] == "fresh vit_pico"
