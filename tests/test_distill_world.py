"""Distillation of the frame-causal `world` teacher into a frame-causal student: the saved student scores clips and
carries its own surprise prior, Ctrl-C + resume equals an uninterrupted run, mixed kinds are clear errors.
(2-process DDP: tests/test_distill_scale.py.)"""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import edge_jepa
from edge_jepa.cli import app
from edge_jepa.data import WorldConfig, generate_clip
from edge_jepa.distill import DistillConfig, DistillError, distill
from edge_jepa.distill.data import state_digest
from edge_jepa.distill.frame_causal import change_weight
from edge_jepa.models.config import ClipConfig, EncoderConfig, ModelConfig, PredictorConfig
from edge_jepa.models.world import DEFAULT_SCORING, FrameCausalJEPA
from edge_jepa.stream.prior import prior_for
from edge_jepa.surprise import FrameCausalScorer

runner = CliRunner()

# world_pico's grid (64 px, 16 px patches), a 4-frame window, 16 wide: distils in a fraction of a second per step
WORLD_STUDENT = ModelConfig(
    name="test-world-student",
    encoder=EncoderConfig(width=16, depth=1, heads=2, tubelet_size=1),
    predictor=PredictorConfig(width=16, depth=1, heads=2, num_mask_tokens=1),
    clip=ClipConfig(frames=4, size=64, fps=30.0, context_frames=3, preprocess="resize"),
    kind="frame_causal",
)

# a random frame-causal teacher on a 2x2 grid and its student, for what does not need world_pico's knowledge
# (the CLI, the report's plumbing, DDP): its held-out report costs a fraction of world_pico's
TINY_TEACHER = WORLD_STUDENT.replace(name="test-world-teacher", encoder={"width": 32}, predictor={"width": 32},
                                     clip={"size": 32})
TINY_STUDENT = WORLD_STUDENT.replace(clip={"size": 32})


def _cfg(**kw) -> DistillConfig:
    base = dict(steps=6, batch_size=4, lr=3e-3, warmup=1, checkpoint_every=3, report_pairs=1, report_clips=2,
                threads=1, prior_scenes=0)
    return DistillConfig(**(base | kw))


@pytest.fixture(scope="module")
def world():
    return edge_jepa.load("world")


def test_world_nano_is_clearly_cheaper_than_world(world):
    nano = edge_jepa.create("world_nano")
    assert isinstance(nano, FrameCausalJEPA) and nano.token_grid() == world.token_grid()
    assert nano.config.clip == world.config.clip
    assert nano.num_params() < 0.3 * world.num_params()
    for step in ("kv", "rerun"):
        assert nano.flops_per_update()[step] < 0.3 * world.flops_per_update()[step]


def test_distilled_student_loads_scores_and_carries_its_prior(world, tmp_path, one_inference_thread):
    out = tmp_path / "run"
    result = distill(world, WORLD_STUDENT, "synthetic", out, _cfg(prior_scenes=1, prior_seconds=2.0, report_pairs=0))
    assert result.steps_done == 6 and not result.stopped_early

    student = edge_jepa.load(out / "student")
    assert isinstance(student, FrameCausalJEPA) and student.config == WORLD_STUDENT
    assert state_digest(student) == state_digest(result.student)
    frames = generate_clip(4242, WorldConfig(size=64, num_frames=12, fps=15.0)).frames
    trace = FrameCausalScorer(student, fps=15.0).trace(frames)  # the default scoring (DEFAULT_SCORING), rerun step
    assert [r.frame_index for r in trace] == list(range(3, 12))
    assert all(np.isfinite(r.score) and r.token_errors.shape == (1, 4, 4) for r in trace)
    for fps in (10.0, 15.0, 30.0):  # its own prior, measured at every rate the teacher's was
        prior = prior_for(out / "student", fps)
        assert prior is not None and prior.scoring == DEFAULT_SCORING and prior.spread > 0
    card = json.loads((out / "student" / "card.json").read_text())["distillation"]
    assert card["frame_rates"] == [10.0, 15.0, 30.0] and card["teacher"] == "world_pico" and card["steps"] == 6
    log = [json.loads(line) for line in (out / "loss.jsonl").read_text().splitlines()]
    assert {"feature_l1", "feature_cos", "predictor", "surprise", "scale"} <= set(log[-1])


def test_cli_prints_and_writes_the_fidelity_report_with_the_pixel_baselines(tmp_path, one_inference_thread):
    teacher = tmp_path / "teacher"
    edge_jepa.create(TINY_TEACHER, seed=1).save(teacher)
    spec = tmp_path / "student.json"
    spec.write_text(json.dumps(TINY_STUDENT.to_dict()))
    out = tmp_path / "run"
    res = runner.invoke(app, ["distill", "--teacher", str(teacher), "--student", str(spec), "--out", str(out),
                              "--steps", "6", "--batch-size", "4", "--checkpoint-every", "3", "--report-pairs", "1",
                              "--report-clips", "2", "--threads", "1", "--rates", "15,30", "--prior-scenes", "0",
                              "--json", str(tmp_path / "fidelity.json")])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    for row in ("frame-causal distillation fidelity", "surprise AUROC", "frame difference (pixels)",
                "next-frame prediction cosine", "GFLOPs / update (kv step)"):
        assert row in text

    report = json.loads((tmp_path / "fidelity.json").read_text())
    assert report == json.loads((out / "report.json").read_text())
    assert report["kind"] == "frame_causal" and report["step"] == 6 and report["pairs"] == 7
    for key in ("teacher_auroc", "student_auroc", "auroc_ratio", "token_cosine", "prediction_cosine",
                "surprise_spearman_windows"):
        assert isinstance(report[key], float)
    assert report["auroc_ratio"] == pytest.approx(report["student_auroc"] / report["teacher_auroc"])
    assert set(report["baselines"]) == {"frame_difference", "linear_extrapolation"}
    assert report["teacher"]["name"] == "test-world-teacher" and report["param_ratio"] < 0.5
    assert report["seeds"]["pairs"] == [2_000_000_000, 2_000_000_007]  # the window report's held-out block
    assert [json.loads(line)["step"] for line in (out / "reports.jsonl").read_text().splitlines()] == [3, 6]
    card = json.loads((out / "student" / "card.json").read_text())["distillation"]
    assert card["frame_rates"] == [15.0, 30.0] and card["fidelity"]["step"] == 6
    assert "surprise_prior" not in json.loads((out / "student" / "edge_jepa.json").read_text())  # --prior-scenes 0


def test_ctrl_c_then_resume_equals_an_uninterrupted_run(world, tmp_path, one_inference_thread):
    cfg = _cfg(report_pairs=0)
    straight = distill(world, WORLD_STUDENT, "synthetic", tmp_path / "straight", cfg)

    def ctrl_c(step: int, loss: float, rate: float) -> None:
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)  # the handler sets the stop flag; the step ends, then a checkpoint

    out = tmp_path / "stopped"
    with pytest.raises(KeyboardInterrupt):
        distill(world, WORLD_STUDENT, "synthetic", out, cfg, on_step=ctrl_c)
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 2 and not (out / "student").exists()
    with pytest.raises(DistillError, match="pass --resume"):
        distill(world, WORLD_STUDENT, "synthetic", out, cfg)
    resumed = distill(world, WORLD_STUDENT, "synthetic", out, cfg, resume=True)
    assert resumed.steps_done == 6
    assert np.allclose(resumed.losses, straight.losses, atol=1e-6)
    for (k, a), b in zip(straight.student.state_dict().items(), resumed.student.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), k


def test_change_weight_follows_what_moves():
    tokens = torch.zeros(1, 3, 4, 8)
    tokens[0, 2, 1] = torch.arange(8.0)  # one token changes, between frames 1 and 2
    w = change_weight(tokens, 0.1)
    assert w.shape == (1, 2, 4)
    assert w[0, 1, 1] > 1.0 and torch.allclose(w[0, 0], torch.full((4,), 0.1))
    assert torch.allclose(w.mean() - 0.1, torch.tensor(1.0))  # the clip's mean change is the unit


def test_mixed_kinds_and_window_only_options_are_clear_errors(world, tmp_path):
    with pytest.raises(DistillError, match="world_pico is a frame_causal model and student vit_nano a window one"):
        distill(world, "vit_nano", "synthetic", tmp_path / "a")
    with pytest.raises(DistillError, match="pick a window student"):
        distill("window", "world_nano", "synthetic", tmp_path / "b")
    with pytest.raises(DistillError, match="--cache-teacher"):
        distill(world, WORLD_STUDENT, "synthetic", tmp_path / "c", _cfg(cache_teacher=True))
    with pytest.raises(DistillError, match="different clip sizes"):
        distill(world, WORLD_STUDENT.replace(clip={"size": 32}), "synthetic", tmp_path / "d")
    res = runner.invoke(app, ["distill", "--teacher", "world", "--student", "vit_nano", "--out", str(tmp_path / "e"),
                              "--steps", "2"])
    assert res.exit_code == 2 and "distillation pairs models of one kind" in res.output
    assert not (tmp_path / "e" / "checkpoint.pt").exists()


def test_the_cli_distils_the_default_into_the_student_of_its_kind(tmp_path):
    res = runner.invoke(app, ["distill", "--out", str(tmp_path / "run"), "--steps", "1", "--batch-size", "2",
                              "--report-pairs", "0", "--threads", "1", "--prior-scenes", "0"])
    assert res.exit_code == 0, res.output
    student = edge_jepa.load(tmp_path / "run" / "student")
    assert student.config.name == "world_nano" and student.config.kind == "frame_causal"
